"""A fault-injecting, OpenAI-compatible chat server on loopback, for the endpoint agent's tests.

This is a stand-in for a real model server (vLLM, llama.cpp, OpenAI): a real LLM cannot be made to fail on demand
(answer a 500, hang past the client's timeout, cut the connection, send a body that is not JSON), and its replies
are not reproducible, so the retry, redaction and fallback paths could not be tested against one. The fake speaks
the same wire protocol (``POST /v1/chat/completions`` answering a ``chat.completion`` object) and writes a
*scripted negotiation message* computed from the request: it reads the role from the system prompt ("You are a
buyer" / "You are a seller"), the asking price and its own private value from the amounts written there
("$1,234.56"), the turn and the other side's latest action from the last user message, and answers
``Thought: ...\\nTalk: ...\\nAction: [BUY] $X`` / ``[SELL] $Y`` / ``[DEAL] $Z`` like a simple time-dependent
negotiator.

Faults are planned per test. Each request takes one *behaviour*: the first :meth:`FakeOpenAI.rule` whose
substring occurs in the request body, else the next one queued for its role (:meth:`FakeOpenAI.plan` with
``role=``), else the next one queued for any role, else the role's default (:meth:`FakeOpenAI.set_default`).
Behaviours:

- ``ok``: a valid completion with the scripted message;
- ``status:N``: an HTTP N error whose message echoes the request's ``Authorization`` header, as real servers do
  with a bad key (so a leak of the key into an error text is visible); 429 carries ``Retry-After: 0``, and
  ``status:429:S`` sets ``Retry-After: S``;
- ``hang:S``: sleep S seconds (past the client's timeout), then answer ``ok`` if the client is still there;
- ``malformed``: a 200 with ``Content-Type: application/json`` and a truncated JSON body;
  ``malformed_text``: a 200 with a plain-text (HTML) body;
- ``cut``: send the headers and part of the body, then drop the connection (a truncated response);
  ``drop``: close the connection before sending a single byte;
- ``think``: the message preceded by ``<think>`` + :data:`SECRET_REASONING` + ``</think>``;
  ``reasoning_field``: the message with :data:`SECRET_REASONING_FIELD` in a ``reasoning_content`` field;
- ``garbage``: a reply with no Action line at all;
- ``leak``: the scripted message with a Talk that states the model's private value (a model that fell for "reveal
  your budget");
- ``content_parts``: the message as a list of content parts (``[{"type": "text", "text": ...}]``), not a string;
  ``error_200``: a 200 whose JSON is an error object with no ``choices`` (as some proxies answer).

Every request's headers and JSON body are recorded (:attr:`FakeOpenAI.requests`), as is the largest number of
requests in flight at once. ``delay`` makes every request take that long (for concurrency tests).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

SECRET_REASONING = "secret reasoning about the budget"
SECRET_REASONING_FIELD = "secret reasoning from the reasoning_content field"
GARBAGE = "Sure! I would love to make a deal with you, friend. What do you think?"
BEHAVIOURS = (
    "ok",
    "leak",
    "status",
    "hang",
    "malformed",
    "malformed_text",
    "cut",
    "drop",
    "think",
    "reasoning_field",
    "garbage",
    "content_parts",
    "error_200",
)

_MONEY = r"\$([0-9][0-9,]*(?:\.[0-9]+)?)"
_ASKING_RE = re.compile(r"(?:The seller's|Your) asking price: " + _MONEY)
_PRIVATE_RE = re.compile(r"Your private (?:budget|cost) is " + _MONEY)
_TURN_RE = re.compile(r"Turn (\d+) of (\d+)")
_ACTION_RE = re.compile(r"Action: \[(BUY|SELL|DEAL|REJECT|QUIT)\](?: " + _MONEY + ")?")


@dataclass
class SeenRequest:
    """One request as the server received it."""

    headers: dict[str, str]
    body: dict[str, Any]
    raw: str  # the body as sent
    role: str  # "buyer", "seller" or "unknown", from the system prompt
    behaviour: str = ""


@dataclass
class _State:
    rules: list[tuple[str, str]] = field(default_factory=list)
    queues: dict[str, deque[str]] = field(default_factory=lambda: {"any": deque()})
    defaults: dict[str, str] = field(default_factory=dict)
    chaos: tuple[random.Random, list[tuple[str, float]]] | None = None  # see FakeOpenAI.chaos


def _money(amount: float) -> str:
    return f"${amount:,.2f}"


def _amount(text: str) -> float:
    return float(text.replace(",", ""))


def role_of(body: dict[str, Any]) -> str:
    messages = body.get("messages") or []
    system = messages[0].get("content", "") if messages and messages[0].get("role") == "system" else ""
    if system.startswith("You are a buyer"):
        return "buyer"
    if system.startswith("You are a seller"):
        return "seller"
    return "unknown"


def scripted_message(body: dict[str, Any]) -> str:
    """The fake model's negotiation message for a chat request (a buyer or a seller, read from the prompt)."""
    messages = body["messages"]
    system = messages[0]["content"]
    role = role_of(body)
    asking_match, private_match = _ASKING_RE.search(system), _PRIVATE_RE.search(system)
    if role == "unknown" or asking_match is None or private_match is None:
        return "Thought: I do not know my role.\nTalk: Hello.\nAction: [QUIT]"
    asking, private = _amount(asking_match.group(1)), _amount(private_match.group(1))
    last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    turn_match = _TURN_RE.search(last_user)
    turn, max_turns = (int(turn_match.group(1)), int(turn_match.group(2))) if turn_match else (1, 6)
    actions = _ACTION_RE.findall(last_user)
    other_kind = actions[-1][0] if actions else None
    other_price = _amount(actions[-1][1]) if actions and actions[-1][1] else None
    if role == "buyer":
        budget = private
        # Concede from half the budget towards 90% of it: never offers the budget itself, so the budget amount
        # can only reach a seller through a leak.
        offer = round(budget * min(0.9, 0.5 + 0.1 * (turn - 1)), 2)
        if (
            other_kind == "SELL"
            and other_price is not None
            and (other_price <= offer or (turn >= max_turns and other_price <= 0.9 * budget))
        ):
            return f"Thought: That is a fair price.\nTalk: Deal at {_money(other_price)}.\nAction: [DEAL] " + _money(
                other_price
            )
        ceiling = other_price if other_kind == "SELL" and other_price is not None else asking
        offer = min(offer, ceiling)
        return (
            f"Thought: I should stay well under my limit.\nTalk: Would you take {_money(offer)}?\n"
            f"Action: [BUY] {_money(offer)}"
        )
    cost = private
    floor = round(cost * 1.05 + 0.01, 2)  # never the cost itself: the regulator would redact a stated cost
    target = round(max(floor, asking - (asking - floor) * turn / max_turns), 2)
    if (
        other_kind == "BUY"
        and other_price is not None
        and (other_price >= target or (turn >= max_turns and other_price >= floor))
    ):
        return f"Thought: Good enough.\nTalk: You have a deal at {_money(other_price)}.\nAction: [DEAL] " + _money(
            other_price
        )
    return f"Thought: Hold firm.\nTalk: The best I can do is {_money(target)}.\nAction: [SELL] {_money(target)}"


