"""One typed ``Settings`` object for loopml.

Precedence, highest first: an explicit argument > a ``LOOPML_*`` environment variable >
``loopml.toml`` in the workspace > the defaults below. The workspace itself is the folder
given as ``home`` (argument or ``LOOPML_HOME``), else the nearest folder holding
``loopml.toml`` at or above the current directory, like git finds its repository.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from loopml.errors import InvalidInput, WorkspaceNotFound

CONFIG_FILE = "loopml.toml"
STATE_DIR = ".loopml"


def find_workspace(start: Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: cwd) that holds ``loopml.toml``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    return None


def _resolve_home(explicit: Any) -> Path | None:
    raw = explicit or os.environ.get("LOOPML_HOME")
    if raw:
        return Path(raw).expanduser().resolve()
    return find_workspace()


class _WorkspaceToml(PydanticBaseSettingsSource):
    """Reads ``loopml.toml`` of the workspace chosen by the higher-priority sources."""

    def __init__(self, settings_cls: type[BaseSettings], init_kwargs: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._home = _resolve_home(init_kwargs.get("home"))

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the whole file at once

    def __call__(self) -> dict[str, Any]:
        if self._home is None:
            return {}
        path = self._home / CONFIG_FILE
        if not path.is_file():
            return {"home": self._home}
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{path}: not valid TOML ({exc})") from exc
        values = data.get("loopml", data)
        unknown = set(values) - set(self.settings_cls.model_fields)
        if unknown:
            raise InvalidInput(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}")
        return {"home": self._home, **values}


class Settings(BaseSettings):
    """Everything loopml can be configured with.

    Parameters
    ----------
    home : path of the workspace folder (holding ``loopml.toml`` and ``.loopml/``).
    store_uri : SQLAlchemy URL of the metadata DB; default SQLite in ``.loopml/``.
    artifact_uri : fsspec URL or folder of the blob store; default ``.loopml/blobs``.
    metric_flush_interval : seconds between background flushes of buffered metrics.
    metric_buffer_size : buffered points that trigger a flush before the interval ends.
    sqlite_busy_timeout : seconds a SQLite writer waits for another process's lock.
    tracking_uri : ``http(s)://host:port`` of a loopml server to work against instead of a
        local store (the same API and CLI, over HTTP).
    tracking_token : the API token for that server (default: the one ``loopml login`` saved).
    project : the project new experiments, models and datasets go to on a server.
    online_store : where online features live: ``sqlite`` (a file in ``.loopml/``),
        ``sqlite:///path/online.db``, or ``redis://host:port/db``.
    online_key_prefix : the prefix of every key loopml writes to a Redis online store.
    """

    model_config = SettingsConfigDict(env_prefix="LOOPML_", extra="forbid")

    home: Path | None = None
    store_uri: str | None = None
    artifact_uri: str | None = None
    metric_flush_interval: float = Field(default=0.5, gt=0)
    metric_buffer_size: int = Field(default=100_000, gt=0)
    sqlite_busy_timeout: float = Field(default=60.0, gt=0)
    tracking_uri: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$")
    tracking_token: str | None = None
    project: str = Field(default="default", min_length=1, max_length=256)
    online_store: str = Field(default="sqlite", pattern=r"^(sqlite(:///\S+)?|rediss?://\S+)$")
    online_key_prefix: str = Field(default="loopml:", max_length=128)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        init_kwargs = getattr(init_settings, "init_kwargs", {})
        return init_settings, env_settings, _WorkspaceToml(settings_cls, init_kwargs)

    @property
    def state_dir(self) -> Path:
        """The workspace's ``.loopml/`` folder."""
        if self.home is None:
            raise WorkspaceNotFound(
                f"no loopml workspace in {Path.cwd()} or any parent folder; "
                "run `loopml init` there or set LOOPML_HOME"
            )
        return self.home / STATE_DIR

    @property
    def remote(self) -> bool:
        """Whether this workspace is a loopml server reached over HTTP."""
        return self.tracking_uri is not None

    def resolved_store_uri(self) -> str:
        """The metadata DB URL, defaulting to SQLite inside the workspace."""
        return self.store_uri or f"sqlite:///{self.state_dir / 'loopml.db'}"

    def resolved_artifact_uri(self) -> str:
        """The blob store location, defaulting to a folder inside the workspace."""
        return self.artifact_uri or str(self.state_dir / "blobs")


def load_settings(**overrides: Any) -> Settings:
    """Build :class:`Settings`, turning validation errors into one clear ``InvalidInput``."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidInput(f"invalid settings: {problems}") from exc


__all__ = ["CONFIG_FILE", "STATE_DIR", "Settings", "find_workspace", "load_settings"]
