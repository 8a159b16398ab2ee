"""``counteroffer serve``: a real uvicorn server on the bundled model, used through the real ``openai`` client.

The server runs in a background thread on an ephemeral port for the whole session. Its tests keep completions
short (16-24 tokens) so that the basic completion, the batching test and an episode with both sides on the
endpoint stay fast on a 2-core CPU.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
import pytest
from conftest import run_cli, small_bench

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("torch")
pytest.importorskip("transformers")

import openai  # noqa: E402
import uvicorn  # noqa: E402

from counteroffer.evaluate.bench import run_bench  # noqa: E402
from counteroffer.game.messages import FormatError, Role, parse_message  # noqa: E402
from counteroffer.game.records import EpisodeRecord, EpisodeStatus, EventKind, Outcome  # noqa: E402
from counteroffer.models.backend import Sampling  # noqa: E402
from counteroffer.models.bundled import BundledModelError  # noqa: E402
from counteroffer.models.hf import GenerationOutput, load_chat_model  # noqa: E402
from counteroffer.serve.app import create_app  # noqa: E402
from counteroffer.serve.batcher import Batcher  # noqa: E402
from counteroffer.serve.guard import ExposureError, ServerLimits, check_exposure  # noqa: E402

MODEL = "smollm2-135m"
CHAT = [{"role": "user", "content": "Name one fruit."}]


@dataclass
class Served:
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def client(self) -> openai.OpenAI:
        """The real OpenAI client; no retries, so every error surfaces as it is."""
        return openai.OpenAI(base_url=self.base_url, api_key="test", max_retries=0, timeout=120)

    def stats(self) -> dict:
        return httpx.get(f"{self.base_url}/stats", timeout=10).json()

    def endpoint_spec(self, **params: object) -> str:
        query = "&".join(f"{key}={value}" for key, value in {"max_new_tokens": 24, **params}.items())
        return f"openai:{MODEL}@{self.base_url}?{query}"


@pytest.fixture
def client(server: Served) -> Iterator[openai.OpenAI]:
    with server.client() as client:
        yield client


@contextmanager
def running_server(model: object, **options: object) -> Iterator[Served]:
    """``counteroffer serve``'s app on ``model`` in a real uvicorn server on an ephemeral loopback port."""
    app = create_app(model, served_name=MODEL, max_batch=16, batch_window_ms=10, **options)  # type: ignore[arg-type]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]}, name="test-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()["status"] == "ok":
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            uvicorn_server.should_exit = True
            pytest.fail("the test server did not become healthy")
        time.sleep(0.05)
    try:
        yield Served(port)
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=60)
        sock.close()
        assert not thread.is_alive(), "the test server did not shut down"


@pytest.fixture(scope="session")
def loaded_model() -> object:
    try:
        return load_chat_model(MODEL)
    except BundledModelError as exc:
        pytest.skip(f"bundled model unavailable: {exc}")


@pytest.fixture(scope="session")
def server(loaded_model: object) -> Iterator[Served]:
    with running_server(loaded_model) as served:
        yield served


def _records(out: Path) -> list[EpisodeRecord]:
    lines = (out / "episodes.jsonl").read_bytes().splitlines()
    return [msgspec.json.decode(line, type=EpisodeRecord) for line in lines if line.strip()]


def _no_deal_below_cost(records: list[EpisodeRecord]) -> None:
    for record in records:
        if record.outcome is Outcome.DEAL:
            assert record.price is not None and record.price >= record.scenario.cost


# ------------------------------------------------------------------------------------------------------------- fast


def test_models_and_completion(server: Served, client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data] == [MODEL]
    response = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=16, seed=1)  # type: ignore[arg-type]
    assert response.object == "chat.completion"
    assert response.id.startswith("chatcmpl-") and response.model == MODEL
    choice = response.choices[0]
    assert choice.message.role == "assistant" and choice.message.content and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert response.usage is not None
    assert response.usage.prompt_tokens > 0 and 0 < response.usage.completion_tokens <= 16
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens
    # The alias with the hf: prefix names the same model; text content parts are joined.
    parts = [{"role": "user", "content": [{"type": "text", "text": "Name one "}, {"type": "text", "text": "fruit."}]}]
    again = client.chat.completions.create(model=f"hf:{MODEL}", messages=parts, max_tokens=4)  # type: ignore[arg-type]
    assert again.usage is not None and again.usage.prompt_tokens == response.usage.prompt_tokens
    assert httpx.get(f"http://127.0.0.1:{server.port}/health").json() == {"status": "ok", "model": MODEL}


