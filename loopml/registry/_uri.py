"""Model names, aliases and the URIs that point at a model version."""

from __future__ import annotations

import re

from loopml.errors import InvalidInput

SCHEME = "models:/"
LATEST = "latest"
MAX_NAME = 256
_FORBIDDEN = ("/", "@", ":")
_FORMS = (
    "expected models:/<name>/<version>, models:/<name>@<alias> or models:/<name> "
    "(the latest version), with or without the models:/ prefix"
)
_VERSION = re.compile(r"^[1-9][0-9]*$")


def check_name(name: str, what: str = "model name") -> str:
    """``name`` if it is usable as a model name (or alias); raise InvalidInput otherwise."""
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{what} must be a non-empty string, not {name!r}")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"{what} {name[:40]!r}... is {len(name)} characters; max {MAX_NAME}")
    bad = [c for c in _FORBIDDEN if c in name]
    if bad:
        raise InvalidInput(f"{what} {name!r} must not contain {' or '.join(map(repr, bad))}")
    if name != name.strip() or not name.isprintable():
        raise InvalidInput(f"{what} {name!r} must not have surrounding spaces or control chars")
    return name


def check_alias(alias: str) -> str:
    """``alias`` if it is usable as an alias: a valid name that is not a number or 'latest'."""
    check_name(alias, "alias")
    if alias.isdigit():
        raise InvalidInput(f"alias {alias!r} is a number; it would read as a version")
    if alias == LATEST:
        raise InvalidInput(f"alias {LATEST!r} is reserved: it always means the newest version")
    return alias


def parse_model_uri(uri: str) -> tuple[str, int | None, str | None]:
    """Split a model URI into (name, version, alias).

    Parameters
    ----------
    uri : ``models:/churn/3``, ``models:/churn@production``, ``models:/churn`` (or
        ``churn@latest``: the latest version), each also without ``models:/``.

    Returns
    -------
    (name, version or None, alias or None); both None means the latest version.

    Raises
    ------
    InvalidInput
        ``uri`` has none of those forms; the message lists them.

    Examples
    --------
    >>> parse_model_uri("models:/churn@production")
    ('churn', None, 'production')
    >>> parse_model_uri("churn/3")
    ('churn', 3, None)
    """
    if not isinstance(uri, str):
        raise InvalidInput(f"model URI must be a string, not {type(uri).__name__}; {_FORMS}")
    rest = uri.removeprefix(SCHEME)
    name, version, alias = rest, None, None
    try:
        if "/" in rest:
            name, _, number = rest.partition("/")
            if not _VERSION.match(number):
                raise InvalidInput(f"version {number!r} is not a positive integer")
            version = int(number)
        elif "@" in rest:
            name, _, alias = rest.partition("@")
            if alias == LATEST:
                alias = None
            else:
                check_alias(alias)
        check_name(name)
    except InvalidInput as exc:
        raise InvalidInput(f"malformed model URI {uri!r} ({exc}); {_FORMS}") from None
    return name, version, alias
