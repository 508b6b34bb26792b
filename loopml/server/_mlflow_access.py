"""Project roles for MLflow's API: each request is checked against the project of the
experiment, run or registered model it names, and searches that name none leave out what
the caller may not see. Server admins (and everyone, with auth off) pass unchecked."""

from __future__ import annotations

import contextlib
from typing import Any

from loopml.errors import InvalidInput, NotFound
from loopml.server._access import Access
from loopml.server._mlflow_protocol import Fields, natural
from loopml.server._users import Principal, Role
from loopml.store import Workspace
from loopml.store.schema import DEFAULT_PROJECT

_READS = ("/search", "/get", "/get-history", "/get-by-name", "/get-by-alias", "/list")
_RESULTS = {  # search answers a caller sees filtered, and what each item is
    "/experiments/search": ("experiments", "experiment"),
    "/registered-models/search": ("registered_models", "model"),
    "/model-versions/search": ("model_versions", "model"),
}


class MlflowAccess:
    """Role checks for MLflow requests to one workspace."""

    def __init__(self, ws: Workspace) -> None:
        self.access = ws.component(Access)

    @staticmethod
    def role(method: str, path: str) -> Role:
        """Viewer to read (GET, and POSTs that search or get), else editor."""
        return "viewer" if method == "GET" or path.endswith(_READS) else "editor"

    def _experiment(self, text: str) -> str:
        number = natural(text, 18)
        if number is None:
            raise InvalidInput(f"experiment id must be an integer, got {text!r:.80}")
        if number == 0:  # MLflow's experiment 0: loopml's default experiment
            with contextlib.suppress(NotFound):
                return self.access.experiment_project("default")
            return DEFAULT_PROJECT
        return self.access.experiment_id_project(number)

    def projects(self, path: str, f: Fields) -> set[str]:
        """The projects of what the request names (an unknown model: the default one)."""
        found: set[str] = set()
        if run_id := f.text("run_id", "run_uuid"):
            found.add(self.access.run_project(run_id))
        if text := f.text("experiment_id"):
            found.add(self._experiment(text))
        found |= {self._experiment(t) for t in f.texts("experiment_ids")}
        name = f.text("name")
        if path.startswith("/experiments") and (exp := f.text("experiment_name") or name):
            try:
                found.add(self.access.experiment_project(exp))
            except NotFound:
                found.add(DEFAULT_PROJECT)  # experiments/create makes it there
        elif path.startswith(("/registered-models", "/model-versions")) and name:
            found.add(self.access.project_of("model", name))
        return found

    def check(self, who: Principal, method: str, path: str, f: Fields) -> None:
        """Forbidden unless ``who`` has the role the request needs in each project it names."""
        role = self.role(method, path)
        for project in self.projects(path, f):
            who.require(project, role)

    def check_artifact(self, who: Principal, method: str, path: str) -> None:
        """The artifact proxy's paths are ``<experiment>/<run>/artifacts/...``."""
        parts = path.strip("/").split("/")
        if len(parts) >= 2 and len(parts[1]) == 32:
            who.require(
                self.access.run_project(parts[1]), "viewer" if method == "GET" else "editor"
            )

    def visible(self, who: Principal, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A search answer without the items of projects ``who`` has no role in."""
        projects = who.visible_projects()
        key_kind = _RESULTS.get(path)
        if projects is None or key_kind is None:
            return body
        key, kind = key_kind

        def seen(item: dict[str, Any]) -> bool:
            name = str(item.get("name", ""))
            try:
                if kind == "experiment":
                    return self.access.experiment_project(name) in projects
                return self.access.project_of("model", name) in projects
            except NotFound:
                return False

        return {**body, key: [i for i in body.get(key, []) if seen(i)]}


__all__ = ["MlflowAccess"]
