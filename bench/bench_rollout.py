"""Rollout cost of one GRPO step, before and after the prefix-caching generator, in one run.

    python bench/bench_rollout.py [--model runs/cpu-learning/sft/final] [--products 4] [--group 4] [--json out.json]

Both generators play the same step: ``--products`` train products × ``--group`` rollouts of the policy buyer
against the training mixture (a product's group meets one seller), exactly as ``EpisodeRollout`` plays them, with
the same per-turn seeds. *Before* is the generator the GRPO rollout used until issue 11: ``model.generate`` on
the whole episode so far at every turn, with ``output_scores`` for the log-probabilities. *After* is
:class:`~counteroffer.models.engine.CachedGenerator`: each episode's cache kept between turns, the group's
first prompt fed once, one preallocated decode batch. Reported: rollout seconds, prompt tokens fed (prefill),
generated tokens, and the rollout's generated tokens per second against raw batched ``generate`` at the same
batch (a prompt of the episodes' mean first-prompt length, the same number of new tokens, no stopping).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from counteroffer.catalog import load_scenarios
from counteroffer.game import GameConfig, Role
from counteroffer.models.backend import Sampling
from counteroffer.models.engine import CachedGenerator
from counteroffer.models.hf import load_model_and_tokenizer
from counteroffer.models.reference import GenerateReference
from counteroffer.prompts.render import PromptBuilder
from counteroffer.prompts.settings import PromptSettings
from counteroffer.rollout.mixture import SellerChoice, SellerMixture
from counteroffer.rollout.runner import EpisodeJob, episode_seed, run_episodes
from counteroffer.train.policy import POLICY_SPEC, PolicyBuyer
from counteroffer.train.tokens import ChatTokenizer

SELLERS = ["scripted:linear", "scripted:titfortat", "scripted:conceder"]


def play_step(generator, chat_tokenizer, prompts, sampling, jobs, mixture, max_turns) -> tuple[float, list]:  # noqa: ANN001
    buyer = PolicyBuyer(generator, chat_tokenizer, prompts, sampling)
    agents = {(c.spec, c.persona): (buyer, mixture.agent(c)) for c in mixture.choices}
    records: list = []
    started = time.perf_counter()
    run_episodes(
        jobs, lambda job: agents[job.seller, job.persona], records.append, config=GameConfig(max_turns=max_turns)
    )
    return time.perf_counter() - started, [buyer.episodes[job.seed] for job in jobs]


def raw_generate_rate(model, tokenizer, batch: int, prompt_length: int, new_tokens: int) -> float:  # noqa: ANN001
    ids = torch.randint(100, 40000, (batch, prompt_length))
    with torch.no_grad():
        started = time.perf_counter()
        model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            pad_token_id=tokenizer.pad_token_id,
        )
    return batch * new_tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/cpu-learning/sft/final")
    parser.add_argument("--prompts", type=Path, default=Path("configs/prompts/compact"))
    parser.add_argument("--products", type=int, default=4)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--max-turns", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    model, tokenizer = load_model_and_tokenizer(args.model, "float32")
    model.eval()
    chat_tokenizer = ChatTokenizer(tokenizer)
    prompts = PromptBuilder(
        Role.BUYER, settings=PromptSettings(templates_dir=args.prompts, description_chars=0, features_chars=0)
    )
    sampling = Sampling(1.0, 1.0, args.max_new_tokens)
    mixture = SellerMixture([SellerChoice(spec=s) for s in SELLERS])
    scenarios = load_scenarios("amazon", "train").scenarios[: args.products]
    jobs = []
    for product in scenarios:
        seller = mixture.draw(f"bench|{product.scenario_id}", 0)
        for rollout in range(args.group):
            seed = episode_seed(0, f"bench|{product.scenario_id}|{rollout}", 0)
            jobs.append(EpisodeJob(POLICY_SPEC, seller.spec, seller.persona, product, rollout, seed))
    stops = chat_tokenizer.stop_token_ids
    before = GenerateReference(model, tokenizer.pad_token_id, stops)
    after = CachedGenerator(model, tokenizer.pad_token_id, stops)
    seconds_before, episodes_before = play_step(
        before, chat_tokenizer, prompts, sampling, jobs, mixture, args.max_turns
    )
    seconds_after, episodes_after = play_step(after, chat_tokenizer, prompts, sampling, jobs, mixture, args.max_turns)
    first_prompt = sum(len(e.prompt_ids) for e in episodes_after) / len(episodes_after)
    generated_after = after.stats.generated
    rollout_rate = generated_after / seconds_after
    raw_rate = raw_generate_rate(model, tokenizer, len(jobs), round(first_prompt), args.max_new_tokens // 2)
    result = {
        "episodes": len(jobs),
        "before": {
            "seconds": round(seconds_before, 1),
            "prefill_tokens": before.prefilled,
            "generated": before.generated,
        },
        "after": {
            "seconds": round(seconds_after, 1),
            "prefill_tokens": after.stats.prefilled,
            "reused_tokens": after.stats.reused,
            "generated": generated_after,
        },
        "seconds_ratio_before_over_after": round(seconds_before / seconds_after, 2),
        "prefill_ratio_before_over_after": round(before.prefilled / max(1, after.stats.prefilled), 2),
        "rollout_generated_tokens_per_second": round(rollout_rate, 1),
        "raw_generate_tokens_per_second_same_batch": round(raw_rate, 1),
        "rollout_over_raw": round(rollout_rate / raw_rate, 2),
        "mean_first_prompt_tokens": round(first_prompt, 1),
        "episode_tokens": round(sum(len(e.ids) for e in episodes_after) / len(episodes_after), 1),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
