"""OpenAI-compatible endpoints (vLLM, SGLang, llama.cpp server, Ollama, OpenAI, OpenRouter, ``counteroffer serve``).

Requests go through the official ``openai`` client on a private event loop in a background thread, at most
``concurrency`` in flight per agent. An agent may name several servers of the same model (one base URL per vLLM
server, say): each request, and each retry, goes to the server with the fewest of the agent's requests in flight
(ties in turn), so a slow server gets less. A server whose request just failed is rested for a while (a second,
doubling with each further failure in a row, at most a minute) and a retry goes to another server when there is
one: a dead server costs each episode one failed attempt, not its retries.

Each request has a timeout and is retried with exponential backoff and jitter on connection errors, timeouts,
429 (honouring ``Retry-After``), 5xx and malformed responses, like the OpenAI SDK's own retries but counted and
logged here; a request that still fails becomes an
:class:`~counteroffer.models.backend.AgentFailure` for its episode alone. The API key comes from an environment
variable and is scrubbed from every error text, so it never reaches a log or a record.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import threading
import time
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import openai

from counteroffer.game.negotiation import repair_text
from counteroffer.models.backend import AgentFailure, Chat, ChatBackend, Completion, Sampling

log = logging.getLogger(__name__)
T = TypeVar("T")


class MalformedResponse(ValueError):
    """A 200 answer that is not a usable chat completion (not JSON, no choices, content that is not text)."""


_RETRYABLE = (
    openai.APIConnectionError,  # includes APITimeoutError
    openai.RateLimitError,
    openai.InternalServerError,
    openai.APIResponseValidationError,
    json.JSONDecodeError,
    MalformedResponse,
)
_MODEL_ERRORS = (openai.APIResponseValidationError, json.JSONDecodeError, MalformedResponse)
MAX_RETRY_AFTER_S = 60.0
FIRST_REST_S = 1.0  # how long a server that just failed is passed over (when another can answer)
MAX_REST_S = 60.0


class _LoopThread:
    """An asyncio loop running in a daemon thread, so sync callers can run coroutines on one long-lived loop
    (the async HTTP client's connection pool belongs to that loop)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="counteroffer-endpoint", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


class EndpointBackend(ChatBackend):
    def __init__(
        self,
        model: str,
        base_urls: Sequence[str],
        *,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 16,
        timeout: float = 60.0,
        retries: int = 4,
        backoff: float = 0.5,
    ) -> None:
        urls = list(base_urls)
        self.name = f"{model}@{','.join(urls)}"
        self.model = model
        self.retries = retries
        self.backoff = backoff
        # A local server needs no key; the client still requires a non-empty string.
        self._api_key = os.environ.get(api_key_env) or "EMPTY"
        self._loop = _LoopThread()
        self._semaphore = asyncio.Semaphore(concurrency)
        self._clients = [
            openai.AsyncOpenAI(base_url=url, api_key=self._api_key, timeout=timeout, max_retries=0) for url in urls
        ]
        self.in_flight = [0] * len(urls)
        self._failures = [0] * len(urls)  # failures in a row
        self._resting_until = [0.0] * len(urls)
        self._turn = 0

    def _pick(self, avoid: int | None) -> int:
        """The server to send to: not ``avoid`` (where the last attempt failed) and not resting if another will
        do; then the fewest requests in flight; ties go round the servers in turn. Runs on the loop thread only."""
        self._turn = (self._turn + 1) % len(self._clients)
        now = time.monotonic()
        order = [(self._turn + i) % len(self._clients) for i in range(len(self._clients))]
        return min(order, key=lambda i: (i == avoid, self._resting_until[i] > now, self.in_flight[i]))

    def _record(self, server: int, failed: bool) -> None:
        """A success ends a server's rest; a failure starts one, twice as long as the last if it comes after that
        rest ended (the many requests in flight when a server breaks count as one failure, not a streak)."""
        if not failed:
            self._failures[server] = 0
            self._resting_until[server] = 0.0
            return
        now = time.monotonic()
        if now < self._resting_until[server]:
            return
        self._failures[server] += 1
        self._resting_until[server] = now + min(MAX_REST_S, FIRST_REST_S * 2 ** (self._failures[server] - 1))

    def complete(
        self, chats: Sequence[Chat], samplings: Sequence[Sampling], seeds: Sequence[int]
    ) -> list[Completion | AgentFailure]:
        async def all_chats() -> list[Completion | AgentFailure]:
            pending = (
                self._complete_one(chat, sampling, seed)
                for chat, sampling, seed in zip(chats, samplings, seeds, strict=True)
            )
            return list(await asyncio.gather(*pending))

        return self._loop.run(all_chats())

    async def _complete_one(self, chat: Chat, sampling: Sampling, seed: int) -> Completion | AgentFailure:
        last_error = ""
        failed_on: int | None = None
        for attempt in range(self.retries + 1):
            server: int | None = None
            try:
                async with self._semaphore:
                    server = self._pick(avoid=failed_on)
                    self.in_flight[server] += 1
                    try:
                        response = await self._clients[server].chat.completions.create(
                            model=self.model,
                            messages=chat,  # type: ignore[arg-type]
                            temperature=sampling.temperature,
                            top_p=sampling.top_p,
                            max_tokens=sampling.max_new_tokens,
                            seed=seed,
                        )
                    finally:
                        self.in_flight[server] -= 1
                completion = _completion(response)
                self._record(server, failed=False)
                return completion
            except _RETRYABLE as exc:
                last_error = self._describe(exc)
                delay = self._delay(exc, attempt)
                if server is not None:
                    failed_on = server
                    # An unusable answer is the model's doing, not the server's: the server is not rested for it.
                    if not isinstance(exc, _MODEL_ERRORS):
                        self._record(server, failed=True)
            except openai.NotFoundError as exc:
                # With several servers, a 404 is one server's misconfiguration (a wrong path, the model not
                # loaded there): rest it and ask another. With one, asking again will not help.
                if len(self._clients) == 1 or server is None:
                    return AgentFailure(self._describe(exc))
                last_error, delay, failed_on = self._describe(exc), 0.0, server
                self._record(server, failed=True)
            except openai.APIStatusError as exc:
                # A 4xx other than 429 will not get better by asking again.
                return AgentFailure(self._describe(exc))
            if attempt < self.retries:
                log.warning("%s: %s; retry %d/%d in %.2fs", self.name, last_error, attempt + 1, self.retries, delay)
                await asyncio.sleep(delay)
        return AgentFailure(f"{last_error} (after {self.retries} retries)")

    def _delay(self, exc: Exception, attempt: int) -> float:
        if isinstance(exc, openai.RateLimitError):
            retry_after = exc.response.headers.get("retry-after")
            try:
                return min(MAX_RETRY_AFTER_S, max(0.0, float(retry_after)))
            except (TypeError, ValueError):
                pass
        return self.backoff * 2**attempt * (0.5 + random.random())

    def _describe(self, exc: Exception) -> str:
        text = f"{type(exc).__name__}: {exc}"
        return text.replace(self._api_key, "[api key]") if self._api_key != "EMPTY" else text

    def close(self) -> None:
        async def close_all() -> None:
            await asyncio.gather(*(client.close() for client in self._clients))

        try:
            self._loop.run(close_all())
        finally:
            self._loop.stop()


def _completion(response: Any) -> Completion:
    if isinstance(response, str | bytes):  # some servers answer a 200 with a body that is not JSON
        raise MalformedResponse(f"the response is not a JSON object: {str(response)[:80]!r}")
    choices = getattr(response, "choices", None)
    if not choices or getattr(choices[0], "message", None) is None:
        raise MalformedResponse("the response has no choices[0].message")
    message = choices[0].message
    content = message.content
    if content is not None and not isinstance(content, str):  # e.g. a list of content parts: the game reads text
        raise MalformedResponse(f"message content is a {type(content).__name__}, not text")
    reasoning = getattr(message, "reasoning_content", None) or getattr(message, "reasoning", None) or ""
    # JSON can carry lone surrogates ("\\ud800"), which no later encoder accepts (a re-ask would send them back).
    return Completion(
        text=repair_text(content or "")[0],
        reasoning=repair_text(reasoning)[0] if isinstance(reasoning, str) else "",
        prompt_tokens=_token_count(response, "prompt_tokens"),
        completion_tokens=_token_count(response, "completion_tokens"),
    )


def _token_count(response: Any, field: str) -> int:
    """Usage is informational: a missing or junk count is 0, never a reason to drop a good message."""
    value = getattr(getattr(response, "usage", None), field, 0)
    return value if isinstance(value, int) else 0
