"""A wheel of the running loopml, so that an image build context installs the very loopml
that built it (with no package index that has it).

The wheel is made from the installed package folder and its distribution metadata; file
order and timestamps are fixed, so the same installed loopml gives the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import tempfile
import zipfile
from pathlib import Path

from loopml._version import __version__

_EPOCH = (1980, 1, 1, 0, 0, 0)
_WHEEL = "Wheel-Version: 1.0\nGenerator: loopml build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def wheel_name() -> str:
    """The file name of the wheel :func:`write_wheel` writes."""
    return f"loopml-{__version__}-py3-none-any.whl"


def _files() -> list[tuple[str, bytes]]:
    root = Path(__file__).resolve().parents[1]  # the installed loopml package folder
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        out.append((f"loopml/{path.relative_to(root).as_posix()}", path.read_bytes()))
    return out


def _metadata() -> tuple[str, str]:
    dist = importlib.metadata.distribution("loopml")
    return dist.read_text("METADATA") or "", dist.read_text("entry_points.txt") or ""


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def write_wheel(folder: Path) -> Path:
    """Write the wheel of the installed loopml into ``folder``; return its path."""
    info = f"loopml-{__version__}.dist-info"
    metadata, entry_points = _metadata()
    files = _files()
    files += [(f"{info}/METADATA", metadata.encode()), (f"{info}/WHEEL", _WHEEL.encode())]
    if entry_points:
        files.append((f"{info}/entry_points.txt", entry_points.encode()))
    record = [_record_line(n, d) for n, d in files] + [f"{info}/RECORD,,"]
    files.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode()))
    target = folder / wheel_name()
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    os.close(fd)
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files:
            entry = zipfile.ZipInfo(name, _EPOCH)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(entry, data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    return target


__all__ = ["wheel_name", "write_wheel"]
