"""What stands between the network and the model: an API key and request limits.

- **API key.** With a key set, every route but ``/health`` needs ``Authorization: Bearer KEY`` (the OpenAI
  clients send ``api_key`` that way); anything else is answered 401 in the OpenAI error shape. Keys are compared
  in constant time and never logged.
- **Limits.** A body over ``max_body_bytes`` is refused with 413 before it is read in full (a lying or missing
  ``Content-Length`` included: the stream is counted); a request with more than ``max_messages`` messages, or
  asking for more than ``max_tokens`` new tokens, gets 400 with what the limit is.

Binding to an address other than loopback without a key is refused by :func:`check_exposure` unless the caller
says ``insecure``: a served model would otherwise answer anyone on the network.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from counteroffer.errors import ConfigError

API_KEY_ENV = "COUNTEROFFER_API_KEY"
OPEN_PATHS = frozenset({"/health"})


@dataclass(frozen=True, slots=True)
class ServerLimits:
    max_body_bytes: int = 1 << 20  # 1 MiB: a long negotiation's chat is a few kB
    max_messages: int = 256
    max_tokens: int = 4096  # per request; the default when a request names none stays the server's

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_messages", "max_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")


class ExposureError(ConfigError):
    """A server would be reachable from the network with no key."""


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost: it may resolve to anything


def check_exposure(host: str, api_key: str | None, insecure: bool) -> None:
    if api_key or insecure or is_loopback(host):
        return
    raise ExposureError(
        f"refusing to serve on {host} without an API key: anyone who can reach it could use the model. "
        f"Pass --api-key KEY (or set ${API_KEY_ENV}), or --insecure if that is what you want"
    )


def _error_body(message: str, code: str, kind: str = "invalid_request_error") -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """ASGI middleware: the API key check and the body-size limit, before the app sees the request."""

    def __init__(self, app: ASGIApp, *, api_key: str | None, limits: ServerLimits) -> None:
        self.app = app
        self.api_key = api_key.encode() if api_key else None
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self.api_key is not None and scope.get("path") not in OPEN_PATHS:
            given = headers.get(b"authorization", b"")
            scheme, _, token = given.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.api_key):
                message = "Incorrect API key provided" if given else "Missing API key: send Authorization: Bearer KEY"
                await _respond(send, 401, _error_body(message, "invalid_api_key"), [(b"www-authenticate", b"Bearer")])
                return
        limit = self.limits.max_body_bytes
        declared = headers.get(b"content-length")
        too_large = _error_body(f"request body larger than {limit} bytes", "request_too_large")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _respond(send, 413, too_large)
            return
        # Read the body here, counting, whatever Content-Length said (or did not say); then hand it on whole.
        chunks, received, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            received += len(chunks[-1])
            if received > limit:
                await _respond(send, 413, too_large)
                return
            more = message.get("more_body", False)
        body, delivered = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
