"""Token-in, token-out generation for the policy during GRPO rollouts.

A multi-turn rollout feeds the model the exact token ids of the episode so far and gets back the sampled ids of
one turn with their sampling log-probabilities. Two backends:

- :class:`TransformersGenerator`: the policy being trained generates itself (``model.generate`` on left-padded
  id batches). This is the CPU path and the small-GPU path.
- :class:`VLLMGenerator`: TRL's vLLM engine (a ``trl vllm-serve`` server or a colocated engine), which TRL keeps
  in sync with the trained weights before each rollout. This is the multi-GPU path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from counteroffer.agents.llm.backend import Sampling


@dataclass(frozen=True, slots=True)
class GeneratedTurn:
    ids: list[int]
    logprobs: list[float]


class TurnGenerator(Protocol):
    def generate(self, prompts: Sequence[Sequence[int]], sampling: Sampling, seed: int) -> list[GeneratedTurn]:
        """One turn per prompt (token ids), ending at the first stop token (included) or ``max_new_tokens``."""
        ...


class TransformersGenerator:
    """Sampling from a ``transformers`` model (the trainer's own policy), in chunks of ``max_batch`` sequences."""

    def __init__(
        self,
        model,  # noqa: ANN001 - a transformers causal LM (possibly a peft model)
        pad_token_id: int,
        stop_token_ids: Sequence[int],
        max_batch: int = 64,
        bf16: bool = False,
    ) -> None:
        self.model = model
        self.pad_token_id = pad_token_id
        self.stop_token_ids = list(stop_token_ids)
        self.max_batch = max_batch
        self.bf16 = bf16  # generate under bfloat16 autocast, like the training passes (about 1.5x faster on CPU)

    def generate(self, prompts: Sequence[Sequence[int]], sampling: Sampling, seed: int) -> list[GeneratedTurn]:
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths share a chunk
        results: list[GeneratedTurn] = [GeneratedTurn([], [])] * len(prompts)
        for start in range(0, len(order), self.max_batch):
            chunk = order[start : start + self.max_batch]
            turns = self._generate_chunk([prompts[i] for i in chunk], sampling, seed + start)
            for index, turn in zip(chunk, turns, strict=True):
                results[index] = turn
        return results

    def _generate_chunk(self, prompts: list[Sequence[int]], sampling: Sampling, seed: int) -> list[GeneratedTurn]:
        device = next(self.model.parameters()).device
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            input_ids[row, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
            attention_mask[row, width - len(prompt) :] = 1
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16):
                torch.manual_seed(seed)
                output = self.model.generate(
                    input_ids=input_ids.to(device),
                    attention_mask=attention_mask.to(device),
                    do_sample=True,
                    temperature=sampling.temperature,
                    top_p=sampling.top_p,
                    top_k=0,
                    max_new_tokens=sampling.max_new_tokens,
                    eos_token_id=self.stop_token_ids,
                    pad_token_id=self.pad_token_id,
                    use_cache=True,
                    output_scores=True,
                    return_dict_in_generate=True,
                )
        finally:
            self.model.train(was_training)
        new_tokens = output.sequences[:, width:]
        # ``scores`` are the logits after temperature and top-p, i.e. the distribution each token was drawn from.
        # One step at a time: a (batch × steps × vocabulary) stack would take gigabytes to keep one value per row.
        sampled = torch.stack(
            [
                step.float().log_softmax(dim=-1).gather(-1, new_tokens[:, position, None])[:, 0]
                for position, step in enumerate(output.scores)
            ],
            dim=1,
        )
        stops = set(self.stop_token_ids)
        turns = []
        for row in range(len(prompts)):
            ids = new_tokens[row].tolist()
            end = next((i + 1 for i, token in enumerate(ids) if token in stops), len(ids))
            turns.append(GeneratedTurn(ids[:end], sampled[row, :end].tolist()))
        return turns


class VLLMGenerator:
    """Sampling through the vLLM engine TRL manages for a trainer (``use_vllm=True``).

    Each process sends its own episodes (``n=1`` per sequence): multi-turn episodes end at different turns on
    different processes, so the per-turn calls cannot be the collective gather TRL uses for single-turn prompts.
    Not exercised in CI (no GPU there); the CPU path shares everything but this class.
    """

    def __init__(self, trainer) -> None:  # noqa: ANN001 - a trl.GRPOTrainer with use_vllm=True
        self.engine = trainer.vllm_generation
        self.mode = trainer.args.vllm_mode

    def generate(self, prompts: Sequence[Sequence[int]], sampling: Sampling, seed: int) -> list[GeneratedTurn]:
        if not prompts:
            return []
        if self.mode == "server":
            output = self.engine.vllm_client.generate(
                prompts=[list(p) for p in prompts],
                n=1,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_new_tokens,
                logprobs=0,
                generation_kwargs={"seed": seed},
            )
            return [
                GeneratedTurn(list(ids), [float(lp[0]) for lp in logprobs])
                for ids, logprobs in zip(output["completion_ids"], output["logprobs"], strict=True)
            ]
        from vllm import SamplingParams

        params = SamplingParams(
            n=1,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_new_tokens,
            logprobs=0,
            seed=seed,
        )
        outputs = self.engine.llm.generate([{"prompt_token_ids": list(p)} for p in prompts], params, use_tqdm=False)
        turns = []
        for output in outputs:
            completion = output.outputs[0]
            logprobs = [
                float(step[token].logprob)
                for step, token in zip(completion.logprobs, completion.token_ids, strict=True)
            ]
            turns.append(GeneratedTurn(list(completion.token_ids), logprobs))
        return turns
