"""loopml: the whole machine-learning lifecycle in one tool."""

from loopml._version import __version__

__all__ = ["__version__"]
