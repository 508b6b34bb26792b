"""The one exception tree of loopml.

Catch :class:`LoopmlError` for anything loopml raises on purpose, or a precise child::

    LoopmlError
     ├── NotFound            an experiment, run, model, version, alias or blob that does not exist
     │    └── WorkspaceNotFound   no loopml.toml here or in any parent folder
     ├── AlreadyExists       a name that must be unique is taken
     ├── InvalidInput        bad arguments, filters, data or signatures (says which field/column)
     │    └── ValidationFailed    data failed a validation suite (carries the stored result)
     ├── Conflict            a write that contradicts recorded state (e.g. re-logging a param)
     ├── MissingDependency   an optional extra is not installed (names the extra)
     ├── Unauthorized        a missing or wrong credential
     │    └── Forbidden           a valid credential without the role the action needs
     └── StoreError          the metadata DB or blob store failed
          └── CorruptBlob    a blob's content no longer matches its sha256 address
"""

from __future__ import annotations


class LoopmlError(Exception):
    """Base of every error loopml raises on purpose."""


class NotFound(LoopmlError):
    """Something named by the caller does not exist."""


class WorkspaceNotFound(NotFound):
    """No workspace in the given folder or any of its parents."""


class AlreadyExists(LoopmlError):
    """A unique name is already taken."""


class InvalidInput(LoopmlError):
    """The caller's input is malformed; the message names the offending field."""


class ValidationFailed(InvalidInput):
    """A dataset version failed its validation suite; ``result`` holds the stored outcome."""

    def __init__(self, message: str, result: object) -> None:
        super().__init__(message)
        self.result = result


class Conflict(LoopmlError):
    """The write contradicts state already recorded."""


class MissingDependency(LoopmlError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f'{module!r} is not installed; install it with: pip install "loopml[{extra}]"'
        )
        self.module = module
        self.extra = extra


class Unauthorized(LoopmlError):
    """A credential is missing or wrong."""


class Forbidden(Unauthorized):
    """The caller is known but lacks the role (viewer / editor / admin) the action needs."""


class StoreError(LoopmlError):
    """The metadata database or the blob store failed."""


class CorruptBlob(StoreError):
    """A blob's bytes do not hash to its address: the artifact was tampered with or damaged."""


__all__ = [
    "AlreadyExists",
    "Conflict",
    "CorruptBlob",
    "Forbidden",
    "InvalidInput",
    "LoopmlError",
    "MissingDependency",
    "NotFound",
    "StoreError",
    "Unauthorized",
    "ValidationFailed",
    "WorkspaceNotFound",
]
