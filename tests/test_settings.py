"""Settings precedence: explicit argument > LOOPML_* env > loopml.toml > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopml.errors import InvalidInput, WorkspaceNotFound
from loopml.settings import load_settings
from loopml.store import Workspace


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "loopml.toml").write_text("metric_flush_interval = 2.5\nmetric_buffer_size = 7\n")
    return folder


def test_defaults_apply_when_nothing_is_set(tmp_path: Path) -> None:
    s = load_settings(home=tmp_path)
    assert s.metric_flush_interval == 0.5
    assert s.resolved_store_uri() == f"sqlite:///{tmp_path / '.loopml' / 'loopml.db'}"


def test_toml_overrides_defaults(home: Path) -> None:
    s = load_settings(home=home)
    assert s.metric_flush_interval == 2.5
    assert s.metric_buffer_size == 7


def test_env_overrides_toml(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_METRIC_FLUSH_INTERVAL", "9")
    s = load_settings(home=home)
    assert s.metric_flush_interval == 9
    assert s.metric_buffer_size == 7  # still from the file


def test_argument_overrides_env(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_METRIC_FLUSH_INTERVAL", "9")
    assert load_settings(home=home, metric_flush_interval=1.5).metric_flush_interval == 1.5


def test_home_from_env_and_from_cwd(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_HOME", str(home))
    assert load_settings().home == home.resolve()
    monkeypatch.delenv("LOOPML_HOME")
    (home / "src" / "deep").mkdir(parents=True)
    monkeypatch.chdir(home / "src" / "deep")
    assert load_settings().home == home.resolve()  # found upwards, like git


def test_bad_values_name_the_field(home: Path) -> None:
    with pytest.raises(InvalidInput, match="metric_flush_interval"):
        load_settings(home=home, metric_flush_interval=-1)
    (home / "loopml.toml").write_text("no_such_setting = 1\n")
    with pytest.raises(InvalidInput, match="no_such_setting"):
        load_settings(home=home)
    (home / "loopml.toml").write_text("metric_flush_interval = [\n")
    with pytest.raises(InvalidInput, match="not valid TOML"):
        load_settings(home=home)


def test_no_workspace_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceNotFound, match="loopml init"):
        Workspace.open()
    with pytest.raises(WorkspaceNotFound, match="nowhere"):
        Workspace.open(tmp_path / "nowhere")
