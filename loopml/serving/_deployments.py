"""Deployments: an endpoint name bound to a model's primary version and a traffic policy.

A deployment names its versions by reference (``@production``, ``3``), so moving an alias
moves the deployment without touching it. Policies towards an optional candidate version:

- ``single``: every request goes to the primary.
- ``shadow``: the primary answers; the server mirrors each request to the candidate and logs
  both (the routing decision here is always "primary").
- ``canary``: a ``traffic`` share of requests goes to the candidate (by a stable hash of the
  request key when there is one, else at random).
- ``ab``: sticky split: a stable hash of the request key (the ``sticky_key`` field) decides,
  so the same key always lands on the same side; about ``traffic`` of keys see the candidate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

import sqlalchemy as sa

from loopml.errors import InvalidInput, NotFound
from loopml.registry import get_model_version
from loopml.store import Node, Workspace, add_edge, now_ms
from loopml.store.schema import deployments as deployments_table

Policy = Literal["single", "shadow", "canary", "ab"]
Route = Literal["primary", "candidate"]
POLICIES: tuple[Policy, ...] = get_args(Policy)
MAX_REF = 64  # deployments.primary_ref / candidate_ref
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_VERSION = re.compile(r"^v?([1-9][0-9]*)$")
_HASH_SPACE = float(1 << 64)


def _bucket(deployment: str, key: str) -> float:
    """A stable number in [0, 1) for ``key`` (blake2b, the same in every process)."""
    digest = hashlib.blake2b(f"{deployment}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _HASH_SPACE


@dataclass(frozen=True)
class Deployment:
    """A deployment record.

    Attributes
    ----------
    name : the endpoint name.
    model : the registered model it serves.
    primary : reference of the primary version (``@production`` or ``3``).
    policy : ``single``, ``shadow``, ``canary`` or ``ab``.
    candidate : reference of the candidate version, or None for ``single``.
    traffic : share of requests (canary) or of keys (ab) sent to the candidate.
    sticky_key : request field whose value is hashed to route (ab; optional for canary).
    features : the feature service looked up for each request, or None (requests carry
        every model input).
    created_at, updated_at : UTC times.
    """

    name: str
    model: str
    primary: str
    policy: Policy
    candidate: str | None
    traffic: float | None
    sticky_key: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    features: str | None = None

    def route(self, request_key: str | None) -> Route:
        """Which version answers a request whose sticky key is ``request_key``.

        ``single`` and ``shadow`` always answer from the primary (mirroring a shadow request
        is the server's job). ``canary`` and ``ab`` send the request to the candidate when
        the key's stable hash falls in the ``traffic`` share, or, without a key, at random
        with probability ``traffic``.

        Examples
        --------
        >>> d.route("user-17") == d.route("user-17")  # doctest: +SKIP
        True
        """
        if self.policy in ("single", "shadow") or not self.traffic:
            return "primary"
        draw = random.random() if request_key is None else _bucket(self.name, str(request_key))
        return "candidate" if draw < self.traffic else "primary"

    @property
    def refs(self) -> dict[str, str]:
        """``{"primary": ref}`` plus ``{"candidate": ref}`` when there is a candidate."""
        out = {"primary": self.primary}
        if self.candidate is not None:
            out["candidate"] = self.candidate
        return out


def _time(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def _from_row(r: Any) -> Deployment:
    return Deployment(
        name=r.name,
        model=r.model,
        primary=r.primary_ref,
        policy=r.policy,
        candidate=r.candidate_ref,
        traffic=r.traffic,
        sticky_key=r.sticky_key,
        features=r.features,
        created_at=_time(r.created_at),
        updated_at=_time(r.updated_at),
    )


def check_deployment_name(name: object) -> str:
    """``name`` if it is usable as a deployment (endpoint) name; raise InvalidInput otherwise."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"deployment name {name!r} is not valid: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def normalize_ref(ref: object, what: str = "ref") -> str:
    """A version reference in its stored form: ``@alias`` or a version number (``"3"``).

    Accepts ``"@production"``, ``"production"``, ``"3"``, ``"v3"`` and the int ``3``.
    """
    if isinstance(ref, int) and not isinstance(ref, bool):
        ref = str(ref)
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInput(f"{what} must be '@alias', 'alias', '3' or 'v3', not {ref!r}")
    text = ref.strip()
    number = _VERSION.match(text)
    if number:
        return number.group(1)
    alias = text.removeprefix("@")
    if not alias or any(c in alias for c in "/@:") or not alias.isprintable():
        raise InvalidInput(f"{what} {ref!r} is not '@alias', 'alias', '3' or 'v3'")
    if len(alias) + 1 > MAX_REF:
        raise InvalidInput(f"{what} {ref!r} is longer than {MAX_REF - 1} characters")
    return f"@{alias}"


def resolve_version(ws: Workspace, model: str, ref: str | int) -> int:
    """The version number ``ref`` means for ``model`` right now.

    Parameters
    ----------
    ws : the workspace.
    model : registered model name.
    ref : ``"@production"``, ``"production"``, ``"3"``, ``"v3"`` or ``3``.

    Returns
    -------
    int

    Raises
    ------
    InvalidInput
        ``ref`` has none of those forms.
    NotFound
        The model, version or alias does not exist.
    """
    stored = normalize_ref(ref)
    uri = f"{model}{stored}" if stored.startswith("@") else f"{model}/{stored}"
    return get_model_version(ws, uri).version


def _policy(shadow: object, canary: object, ab: object) -> tuple[Policy, object]:
    candidates: tuple[tuple[Policy, object], ...] = (
        ("shadow", shadow),
        ("canary", canary),
        ("ab", ab),
    )
    given = [(p, r) for p, r in candidates if r is not None]
    if len(given) > 1:
        names = " and ".join(p for p, _ in given)
        raise InvalidInput(f"give at most one of shadow=, canary=, ab= (got {names})")
    return given[0] if given else ("single", None)


def _check_traffic(policy: Policy, traffic: object) -> float | None:
    if policy in ("single", "shadow"):
        if traffic is not None:
            raise InvalidInput(f"traffic= applies to canary and ab deployments, not {policy}")
        return None
    if traffic is None:
        if policy == "ab":
            return 0.5
        raise InvalidInput("a canary deployment needs traffic=, the candidate's share, e.g. 0.1")
    if isinstance(traffic, bool) or not isinstance(traffic, int | float):
        raise InvalidInput(f"traffic must be a number in (0, 1), not {traffic!r}")
    if not 0.0 < float(traffic) < 1.0:
        raise InvalidInput(f"traffic must be in (0, 1) (exclusive), not {traffic}")
    return float(traffic)


def _check_sticky(policy: Policy, sticky_key: object) -> str | None:
    if sticky_key is None:
        return None
    if policy in ("single", "shadow"):
        raise InvalidInput(f"sticky_key= applies to canary and ab deployments, not {policy}")
    if not isinstance(sticky_key, str) or not sticky_key or len(sticky_key) > 256:
        raise InvalidInput(f"sticky_key must be a request field name, not {sticky_key!r}")
    return sticky_key


def _check_features(ws: Workspace, service: object) -> str | None:
    if service is None:
        return None
    if not isinstance(service, str) or not service or len(service) > 256:
        raise InvalidInput(f"features must be a feature service name, not {service!r}")
    from loopml.features import get_definition

    get_definition(service, "feature_service", workspace=ws)  # NotFound names what exists
    return service


def _check_model(model: object) -> str:
    if not isinstance(model, str) or not model or any(c in model for c in "/@:"):
        raise InvalidInput(f"model must be a registered model name, not {model!r}")
    return model


def deploy(
    ws: Workspace,
    name: str,
    *,
    model: str | None = None,
    primary: str | int = "@production",
    shadow: str | int | None = None,
    canary: str | int | None = None,
    ab: str | int | None = None,
    traffic: float | None = None,
    sticky_key: str | None = None,
    features: str | None = None,
) -> Deployment:
    """Create deployment ``name``, or replace its versions and policy if it exists.

    Parameters
    ----------
    ws : the workspace.
    name : endpoint name (letters, digits, ``.``, ``_``, ``-``).
    model : registered model; default: the existing deployment's model, else ``name``.
    primary : reference of the version that answers (``@production``, ``3``, ``v3``).
    shadow, canary, ab : reference of a candidate version; at most one, which sets the
        policy (none: ``single``).
    traffic : the candidate's share in (0, 1): required for canary, default 0.5 for ab.
    sticky_key : request field hashed for sticky assignment (ab, canary).
    features : a feature service: requests then carry only its entity keys (and the
        request fields its on-demand features read); the server looks the other model
        inputs up in the online store. None: requests carry every input.

    Returns
    -------
    Deployment

    Raises
    ------
    InvalidInput
        A bad name, reference, policy combination, traffic or sticky key.
    NotFound
        The model, a version or alias a reference names, or the feature service does not
        exist.

    Examples
    --------
    >>> deploy(ws, "churn", primary="@production", canary="@challenger", traffic=0.1)
    ...  # doctest: +SKIP
    """
    check_deployment_name(name)
    policy, candidate_ref = _policy(shadow, canary, ab)
    share = _check_traffic(policy, traffic)
    sticky = _check_sticky(policy, sticky_key)
    service = _check_features(ws, features)
    primary_ref = normalize_ref(primary, "primary")
    candidate = None if candidate_ref is None else normalize_ref(candidate_ref, policy)
    if model is None:
        existing = _find(ws, name)
        model = existing.model if existing is not None else name
    model = _check_model(model)
    refs = (
        {"primary": primary_ref}
        if candidate is None
        else {
            "primary": primary_ref,
            "candidate": candidate,
        }
    )
    versions: dict[str, int] = {}
    for role, ref in refs.items():
        try:
            versions[role] = resolve_version(ws, model, ref)
        except NotFound as exc:
            label = role if role == "primary" else policy
            raise NotFound(f"deployment {name!r}: {label} {ref!r}: {exc}") from None
    now = now_ms()
    row = {
        "name": name,
        "model": model,
        "primary_ref": primary_ref,
        "policy": policy,
        "candidate_ref": candidate,
        "traffic": share,
        "sticky_key": sticky,
        "features": service,
        "created_at": now,
        "updated_at": now,
    }
    with ws.db.write() as conn:
        ws.db.upsert(
            conn,
            deployments_table,
            [row],
            keys=["name"],
            update=[k for k in row if k not in ("name", "created_at")],
        )
        for role, version in versions.items():
            src = Node("model_version", f"{model}/{version}")
            add_edge(ws.db, conn, src, Node("deployment", name), role)
    return get_deployment(ws, name)


def _find(ws: Workspace, name: str) -> Deployment | None:
    t = deployments_table
    with ws.db.read() as conn:
        row = conn.execute(sa.select(t).where(t.c.name == name)).first()
    return None if row is None else _from_row(row)


def get_deployment(ws: Workspace, name: str) -> Deployment:
    """Deployment ``name``.

    Raises
    ------
    NotFound
        No deployment has that name; the message lists the ones that exist.
    """
    check_deployment_name(name)
    found = _find(ws, name)
    if found is None:
        names = [d.name for d in list_deployments(ws)]
        hint = f"deployments: {', '.join(map(repr, names[:10]))}" if names else "none exist yet"
        raise NotFound(f"no deployment named {name!r}; {hint}")
    return found


def list_deployments(ws: Workspace) -> list[Deployment]:
    """Every deployment, by name."""
    t = deployments_table
    with ws.db.read() as conn:
        rows = conn.execute(sa.select(t).order_by(t.c.name)).all()
    return [_from_row(r) for r in rows]


def delete_deployment(ws: Workspace, name: str) -> None:
    """Remove deployment ``name`` (its logged predictions stay in the workspace).

    Raises
    ------
    NotFound
        No deployment has that name.
    """
    check_deployment_name(name)
    t = deployments_table
    with ws.db.write() as conn:
        deleted = conn.execute(sa.delete(t).where(t.c.name == name)).rowcount
    if not deleted:
        get_deployment(ws, name)  # raises NotFound with the list of names


__all__ = [
    "POLICIES",
    "Deployment",
    "Policy",
    "Route",
    "check_deployment_name",
    "delete_deployment",
    "deploy",
    "get_deployment",
    "list_deployments",
    "normalize_ref",
    "resolve_version",
]