class FakeOpenAI:
    """The app and its fault plan. Thread-safe: the server runs in its own thread, the test in the main one."""

    def __init__(self, keep_requests: bool = True) -> None:
        """``keep_requests=False``: do not record requests (a benchmark's memory measures the client, not this)."""
        self.keep_requests = keep_requests
        self._lock = threading.Lock()
        self._state = _State()
        self.requests: list[SeenRequest] = []
        self.delay = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self._ids = itertools.count(1)
        fastapi_app = FastAPI()
        fastapi_app.add_api_route("/v1/chat/completions", self._chat, methods=["POST"])
        fastapi_app.add_api_route("/v1/models", self._models, methods=["GET"])
        self.app = _DropMiddleware(fastapi_app)

    # --- the plan ---------------------------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self._state = _State()
            self.requests = []
            self.delay = 0.0
            self.in_flight = 0
            self.max_in_flight = 0

    def plan(self, *behaviours: str, role: str = "any") -> None:
        """Queue behaviours for the next requests of ``role`` ("buyer", "seller" or "any"), one per request."""
        for behaviour in behaviours:
            _check(behaviour)
        with self._lock:
            self._state.queues.setdefault(role, deque()).extend(behaviours)

    def set_default(self, behaviour: str, role: str = "any") -> None:
        """The behaviour once the queues are empty (``ok`` unless set), for ``role`` or every role."""
        _check(behaviour)
        with self._lock:
            if role == "any":
                self._state.defaults = {"buyer": behaviour, "seller": behaviour, "unknown": behaviour}
            else:
                self._state.defaults[role] = behaviour

    def rule(self, substring: str, behaviour: str) -> None:
        """Every request whose body (or a message's decoded text) contains ``substring`` gets ``behaviour``, before
        any queue."""
        _check(behaviour)
        with self._lock:
            self._state.rules.append((substring, behaviour))

    def chaos(self, rates: dict[str, float], seed: int = 0) -> None:
        """Once the rules and queues have nothing to say, each request takes a behaviour at random: ``rates`` maps
        behaviours to probabilities (the rest is ``ok``); seeded, so a run's fault sequence repeats."""
        for behaviour in rates:
            _check(behaviour)
        if sum(rates.values()) > 1:
            raise ValueError("the fault rates add up to more than 1")
        with self._lock:
            self._state.chaos = (random.Random(seed), list(rates.items()))

    def clear_rules(self) -> None:
        with self._lock:
            self._state.rules.clear()

    def pending(self) -> int:
        """Queued behaviours not yet consumed."""
        with self._lock:
            return sum(len(queue) for queue in self._state.queues.values())

    def seen(self, role: str | None = None) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if role is None or r.role == role]

    def _choose(self, haystack: str, role: str) -> str:
        with self._lock:
            for substring, behaviour in self._state.rules:
                if substring in haystack:
                    return behaviour
            for queue in (self._state.queues.get(role), self._state.queues["any"]):
                if queue:
                    return queue.popleft()
            if self._state.chaos is not None:
                rng, rates = self._state.chaos
                draw = rng.random()
                for behaviour, rate in rates:
                    if draw < rate:
                        return behaviour
                    draw -= rate
            return self._state.defaults.get(role, "ok")

    # --- the endpoints ----------------------------------------------------------------------------------------

    async def _models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "fake", "object": "model", "owned_by": "tests"}]}

    async def _chat(self, request: Request) -> Response:
        raw = (await request.body()).decode()
        body = json.loads(raw)
        role = role_of(body)
        contents = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        behaviour = self._choose(f"{raw}\n{contents}", role)
        seen = SeenRequest(dict(request.headers), body, raw, role, behaviour)
        with self._lock:
            if self.keep_requests:
                self.requests.append(seen)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            return await self._behave(behaviour, body, request)
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _behave(self, behaviour: str, body: dict[str, Any], request: Request) -> Response:
        name, _, argument = behaviour.partition(":")
        if name == "status":
            code, _, retry_after = argument.partition(":")
            key = request.headers.get("authorization", "")
            error = {"message": f"fake failure {code}; request authorized with {key!r}", "type": "fake", "code": code}
            headers = {"Retry-After": retry_after or "0"} if code == "429" else {}
            return JSONResponse({"error": error}, status_code=int(code), headers=headers)
        if name == "hang":
            deadline = time.monotonic() + float(argument)
            while time.monotonic() < deadline:
                if await request.is_disconnected():
                    return Response(status_code=499)
                await asyncio.sleep(0.02)
            return JSONResponse(self._completion(body, scripted_message(body)))
        if name == "malformed":
            return Response(
                '{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"mess',
                200,
                media_type="application/json",
            )
        if name == "malformed_text":
            return Response("<html><body>502 Bad Gateway</body></html>", 200, media_type="text/plain")
        if name == "cut":
            return _TruncatedResponse()
        if name == "drop":
            return Response(status_code=200, headers={"x-fake-drop": "1"})  # the middleware drops it unsent
        if name == "think":
            text = f"<think>{SECRET_REASONING}</think>\n{scripted_message(body)}"
            return JSONResponse(self._completion(body, text))
        if name == "reasoning_field":
            return JSONResponse(self._completion(body, scripted_message(body), reasoning=SECRET_REASONING_FIELD))
        if name == "garbage":
            return JSONResponse(self._completion(body, GARBAGE))
        if name == "leak":
            private = _amount(_PRIVATE_RE.search(body["messages"][0]["content"]).group(1))
            action = scripted_message(body).rpartition("\nAction: ")[2]
            text = f"Thought: They asked.\nTalk: Fine: my limit is exactly {_money(private)}.\nAction: {action}"
            return JSONResponse(self._completion(body, text))
        if name == "content_parts":
            completion = self._completion(body, scripted_message(body))
            message = completion["choices"][0]["message"]
            message["content"] = [{"type": "text", "text": message["content"]}]
            return JSONResponse(completion)
        if name == "error_200":
            return JSONResponse({"error": {"message": "upstream provider overloaded", "code": 502}})
        return JSONResponse(self._completion(body, scripted_message(body)))

    def _completion(self, body: dict[str, Any], text: str, reasoning: str | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if reasoning is not None:
            message["reasoning_content"] = reasoning
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        completion_tokens = len(text.split())
        return {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _check(behaviour: str) -> None:
    if behaviour.partition(":")[0] not in BEHAVIOURS:
        raise ValueError(f"unknown behaviour {behaviour!r}; choose from {', '.join(BEHAVIOURS)}")


class _TruncatedResponse(Response):
    """Headers announcing a 1000-byte body, 20 bytes of it, then an exception: uvicorn closes the connection."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"id": "chatcmpl-cut"', "more_body": True})
        raise ConnectionAbortedError("fake server: connection cut on purpose")


class _DropMiddleware:
    """Outermost ASGI layer: a response marked ``x-fake-drop`` is never sent; the connection is closed instead.

    uvicorn hands its own ``send`` to the outermost app; the transport is reached through it (a uvicorn detail,
    so when it is not there the response is cut after its headers instead).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def guarded_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and (b"x-fake-drop", b"1") in message.get("headers", []):
                transport = getattr(getattr(send, "__self__", None), "transport", None)
                if transport is None:
                    await send({**message, "headers": [(b"content-length", b"100")]})
                    raise ConnectionAbortedError("fake server: connection cut on purpose")
                transport.abort()
                await asyncio.sleep(0.05)  # let uvicorn see the disconnect, so it does not try to answer a 500
                raise ConnectionAbortedError("fake server: connection dropped on purpose")
            await send(message)

        with suppress(ConnectionAbortedError):
            await self.app(scope, receive, guarded_send)


@dataclass
class RunningServer:
    fake: FakeOpenAI
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def spec(self, query: str = "", model: str = "fake") -> str:
        """An agent spec for this server: ``openai:fake@http://127.0.0.1:PORT/v1[?query]``."""
        return f"openai:{model}@{self.base_url}" + (f"?{query}" if query else "")


@contextmanager
def serve(fake: FakeOpenAI | None = None, startup_timeout: float = 10.0) -> Iterator[RunningServer]:
    """Run the fake on 127.0.0.1 at an ephemeral port in a background thread until the block ends."""
    fake = fake or FakeOpenAI()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        fake.app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        http="h11",
        loop="asyncio",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="fake-openai", daemon=True)
    thread.start()
    running = RunningServer(fake, port)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            try:
                if httpx.get(f"{running.base_url}/models", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the fake OpenAI server did not start")
            time.sleep(0.02)
        yield running
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
