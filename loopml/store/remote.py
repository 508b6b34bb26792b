"""The way to a loopml server: an HTTP client that turns the API's error shape back into
loopml's exceptions, and a blob store whose blobs live on the server.

Both know nothing of ML: they move JSON and bytes. The services above (tracking, registry,
data) use them when the workspace's ``tracking_uri`` is an ``http(s)://`` URL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import threading
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from loopml.errors import (
    AlreadyExists,
    Conflict,
    CorruptBlob,
    Forbidden,
    InvalidInput,
    LoopmlError,
    NotFound,
    StoreError,
    Unauthorized,
)
from loopml.store.blobs import BlobStore, check_digest, sha256_bytes, sha256_file

_CHUNK = 1 << 20
ARROW_STREAM = "application/vnd.apache.arrow.stream"
_BY_CODE: dict[str, type[LoopmlError]] = {
    "not_found": NotFound,
    "already_exists": AlreadyExists,
    "conflict": Conflict,
    "invalid_input": InvalidInput,
    "too_large": InvalidInput,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
}


def error_from(response: httpx.Response) -> LoopmlError:
    """The loopml exception an error answer of the API stands for."""
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "", response.text[:300] or response.reason_phrase
    kind = _BY_CODE.get(code)
    if kind is None:
        kind = {401: Unauthorized, 403: Forbidden, 404: NotFound}.get(
            response.status_code, StoreError
        )
        message = f"server answered {response.status_code}: {message}"
    return kind(message)


class RemoteClient:
    """JSON over HTTP to a loopml server, with the caller's bearer token.

    Parameters
    ----------
    url : the server's base URL, e.g. ``http://127.0.0.1:5000``.
    token : an API token (``loopml login``); None when the server runs without auth.
    timeout : seconds to wait for a connection or an answer.
    """

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        headers = {"User-Agent": "loopml-client"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RemoteClient({self.url!r})"

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        content: bytes | Iterator[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; an error answer raises the loopml exception it stands for.

        Raises StoreError when the server cannot be reached.
        """
        try:
            response = self._http.request(
                method, path, json=json, params=params, content=content, headers=headers
            )
        except httpx.HTTPError as exc:
            raise StoreError(f"loopml server {self.url} unreachable: {exc}") from exc
        if response.status_code >= 400:
            raise error_from(response)
        return response

    def get(self, path: str, **params: Any) -> Any:
        """GET ``path`` with query ``params`` (None values left out); the decoded JSON."""
        query = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=query).json()

    def pages(self, path: str, key: str, **params: Any) -> list[Any]:
        """Every item of the paginated list ``key`` at ``path``, following page tokens."""
        found: list[Any] = []
        token = None
        while True:
            body = self.get(path, max_results=1000, page_token=token, **params)
            found += body[key]
            token = body["next_page_token"]
            if token is None:
                return found

    def post(self, path: str, body: Any = None) -> Any:
        """POST a JSON body; the decoded JSON answer."""
        return self.request("POST", path, json=body).json()

    def stream(self, path: str) -> Iterator[bytes]:
        """The body of GET ``path`` in chunks."""
        try:
            with self._http.stream("GET", path) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from(response)
                yield from response.iter_bytes(_CHUNK)
        except httpx.HTTPError as exc:
            raise StoreError(f"loopml server {self.url} unreachable: {exc}") from exc

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()


class HttpBlobStore(BlobStore):
    """The server's blob store, over ``/api/v1/blobs/{sha256}`` (same interface as
    :class:`BlobStore`; every transfer is verified against the digest on both ends)."""

    def __init__(self, client: RemoteClient) -> None:
        self.uri = f"{client.url}/api/v1/blobs"
        self.client = client
        self._verified: set[str] = set()

    def __repr__(self) -> str:
        return f"HttpBlobStore({self.uri!r})"

    def path(self, digest: str) -> str:
        """The blob's path on the server."""
        return f"/api/v1/blobs/{check_digest(digest)}"

    def exists(self, digest: str) -> bool:
        try:
            self.client.request("HEAD", self.path(digest))
        except NotFound:
            return False
        return True  # any other error answer was raised

    def put_bytes(self, data: bytes) -> str:
        digest = sha256_bytes(data)
        if not self.exists(digest):
            self.client.request("PUT", self.path(digest), content=data)
        return digest

    def put_file(self, path: str | os.PathLike[str]) -> str:
        if not Path(path).is_file():
            raise NotFound(f"no such file: {path}")
        digest = sha256_file(path)
        if not self.exists(digest):
            self.client.request("PUT", self.path(digest), content=_file_chunks(Path(path)))
        return digest

    def _chunks(self, digest: str) -> Iterator[bytes]:
        h = hashlib.sha256()
        for chunk in self.client.stream(self.path(digest)):
            h.update(chunk)
            yield chunk
        if h.hexdigest() != digest:
            raise CorruptBlob(f"blob {digest} from {self.uri} hashes to {h.hexdigest()}")

    def local_path(self, digest: str, cache: str | os.PathLike[str]) -> Path:
        copy = Path(cache) / digest
        return copy if copy.is_file() else self.get_file(digest, copy)


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


def page_token(offset: int) -> str:
    """The opaque token of the page that starts at ``offset`` (the API's pagination)."""
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def page_offset(token: str | None) -> int:
    """The offset a :func:`page_token` stands for (0 for none); InvalidInput otherwise."""
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))["o"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        offset = None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidInput(f"page_token {token!r} is not a token this server made")
    return offset


def new_batch_id() -> str:
    """A unique id for one batch of writes, so a retried batch is applied once."""
    return uuid.uuid4().hex


__all__ = [
    "ARROW_STREAM",
    "HttpBlobStore",
    "RemoteClient",
    "error_from",
    "new_batch_id",
    "page_offset",
    "page_token",
]
