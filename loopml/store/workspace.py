"""The Workspace: settings + metadata DB + blob store, the context every service takes."""

from __future__ import annotations

import atexit
import functools
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from loopml._credentials import token_for
from loopml.errors import AlreadyExists, InvalidInput, WorkspaceNotFound
from loopml.settings import CONFIG_FILE, STATE_DIR, Settings, load_settings
from loopml.store.blobs import BlobStore
from loopml.store.db import MetadataDB
from loopml.store.remote import HttpBlobStore, RemoteClient


class Component(Protocol):
    """A per-workspace service with resources to release (e.g. a background writer)."""

    def close(self) -> None: ...


C = TypeVar("C", bound=Component)

_CONFIG_TEMPLATE = """\
# loopml workspace settings. Environment variables LOOPML_<NAME> override these.
# store_uri = "postgresql+psycopg://postgres@127.0.0.1:5432/loopml"
# artifact_uri = "s3://bucket/loopml"
"""


class Workspace:
    """An open workspace.

    Parameters
    ----------
    settings : resolved settings; build them with :meth:`open` in the usual case.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.remote: RemoteClient | None = None
        self._db: MetadataDB | None = None
        if settings.tracking_uri is not None:
            token = settings.tracking_token or token_for(settings.tracking_uri)
            self.remote = RemoteClient(settings.tracking_uri, token)
            self.blobs: BlobStore = HttpBlobStore(self.remote)
        else:
            self._db = MetadataDB(
                settings.resolved_store_uri(), busy_timeout=settings.sqlite_busy_timeout
            )
            self.blobs = BlobStore(settings.resolved_artifact_uri())
        self._components: dict[object, Component] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._atexit = functools.partial(_close_if_alive, weakref.ref(self))
        atexit.register(self._atexit)

    @classmethod
    def open(cls, home: str | Path | None = None, **overrides: Any) -> Workspace:
        """Open the workspace at ``home`` (default: ``LOOPML_HOME``, else found from the cwd)."""
        settings = load_settings(home=home, **overrides)
        standalone = settings.remote or (
            settings.store_uri is not None and settings.artifact_uri is not None
        )
        if not standalone and (
            settings.home is None or not (settings.home / CONFIG_FILE).is_file()
        ):
            raise WorkspaceNotFound(
                f"no loopml workspace at {settings.home or Path.cwd()} or any parent folder "
                f"(no {CONFIG_FILE}); run `loopml init` there or set LOOPML_HOME"
            )
        return cls(settings)

    @classmethod
    def init(cls, home: str | Path = ".", **overrides: Any) -> Workspace:
        """Create a workspace in folder ``home`` and open it."""
        root = Path(home).expanduser().resolve()
        config = root / CONFIG_FILE
        if config.exists():
            raise AlreadyExists(f"{root} is already a loopml workspace")
        (root / STATE_DIR).mkdir(parents=True, exist_ok=True)
        tmp = config.with_suffix(".tmp")
        tmp.write_text(_CONFIG_TEMPLATE, encoding="utf-8")
        tmp.replace(config)
        return cls.open(root, **overrides)

    @property
    def db(self) -> MetadataDB:
        """The metadata database; InvalidInput on a workspace that is a remote server."""
        if self._db is None:
            raise InvalidInput(
                f"this needs the metadata database itself, which the loopml server at "
                f"{self.settings.tracking_uri} keeps: run it on the server's workspace "
                "(or unset LOOPML_TRACKING_URI)"
            )
        return self._db

    @property
    def home(self) -> Path | None:
        """The workspace folder."""
        return self.settings.home

    def component(self, factory: Callable[[Workspace], C]) -> C:
        """The workspace's one instance made by ``factory(self)`` (made on first use)."""
        with self._lock:
            found = self._components.get(factory)
            if found is None:
                found = self._components[factory] = factory(self)
            return cast(C, found)

    def existing(self, factory: Callable[[Workspace], C]) -> C | None:
        """The instance made by ``factory`` if one was made already, else None."""
        with self._lock:
            return cast("C | None", self._components.get(factory))

    def close(self) -> None:
        """Close components (flushing buffered writes), then the database connections."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            components = list(self._components.values())
        for c in components:
            c.close()
        if self._db is not None:
            self._db.dispose()
        if self.remote is not None:
            self.remote.close()
        atexit.unregister(self._atexit)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.remote if self.remote is not None else self._db
        return f"Workspace(home={str(self.home)!r}, db={where!r}, blobs={self.blobs!r})"


def _close_if_alive(ref: weakref.ref[Workspace]) -> None:
    """Close the workspace at interpreter exit unless it is gone already."""
    ws = ref()
    if ws is not None:
        ws.close()


_default: Workspace | None = None
_default_lock = threading.Lock()


def default_workspace() -> Workspace:
    """The process's default workspace, opened on first use from the environment."""
    global _default
    with _default_lock:
        if _default is None or _default._closed:
            _default = Workspace.open()
        return _default


def use_workspace(home: str | Path | Workspace | None = None, **overrides: Any) -> Workspace:
    """Make a workspace the default for this process, closing the previous default.

    ``home`` is a workspace folder (opened with ``overrides``) or an open ``Workspace``.
    """
    global _default
    ws = home if isinstance(home, Workspace) else Workspace.open(home, **overrides)
    with _default_lock:
        previous, _default = _default, ws
    if previous is not None and previous is not ws:
        previous.close()
    return ws


__all__ = ["Workspace", "default_workspace", "use_workspace"]