def test_concurrent_requests_are_batched(server: Served, client: openai.OpenAI) -> None:
    before = server.stats()
    results: list[object] = [None] * 8

    def ask(i: int) -> None:
        try:
            results[i] = client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": f"Give me a number between {i} and {i + 10}."}],
                max_tokens=16,
            )
        except Exception as exc:  # reported below
            results[i] = exc

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for result in results:
        assert not isinstance(result, Exception | None), result
        assert result.choices[0].message.content is not None  # type: ignore[union-attr]
        assert result.usage.completion_tokens > 0  # type: ignore[union-attr]
    after = server.stats()
    assert after["requests"] - before["requests"] == 8
    calls = after["generate_calls"] - before["generate_calls"]
    assert 1 <= calls < 8, after
    assert after["largest_batch"] >= 2


def test_bad_requests_use_openai_errors(server: Served, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as bad_n:
        client.chat.completions.create(model=MODEL, messages=CHAT, n=2)  # type: ignore[arg-type]
    assert bad_n.value.status_code == 400
    assert "n must be 1" in bad_n.value.response.json()["error"]["message"]
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="gpt-9", messages=CHAT)  # type: ignore[arg-type]
    error = unknown.value.response.json()["error"]
    assert (
        error["code"] == "model_not_found" and error["type"] == "invalid_request_error" and "gpt-9" in error["message"]
    )
    with pytest.raises(openai.BadRequestError, match="role"):
        client.chat.completions.create(model=MODEL, messages=[{"role": "robot", "content": "hi"}])  # type: ignore[arg-type, list-item]
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.chat.completions.create(model=MODEL, messages=CHAT, temperature=5)  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="text only"):
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}],  # type: ignore[list-item]
        )
    url = f"{server.base_url}/chat/completions"
    for body in (b"{not json", b'{"model": "smollm2-135m"}', b"[]"):
        response = httpx.post(url, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, body
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    missing = httpx.get(f"http://127.0.0.1:{server.port}/v1/nothing")
    assert missing.status_code == 404 and "error" in missing.json()


def test_streaming_stop_strings_and_seeds(client: openai.OpenAI) -> None:
    greedy = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=16, temperature=0)  # type: ignore[arg-type]
    text = greedy.choices[0].message.content or ""
    assert len(text) >= 6
    stop = text[3:6]
    cut = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=16, temperature=0, stop=[stop, "§"])  # type: ignore[arg-type]
    assert cut.choices[0].message.content == text[: text.find(stop)]
    assert cut.choices[0].finish_reason == "stop"
    first, second = (
        client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=12, seed=7)  # type: ignore[arg-type]
        for _ in range(2)
    )
    assert first.choices[0].message.content == second.choices[0].message.content
    stream = client.chat.completions.create(
        model=MODEL,
        messages=CHAT,  # type: ignore[arg-type]
        max_tokens=16,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == greedy.usage.completion_tokens  # type: ignore[union-attr]


def test_episode_with_both_sides_on_the_endpoint(server: Served, shared_data: Path, tmp_path: Path) -> None:
    before = server.stats()
    result = run_bench(small_bench(tmp_path, shared_data, [server.endpoint_spec()], server.endpoint_spec(reasks=0)))
    assert result.played == 2
    records = _records(tmp_path)
    assert len(records) == 2
    for record in records:
        assert record.status is EpisodeStatus.OK, record.error
        buyer_messages = [m for m in record.messages if m.role is Role.BUYER]
        assert buyer_messages and all(m.raw.strip() for m in buyer_messages)
    _no_deal_below_cost(records)
    assert server.stats()["requests"] > before["requests"]


def test_batcher_groups_by_sampling_and_reports_failures() -> None:
    class FakeModel:
        def __init__(self) -> None:
            self.calls: list[tuple[int, Sampling, list[int]]] = []

        def generate(self, chats, sampling, seed):  # type: ignore[no-untyped-def]
            self.calls.append((len(chats), sampling, seed))
            if sampling.temperature == 9:
                raise RuntimeError("boom")
            return [GenerationOutput(chat[0]["content"].upper(), 1, 1) for chat in chats]

    async def scenario() -> None:
        model = FakeModel()
        batcher = Batcher(model, max_batch=4, window_ms=20)  # type: ignore[arg-type]
        await batcher.start()
        greedy, sampled, broken = Sampling(0.0), Sampling(1.0), Sampling(9.0)
        jobs = [
            batcher.submit([{"role": "user", "content": f"m{i}"}], greedy if i % 2 else sampled, seed=i)
            for i in range(6)
        ]
        outputs = await asyncio.gather(*jobs)
        assert [o.text for o in outputs] == [f"M{i}" for i in range(6)]
        # max_batch 4: the first four (2 greedy + 2 sampled) then the last two, each batch split by sampling.
        assert sorted(size for size, _, _ in model.calls) == [1, 1, 2, 2]
        assert model.calls[0][2] == [0, 2]  # each request keeps its own seed
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.submit([{"role": "user", "content": "x"}], broken)
        assert (await batcher.submit([{"role": "user", "content": "ok"}], greedy)).text == "OK"  # still serving
        assert batcher.stats.generate_calls == 6 and batcher.stats.requests == 8
        await batcher.stop()
        with pytest.raises(RuntimeError, match="not running"):
            await batcher.submit([{"role": "user", "content": "late"}], greedy)

    async def shutdown_while_generating() -> None:
        release = threading.Event()

        class StuckModel:
            def generate(self, chats, sampling, seed):  # type: ignore[no-untyped-def]
                release.wait(10)
                return [GenerationOutput("late", 1, 1) for _ in chats]

        batcher = Batcher(StuckModel(), max_batch=1, window_ms=0)  # type: ignore[arg-type]
        await batcher.start()
        # One request generating in its thread, one queued behind it: both fail, neither hangs.
        waiting = [
            asyncio.ensure_future(batcher.submit([{"role": "user", "content": f"{i}"}], Sampling(1.0)))
            for i in range(2)
        ]
        await asyncio.sleep(0.05)
        await batcher.stop()
        release.set()
        for outcome in await asyncio.gather(*waiting, return_exceptions=True):
            assert isinstance(outcome, RuntimeError) and "shutting down" in str(outcome)

    asyncio.run(scenario())
    asyncio.run(shutdown_while_generating())


def test_serve_command_help() -> None:
    result = run_cli("serve", "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--host", "--port", "--dtype", "--device", "--max-batch", "--name"):
        assert option in result.stdout
    assert "serve" in run_cli("--help").stdout
    # The CLI stays light: FastAPI and torch load only when `serve` runs.
    probe = "import sys, counteroffer.cli.app; print(sorted({'fastapi', 'torch', 'uvicorn'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert loaded.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_llm_seller_on_the_endpoint_plays_several_turns(server: Served, shared_data: Path, tmp_path: Path) -> None:
    before = server.stats()
    run_bench(small_bench(tmp_path, shared_data, ["scripted:anchor"], server.endpoint_spec(reasks=0)))
    records = _records(tmp_path)
    assert len(records) == 2 and all(r.status is EpisodeStatus.OK for r in records)
    _no_deal_below_cost(records)
    seller_messages = [m for r in records for m in r.messages if m.role is Role.SELLER]
    assert len(seller_messages) >= 2
    # reasks=0: one request per seller turn, all of them answered by the server's model.
    assert server.stats()["requests"] - before["requests"] == len(seller_messages)
    for message in seller_messages:
        kinds = [event.kind for event in message.events]
        if EventKind.AGENT_FALLBACK in kinds:
            fallback = next(e for e in message.events if e.kind is EventKind.AGENT_FALLBACK)
            assert fallback.detail == "scripted:linear"
        else:  # the model's own message: only one that parsed is used as it is
            assert message.format_error is None, message.raw
        assert not isinstance(parse_message(message.raw, Role.SELLER), FormatError), message.raw


def test_a_bench_spreads_over_two_servers(
    server: Served, loaded_model: object, shared_data: Path, tmp_path: Path
) -> None:
    """One seller spec naming two real servers (``openai:MODEL@URL1,URL2``, as one would name several vLLM servers):
    the bench's requests are shared between them."""
    with running_server(loaded_model) as second:
        before = [served.stats()["requests"] for served in (server, second)]
        seller = f"openai:{MODEL}@{server.base_url},{second.base_url}?max_new_tokens=24&reasks=0"
        result = run_bench(small_bench(tmp_path / "run", shared_data, ["scripted:anchor"], seller, limit=4,
                                       rollouts=2, max_turns=2))  # fmt: skip
        served = [s.stats()["requests"] - b for s, b in zip((server, second), before, strict=True)]
    assert result.rows[0].episodes == 8 and result.rows[0].errored == 0
    assert min(served) >= 3 and sum(served) >= 8  # both servers answered a share of the seller's turns
    assert max(served) <= 3 * min(served)


# ------------------------------------------------------------------------------------------------ the guarded server

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def guarded(loaded_model: object) -> Iterator[Served]:
    limits = ServerLimits(max_body_bytes=4096, max_messages=4, max_tokens=32)
    with running_server(loaded_model, api_key=KEY, limits=limits) as served:
        yield served


def _error(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"])
    return body["error"]


def test_without_the_key_every_route_but_health_is_401(guarded: Served) -> None:
    assert httpx.get(f"http://127.0.0.1:{guarded.port}/health", timeout=10).status_code == 200
    for method, path in (("GET", "/models"), ("GET", "/stats"), ("POST", "/chat/completions"), ("GET", "/nothing")):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
            response = httpx.request(method, f"{guarded.base_url}{path}", headers=headers, json={}, timeout=10)
            assert response.status_code == 401, (path, headers)
            assert _error(response)["code"] == "invalid_api_key"
    with (
        openai.OpenAI(base_url=guarded.base_url, api_key="wrong", max_retries=0) as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.models.list()
    with openai.OpenAI(base_url=guarded.base_url, api_key=KEY, max_retries=0, timeout=120) as client:
        assert [m.id for m in client.models.list().data] == [MODEL]
        reply = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=4, seed=1)
        assert reply.usage.completion_tokens <= 4


def test_oversized_and_malformed_requests_get_their_errors(guarded: Served) -> None:
    url, auth = f"{guarded.base_url}/chat/completions", {"Authorization": f"Bearer {KEY}"}
    big = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 5000}]}
    response = httpx.post(url, json=big, headers=auth, timeout=10)
    assert response.status_code == 413 and _error(response)["code"] == "request_too_large"

    def chunked():  # no Content-Length: the server counts the stream itself
        yield b'{"model": "' + MODEL.encode() + b'", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}]}'

    response = httpx.post(url, content=chunked(), headers={**auth, "Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 413
    many = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}] * 5}
    response = httpx.post(url, json=many, headers=auth, timeout=10)
    assert response.status_code == 400 and _error(response)["param"] == "messages" and "at most 4" in response.text
    for field in ("max_tokens", "max_completion_tokens"):
        response = httpx.post(url, json={"model": MODEL, "messages": CHAT, field: 33}, headers=auth, timeout=10)
        assert response.status_code == 400 and _error(response)["param"] == field
    response = httpx.post(url, json={"model": MODEL, "messages": CHAT, "n": 2}, headers=auth, timeout=10)
    assert response.status_code == 400 and _error(response)["param"] == "n"
    broken = httpx.post(url, content=b'{"model": ', headers={**auth, "Content-Type": "application/json"}, timeout=10)
    assert broken.status_code == 400 and _error(broken)["type"] == "invalid_request_error"


