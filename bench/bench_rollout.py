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
from collections.abc import Sequence
from pathlib import Path

import torch

from counteroffer.catalog import load_scenarios
from counteroffer.game import GameConfig, Role
from counteroffer.models.backend import Sampling
from counteroffer.models.engine import CachedGenerator, GeneratedTurn
from counteroffer.models.hf import load_model_and_tokenizer
from counteroffer.prompts.render import PromptBuilder
from counteroffer.prompts.settings import PromptSettings
from counteroffer.rollout.mixture import SellerChoice, SellerMixture
from counteroffer.rollout.runner import EpisodeJob, episode_seed, run_episodes
from counteroffer.train.policy import POLICY_SPEC, PolicyBuyer
from counteroffer.train.tokens import ChatTokenizer

SELLERS = ["scripted:linear", "scripted:titfortat", "scripted:conceder"]


class UncachedGenerator:
    """The rollout generator before the cache: re-feeds every episode's whole history at every turn."""

    def __init__(self, model, pad_token_id: int, stop_token_ids: Sequence[int], max_batch: int = 64) -> None:  # noqa: ANN001
        self.model, self.pad_token_id, self.max_batch = model, pad_token_id, max_batch
        self.stop_token_ids = list(stop_token_ids)
        self.prefilled = 0
        self.generated = 0

    def reset(self) -> None:
        pass

    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: Sampling, seeds: Sequence[int]
    ) -> list[GeneratedTurn]:
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results: list[GeneratedTurn] = [GeneratedTurn([], [])] * len(prompts)
        for start in range(0, len(order), self.max_batch):
            chunk = order[start : start + self.max_batch]
            turns = self._chunk([prompts[i] for i in chunk], sampling, sum(seeds[i] for i in chunk) % 2**31)
            for index, turn in zip(chunk, turns, strict=True):
                results[index] = turn
        return results

    def _chunk(self, prompts: list[Sequence[int]], sampling: Sampling, seed: int) -> list[GeneratedTurn]:
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            input_ids[row, width - len(prompt) :] = torch.tensor(list(prompt))
            attention_mask[row, width - len(prompt) :] = 1
        self.prefilled += int(attention_mask.sum())
        torch.manual_seed(seed)
        with torch.no_grad():
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                do_sample=True,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=0,
                max_new_tokens=sampling.max_new_tokens,
                eos_token_id=self.stop_token_ids,
                pad_token_id=self.pad_token_id,
                output_scores=True,
                return_dict_in_generate=True,
            )
        new = output.sequences[:, width:]
        sampled = torch.stack(
            [s.float().log_softmax(-1).gather(-1, new[:, i, None])[:, 0] for i, s in enumerate(output.scores)], dim=1
        )
        turns = []
        for row in range(len(prompts)):
            ids = new[row].tolist()
            end = next((i + 1 for i, t in enumerate(ids) if t in self.stop_token_ids), len(ids))
            self.generated += end
            turns.append(GeneratedTurn(ids[:end], sampled[row, :end].tolist()))
        return turns


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
    before = UncachedGenerator(model, tokenizer.pad_token_id, stops)
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
