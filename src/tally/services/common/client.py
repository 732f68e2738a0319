"""A small HTTP client for the services' APIs: JSON in and out, signed or with a token."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any, Self

import httpx

from tally.crypto.schnorr import PrivateKey
from tally.services.common.auth import sign_headers

__all__ = ["ServiceClient", "ServiceCallError", "Closing", "DEFAULT_TIMEOUT", "to_hex"]

DEFAULT_TIMEOUT = 30.0


def to_hex(value: bytes | str) -> str:
    """A key, id or hash as the APIs take it: bytes as hex, a string as it is."""
    return value.hex() if isinstance(value, bytes | bytearray) else value


class Closing(ABC):
    """A client that is its own context manager: `with Client(...) as client:` closes it."""

    @abstractmethod
    def close(self) -> None:
        """Release the connections."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class ServiceCallError(Exception):
    """A service refused a call (4xx/5xx with a code) or could not be reached.

    Attributes:
        status: The HTTP status; 0 when the service was not reached.
        code: The service's stable code (`auth.forbidden`, `limit.exceeded`, ...).
        message: What the service says, for people.
        detail: The values behind the message.
    """

    def __init__(self, status: int, code: str, message: str, detail: dict[str, Any]) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail


class ServiceClient(Closing):
    """Calls one service; signs each request with `key` and/or sends `token` as bearer."""

    def __init__(
        self,
        base_url: str,
        *,
        key: PrivateKey | None = None,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.token = token
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:  # Any: JSON
        """GET `path`; the decoded JSON answer."""
        return self.request("GET", path, params=params)

    def post(self, path: str, json_body: Any = None) -> Any:  # Any: JSON
        """POST a JSON body to `path`; the decoded JSON answer."""
        return self.request("POST", path, json_body=json_body)

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:  # Any: the JSON document
        """Send one request; raise `ServiceCallError` unless the answer is a 2xx."""
        body = b"" if json_body is None else json.dumps(json_body).encode()
        target = str(httpx.URL(path, params=params)) if params else path
        headers = {"content-type": "application/json"} if json_body is not None else {}
        if self.key is not None:
            headers.update(sign_headers(self.key, method, target, body))
        if self.token is not None:
            headers["authorization"] = f"Bearer {self.token}"
        try:
            response = self._http.request(method, target, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise ServiceCallError(
                0, "service.unreachable", f"cannot reach {self.base_url}: {exc}", {}
            ) from None
        try:
            document = response.json()
        except ValueError:
            document = None
        if response.is_success:
            return document
        if isinstance(document, dict) and "code" in document:
            raise ServiceCallError(
                response.status_code,
                str(document["code"]),
                str(document.get("message", "")),
                dict(document.get("detail") or {}),
            )
        raise ServiceCallError(
            response.status_code, "service.http", f"HTTP {response.status_code}", {}
        )
