"""Features: entities, feature views, point-in-time training sets, online and streaming stores.

Definitions (``Entity``, ``FeatureView``, ``OnDemandFeatureView``, ``FeatureService``) are
versioned by ``apply``; ``training_set`` joins them point-in-time correctly onto entity rows
with DuckDB; ``materialize`` copies their latest values into an ``OnlineStore`` (SQLite by
default, or Redis) that ``get_online_features`` reads; ``ingest_stream`` keeps the online
and offline stores fed from Redis Streams or NATS JetStream.
"""

from loopml.features._definitions import (
    Entity,
    Feature,
    FeatureService,
    FeatureView,
    OnDemandFeatureView,
)
from loopml.features._ingest import IngestStats
from loopml.features._loader import load_definitions
from loopml.features._lookup import get_online_features
from loopml.features._materialize import Materialized, materialize
from loopml.features._offline import training_set
from loopml.features._online import OnlineStore, SqliteOnlineStore
from loopml.features._redis import RedisOnlineStore
from loopml.features._registry import Change, Registered, apply, get_definition, list_definitions
from loopml.features._stores import open_online_store
from loopml.features._stream import ingest_stream

__all__ = [
    "Change",
    "Entity",
    "Feature",
    "FeatureService",
    "FeatureView",
    "IngestStats",
    "Materialized",
    "OnDemandFeatureView",
    "OnlineStore",
    "RedisOnlineStore",
    "Registered",
    "SqliteOnlineStore",
    "apply",
    "get_definition",
    "get_online_features",
    "ingest_stream",
    "list_definitions",
    "load_definitions",
    "materialize",
    "open_online_store",
    "training_set",
]