def test_a_server_beyond_loopback_needs_a_key() -> None:
    check_exposure("127.0.0.1", None, insecure=False)
    check_exposure("::1", None, insecure=False)
    check_exposure("0.0.0.0", KEY, insecure=False)
    check_exposure("0.0.0.0", None, insecure=True)
    for host in ("0.0.0.0", "192.168.1.5", "my-host.example"):
        with pytest.raises(ExposureError, match="--api-key"):
            check_exposure(host, None, insecure=False)
    refused = run_cli("serve", MODEL, "--host", "0.0.0.0", timeout=60)  # refused before the model loads
    assert refused.returncode == 2 and "without an API key" in refused.stderr
    with pytest.raises(ValueError, match="max_messages"):
        ServerLimits(max_messages=0)


def test_a_bounded_load_loses_no_valid_request_and_answers_every_bad_one(loaded_model: object) -> None:
    """The load test of bench/bench_serve_load.py, smaller: 16 concurrent clients, valid requests mixed with
    unauthorised, oversized and malformed ones (BENCHMARKS.md has the 64-client run)."""
    from counteroffer.serve import load

    with running_server(loaded_model, api_key=load.KEY, limits=ServerLimits(**load.LIMITS)) as served:
        outcomes = asyncio.run(load.run_load(served.base_url, clients=16, requests=64, seed=3))
    summary = load.summarise(outcomes, seconds=1.0)
    assert summary["requests"] == 64 and summary["connection_failures"] == 0
    assert summary["as_expected"] == 64, summary["kinds"]
    assert {"valid", "unauthorised", "oversized", "malformed"} <= set(summary["kinds"])
