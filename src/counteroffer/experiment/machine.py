"""The machine an experiment or a benchmark ran on, in one line for its results file."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def _proc_field(path: str, key: str) -> str | None:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(key)), None)


def describe_machine() -> str:
    """CPU model, memory, cores, torch's CPU kernel level and native bfloat16, Python and torch versions (and the
    GPU, where there is one)."""
    import torch

    from counteroffer.train.stage import native_bf16

    cpu = _proc_field("/proc/cpuinfo", "model name") or platform.processor() or platform.machine()
    memory = _proc_field("/proc/meminfo", "MemTotal")
    if memory is not None:
        cpu += f", {int(memory.split()[0]) / 2**20:.0f} GB"
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (
        f"{cpu}, {os.cpu_count()} cores ({torch.backends.cpu.get_cpu_capability()}, native bfloat16: "
        f"{native_bf16()}){gpu}, Python {platform.python_version()}, torch {torch.__version__}"
    )
