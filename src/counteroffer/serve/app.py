"""An OpenAI-compatible chat-completions server for a local model or a trained checkpoint.

``counteroffer serve MODEL`` loads ``MODEL`` (the names ``hf:`` accepts: ``smollm2-135m``, a checkpoint folder, a
Hugging Face id) once and answers:

- ``GET /v1/models``: the served model, in the OpenAI list format;
- ``POST /v1/chat/completions``: the OpenAI request body (text content only; ``n`` must be 1); ``stream: true``
  sends the finished text as server-sent events in the OpenAI chunk format;
- ``GET /health`` and ``GET /v1/stats`` (requests, generate calls, batch sizes).

Errors use OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``: 400 for a bad request (a body that
fails validation included, where FastAPI would say 422, and one over a limit: messages, ``max_tokens``, ``n``),
401 without the right API key (when one is set), 404 for an unknown model or route, 413 for a body over the size
limit, 500 when generation fails. The key and the limits are :mod:`counteroffer.serve.guard`'s.

**Dynamic batching.** Requests do not call the model themselves: they queue at a :class:`Batcher`, whose
background task takes the first waiting request, collects whatever else arrives within ``batch_window_ms`` (up to
``max_batch``), groups the lot by sampling settings and answers each group with one
:meth:`~counteroffer.models.hf.HFChatModel.generate` call in a worker thread. Requests that arrive while a
batch is generating wait in the queue and form the next batch, so under load batches fill up by themselves and
the window only matters for a lone request. Each request samples with its own seed (the request's, or a counter
when it gave none), so a request with a seed gets the same text whatever it was batched with, and the model's
prefix cache serves a conversation's earlier turns.

Message contents are never logged; neither are request headers or keys.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from counteroffer.errors import ConfigError
from counteroffer.models.backend import Sampling
from counteroffer.models.hf import HFChatModel, load_chat_model
from counteroffer.serve.batcher import Batcher
from counteroffer.serve.guard import API_KEY_ENV, GuardMiddleware, ServerLimits, check_exposure
from counteroffer.serve.schema import APIError, ChatCompletionRequest, error_response, validation_message

log = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 512  # when a request names neither max_tokens nor max_completion_tokens
MAX_STOP_STRINGS = 16


def _accepted_names(served_name: str) -> set[str]:
    bare = served_name.removeprefix("hf:")
    return {served_name, bare, f"hf:{bare}"}


def _truncate_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def create_app(
    model: HFChatModel,
    *,
    served_name: str,
    max_batch: int = 16,
    batch_window_ms: float = 5.0,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    api_key: str | None = None,
    limits: ServerLimits | None = None,
) -> FastAPI:
    """The server for one loaded model, answering to ``served_name`` (with or without an ``hf:`` prefix); with
    ``api_key``, only to clients that send it."""
    limits = limits or ServerLimits()
    default_max_tokens = min(default_max_tokens, limits.max_tokens)
    batcher = Batcher(model, max_batch=max_batch, window_ms=batch_window_ms)
    names = _accepted_names(served_name)
    started = int(time.time())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        log.info("serving %s as %r (max batch %d, window %.1f ms)", model.name, served_name, max_batch, batch_window_ms)
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(title="counteroffer", summary="OpenAI-compatible chat completions", lifespan=lifespan)
    app.add_middleware(GuardMiddleware, api_key=api_key, limits=limits)
    app.state.batcher = batcher
    app.state.served_name = served_name

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.type, exc.code, exc.param)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, validation_message(exc), code="invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        code = "not_found" if exc.status_code == 404 else None
        return error_response(exc.status_code, str(exc.detail), kind, code)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok" if batcher.running else "stopped", "model": served_name}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": served_name, "object": "model", "created": started, "owned_by": "counteroffer"}],
        }

    @app.get("/v1/models/{model_id:path}")
    async def model_info(model_id: str) -> dict[str, Any]:
        if model_id not in names:
            raise APIError(404, f"The model `{model_id}` does not exist", code="model_not_found", param="model")
        return {"id": served_name, "object": "model", "created": started, "owned_by": "counteroffer"}

    @app.get("/v1/stats")
    async def stats() -> dict[str, Any]:
        return {**batcher.stats.as_dict(), "queued": batcher.queued, "max_batch": max_batch}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: ChatCompletionRequest) -> JSONResponse | StreamingResponse:
        if body.model not in names:
            raise APIError(
                404,
                f"The model `{body.model}` does not exist; this server serves `{served_name}`",
                code="model_not_found",
                param="model",
            )
        if body.n not in (None, 1):
            raise APIError(400, "n must be 1: this server returns one choice per request", param="n")
        if len(body.messages) > limits.max_messages:
            raise APIError(
                400, f"{len(body.messages)} messages: at most {limits.max_messages} per request", param="messages"
            )
        asked = body.max_completion_tokens or body.max_tokens
        if asked is not None and asked > limits.max_tokens:
            param = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
            raise APIError(400, f"{param} = {asked}: at most {limits.max_tokens} per request", param=param)
        if body.logprobs:
            raise APIError(400, "logprobs are not supported", param="logprobs")
        if body.tools:
            raise APIError(400, "tools are not supported", param="tools")
        stops = body.stop_strings()
        if len(stops) > MAX_STOP_STRINGS:
            raise APIError(400, f"at most {MAX_STOP_STRINGS} stop strings", param="stop")
        max_tokens = body.max_completion_tokens or body.max_tokens or default_max_tokens
        sampling = Sampling(
            temperature=1.0 if body.temperature is None else body.temperature,
            top_p=1.0 if body.top_p is None else body.top_p,
            max_new_tokens=max_tokens,
        )
        request_id = f"chatcmpl-{uuid.uuid4().hex}"
        began = time.perf_counter()
        try:
            output = await batcher.submit(body.chat(), sampling, body.seed)
        except Exception as exc:
            log.error("%s failed: %s", request_id, type(exc).__name__)
            raise APIError(500, f"generation failed: {type(exc).__name__}", type="server_error") from None
        text, stopped = _truncate_at_stop(output.text, stops)
        finish_reason = "length" if not stopped and output.completion_tokens >= max_tokens else "stop"
        usage = {
            "prompt_tokens": output.prompt_tokens,
            "completion_tokens": output.completion_tokens,
            "total_tokens": output.prompt_tokens + output.completion_tokens,
        }
        log.info(
            "%s: %d message(s), %d prompt + %d completion tokens, finish %s, %.2fs",
            request_id,
            len(body.messages),
            output.prompt_tokens,
            output.completion_tokens,
            finish_reason,
            time.perf_counter() - began,
        )
        created = int(time.time())
        if body.stream:
            include_usage = body.stream_options is not None and body.stream_options.include_usage
            return StreamingResponse(
                _chunks(request_id, created, served_name, text, finish_reason, usage if include_usage else None),
                media_type="text/event-stream",
            )
        return JSONResponse(
            {
                "id": request_id,
                "object": "chat.completion",
                "created": created,
                "model": served_name,
                "system_fingerprint": None,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": usage,
            }
        )

    return app


async def _chunks(
    request_id: str, created: int, model: str, text: str, finish_reason: str, usage: dict[str, int] | None
) -> AsyncIterator[str]:
    """The finished completion as OpenAI ``chat.completion.chunk`` events: role, text, finish reason, [usage]."""

    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        chunk = {
            "id": request_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": None,
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(chunk)}\n\n"

    with_usage = {"usage": None} if usage is not None else {}
    yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}], **with_usage)
    if text:
        yield event([{"index": 0, "delta": {"content": text}, "finish_reason": None}], **with_usage)
    yield event([{"index": 0, "delta": {}, "finish_reason": finish_reason}], **with_usage)
    if usage is not None:
        yield event([], usage=usage)
    yield "data: [DONE]\n\n"


def serve(
    model_name: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    dtype: str = "auto",
    device: str = "cpu",
    max_batch: int = 16,
    served_name: str | None = None,
    batch_window_ms: float = 5.0,
    log_level: str = "info",
    api_key: str | None = None,
    insecure: bool = False,
    limits: ServerLimits | None = None,
) -> None:
    """Load ``model_name`` (as ``hf:`` would: ``smollm2-135m``, a checkpoint folder, an HF id) and serve it.
    ``api_key`` defaults to ``$COUNTEROFFER_API_KEY``; a non-loopback ``host`` needs one unless ``insecure``."""
    import os

    import uvicorn

    api_key = api_key or os.environ.get(API_KEY_ENV) or None
    check_exposure(host, api_key, insecure)  # before the model loads: a refused start costs nothing
    _log_to_stderr(log_level)
    name = model_name.removeprefix("hf:")
    try:
        model = load_chat_model(name, dtype, device, max_batch)
    except (OSError, ValueError, RuntimeError) as exc:  # as for an hf: agent: no such model or path, no hub, no package
        raise ConfigError(f"cannot load model {name!r}: {exc}") from exc
    app = create_app(
        model,
        served_name=served_name or name,
        max_batch=max_batch,
        batch_window_ms=batch_window_ms,
        api_key=api_key,
        limits=limits,
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def _log_to_stderr(level: str) -> None:
    """Show this package's log lines (uvicorn configures only its own loggers)."""
    package = logging.getLogger("counteroffer")
    if not package.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        package.addHandler(handler)
        package.propagate = False
    package.setLevel(level.upper())
