"""Token-in, token-out generation for the policy during GRPO rollouts.

A multi-turn rollout feeds the model the exact token ids of the episode so far and gets back the sampled ids of
one turn with their sampling log-probabilities. Two backends:

- :class:`~counteroffer.agents.llm.engine.CachedGenerator`: the policy being trained generates itself, keeping
  each episode's keys and values between turns and computing a group's shared first prompt once. This is the
  CPU path and the small-GPU path; the rollout resets its cache after every optimizer step.
- :class:`VLLMGenerator`: TRL's vLLM engine (a ``trl vllm-serve`` server or a colocated engine), which TRL keeps
  in sync with the trained weights before each rollout. This is the multi-GPU path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from counteroffer.agents.llm.backend import Sampling
from counteroffer.agents.llm.engine import CachedGenerator, GeneratedTurn

__all__ = ["CachedGenerator", "GeneratedTurn", "TurnGenerator", "VLLMGenerator"]


class TurnGenerator(Protocol):
    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: Sampling, seeds: Sequence[int]
    ) -> list[GeneratedTurn]:
        """One turn per prompt (token ids), ending at the first stop token (included) or ``max_new_tokens``."""
        ...

    def reset(self) -> None:
        """The weights changed: forget anything computed with the old ones."""
        ...


class VLLMGenerator:
    """Sampling through the vLLM engine TRL manages for a trainer (``use_vllm=True``).

    Each process sends its own episodes (``n=1`` per sequence): multi-turn episodes end at different turns on
    different processes, so the per-turn calls cannot be the collective gather TRL uses for single-turn prompts.
    Not exercised in CI (no GPU there); the CPU path shares everything but this class.
    """

    def __init__(self, trainer) -> None:  # noqa: ANN001 - a trl.GRPOTrainer with use_vllm=True
        self.engine = trainer.vllm_generation
        self.mode = trainer.args.vllm_mode

    def reset(self) -> None:
        """Nothing to forget: TRL pushes the new weights to the engine before each rollout."""

    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: Sampling, seeds: Sequence[int]
    ) -> list[GeneratedTurn]:
        if not prompts:
            return []
        if self.mode == "server":
            # The server takes one seed per request; the batch's is derived from its members' (order-independent).
            seed = sum(seeds) % 2**31
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

        params = [
            SamplingParams(
                n=1,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_new_tokens,
                logprobs=0,
                seed=seed,
            )
            for seed in seeds
        ]
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
