"""The yardstick for the rollout engine: plain batched ``model.generate``, done right.

:class:`GenerateReference` has the engine's token-in, token-out interface (``generate(prompts, sampling, seeds)``
→ :class:`~counteroffer.models.engine.GeneratedTurn`) and none of its machinery: each call pads its prompts on the
left (as decoder-only generation requires; right padding makes ``generate`` continue from pad tokens), feeds every
prompt whole, and lets ``generate`` run the batch to the end. It is what a user without counteroffer would write,
so the benchmarks compare against it (``bench/bench_llm.py``, ``bench/bench_roofline.py``, ``bench/bench_rollout.py``),
and the tests hold both to the same greedy tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from counteroffer.models.backend import Sampling
from counteroffer.models.engine import GeneratedTurn


class GenerateReference:
    """Batched ``model.generate`` over token ids, ``max_batch`` prompts (sorted by length) a call."""

    def __init__(self, model, pad_token_id: int, stop_token_ids: Sequence[int], max_batch: int = 64) -> None:  # noqa: ANN001
        self.model, self.pad_token_id, self.max_batch = model, pad_token_id, max_batch
        self.stop_token_ids = list(stop_token_ids)
        self.prefilled = 0
        self.generated = 0

    def reset(self) -> None:
        """Nothing is kept between calls."""

    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: Sampling, seeds: Sequence[int]
    ) -> list[GeneratedTurn]:
        """One turn per prompt, ending at the first stop token (included) or ``max_new_tokens``. Sampled turns
        are seeded per batch, not per row (``generate`` has one generator)."""
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results: list[GeneratedTurn] = [GeneratedTurn([], [])] * len(prompts)
        for start in range(0, len(order), self.max_batch):
            chunk = order[start : start + self.max_batch]
            turns = self._batch([prompts[i] for i in chunk], sampling, sum(seeds[i] for i in chunk) % 2**31)
            for index, turn in zip(chunk, turns, strict=True):
                results[index] = turn
        return results

    def _batch(self, prompts: list[Sequence[int]], sampling: Sampling, seed: int) -> list[GeneratedTurn]:
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            input_ids[row, width - len(prompt) :] = torch.tensor(list(prompt))
            attention_mask[row, width - len(prompt) :] = 1
        self.prefilled += int(attention_mask.sum())
        greedy = sampling.temperature <= 0
        drawing = {} if greedy else {"temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": 0}
        torch.manual_seed(seed)
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                do_sample=not greedy,
                **drawing,
                max_new_tokens=sampling.max_new_tokens,
                eos_token_id=self.stop_token_ids,
                pad_token_id=self.pad_token_id,
                output_scores=not greedy,
                return_dict_in_generate=True,
            )
        new = output.sequences[:, width:]
        if greedy:
            sampled = torch.zeros(new.shape)
        else:  # the processed scores: log-probabilities under the distribution each token was drawn from
            sampled = torch.stack(
                [s.float().log_softmax(-1).gather(-1, new[:, i, None])[:, 0] for i, s in enumerate(output.scores)],
                dim=1,
            )
        turns = []
        for row in range(len(prompts)):
            ids = new[row].tolist()
            end = next((i + 1 for i, t in enumerate(ids) if t in self.stop_token_ids), len(ids))
            self.generated += end
            turns.append(GeneratedTurn(ids[:end], sampled[row, :end].tolist()))
        return turns
