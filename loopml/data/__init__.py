"""Data: sources, versioned datasets, validation, profiling and preprocessing.

``ingest`` reads a file, glob, SQL query or frame into an immutable, content-addressed
dataset version (``churn@3``) with its schema, semantic column kinds and profile; ``sql``
queries versions with DuckDB; ``validate`` runs a suite of checks lazily and stores the
report; ``Preprocessor`` builds the scikit-learn preprocessing that training and serving
share.
"""

import importlib

from loopml.data._checks import (
    ColumnExists,
    Fresh,
    InRange,
    InSet,
    Matches,
    NotNull,
    RowCount,
    SqlPredicate,
    Unique,
)
from loopml.data._datasets import (
    ColumnInfo,
    DatasetVersion,
    append,
    content_hash,
    ingest,
    list_datasets,
    list_versions,
    resolve,
    set_alias,
)
from loopml.data._demo import demo_churn
from loopml.data._diff import DatasetDiff, diff
from loopml.data._drift_checks import MeanWithin, NoNewCategories, QuantileWithin, StdWithin
from loopml.data._profile import profile_table
from loopml.data._report_html import CheckResult, ValidationReport
from loopml.data._sources import SQL
from loopml.data._sql import render_sql, sql
from loopml.data._suggest import suggest_suite
from loopml.data._suite import Suite
from loopml.data._validate import Validation, get_report, load_suite, validate
from loopml.data._validation import validate_table

# Preprocessing imports scikit-learn (~0.75 s); it loads on first use so that the CLI and
# plain data work start fast.
_LAZY = {
    "Preprocessor": "loopml.data._preprocessor",
    "Imputer": "loopml.data._impute",
    "KNNImputer": "loopml.data._impute",
    "IterativeImputer": "loopml.data._impute",
    "OneHotEncoder": "loopml.data._encode",
    "OrdinalEncoder": "loopml.data._encode",
    "TargetEncoder": "loopml.data._encode",
    "Winsorizer": "loopml.data._columns",
    "IQRClipper": "loopml.data._columns",
    "Scaler": "loopml.data._columns",
    "DatetimeFeatures": "loopml.data._columns",
    "TypeCoercer": "loopml.data._columns",
    "Deduplicator": "loopml.data._columns",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'loopml.data' has no attribute {name!r}")


__all__ = [
    "demo_churn",
    "SQL",
    "CheckResult",
    "ColumnExists",
    "Fresh",
    "InRange",
    "InSet",
    "Matches",
    "MeanWithin",
    "NoNewCategories",
    "NotNull",
    "QuantileWithin",
    "RowCount",
    "SqlPredicate",
    "StdWithin",
    "Suite",
    "Unique",
    "Validation",
    "ValidationReport",
    "ColumnInfo",
    "DatasetDiff",
    "DatasetVersion",
    "append",
    "content_hash",
    "diff",
    "ingest",
    "list_datasets",
    "list_versions",
    "profile_table",
    "render_sql",
    "resolve",
    "set_alias",
    "sql",
    "suggest_suite",
    "validate",
    "validate_table",
    "get_report",
    "load_suite",
    *_LAZY,
]
