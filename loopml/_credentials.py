"""Saved API tokens, one per server URL, in ``$LOOPML_CONFIG_DIR/credentials.toml``.

The folder defaults to ``~/.config/loopml``. The file is private (mode 0600) and rewritten
atomically (a temporary file, then a rename), so a crash never leaves half a file::

    ["https://loopml.example.com"]
    token = "lml_..."
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loopml.errors import InvalidInput

FILE_NAME = "credentials.toml"
_HEADER = "# loopml API tokens by server URL, written by `loopml login`. Keep this file private.\n"


def config_dir() -> Path:
    """The folder holding loopml's user configuration (``$LOOPML_CONFIG_DIR``)."""
    return Path(os.environ.get("LOOPML_CONFIG_DIR") or "~/.config/loopml").expanduser()


def credentials_path() -> Path:
    """The credentials file."""
    return config_dir() / FILE_NAME


def normalize_url(url: str) -> str:
    """``url`` as credentials are keyed: scheme and host in lower case, no trailing slash."""
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{path}"


def _load(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path}: not valid TOML ({exc})") from exc


def _quote(text: str) -> str:
    """``text`` as a TOML basic string."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _dump(entries: dict[str, Any]) -> str:
    blocks = []
    for url in sorted(entries):
        entry = entries[url]
        token = entry.get("token") if isinstance(entry, dict) else None
        if isinstance(token, str):
            blocks.append(f"[{_quote(url)}]\ntoken = {_quote(token)}\n")
    return _HEADER + "\n" + "\n".join(blocks)


def save_token(url: str, token: str) -> Path:
    """Save ``token`` for the server at ``url`` (replacing any saved one); return the file.

    Raises
    ------
    InvalidInput : ``url`` is not an http(s) URL, or the file holds invalid TOML.
    """
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise InvalidInput(f"server URL {url!r} must look like https://host[:port]")
    path = credentials_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    entries = _load(path)
    entries[normalize_url(url)] = {"token": token}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".credentials-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:  # mkstemp makes it 0600
            f.write(_dump(entries))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def token_for(url: str) -> str | None:
    """The token saved for the server at ``url``, or None.

    Raises
    ------
    InvalidInput : the credentials file holds invalid TOML.
    """
    entry = _load(credentials_path()).get(normalize_url(url))
    token = entry.get("token") if isinstance(entry, dict) else None
    return token if isinstance(token, str) else None


__all__ = ["config_dir", "credentials_path", "normalize_url", "save_token", "token_for"]
