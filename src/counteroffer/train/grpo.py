"""Multi-turn GRPO on TRL's ``GRPOTrainer`` with a custom ``rollout_func``.

Each optimizer step, TRL hands this process its slice of train products, each repeated ``group_size`` times
(the dataset's prompt is the scenario id). Each product meets a seller drawn from the training mixture for this
step, the same for all its rollouts, so a group's baseline compares like with like. :class:`EpisodeRollout`
plays all those episodes at once with the rollout engine (the policy answers every buyer turn of a round in one
generation call, keeping each episode's cache between turns; the seller is any agent, always regulated by the
game) and returns, per episode, the buyer's first prompt, the rest of the episode as the
"completion" with ``env_mask`` 0 on the seller's and the game's tokens, the sampling log-probabilities, and the
game's verifiable reward, which the reward function passes through. TRL then computes group-relative advantages
per product and the clipped policy loss on the buyer's own tokens only.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from counteroffer.agents import LLMAgent
from counteroffer.analysis.phases import mutual_interest_deadlock_rate
from counteroffer.catalog.models import Scenario
from counteroffer.errors import ConfigError
from counteroffer.evaluate.summary import mean_metrics
from counteroffer.game.messages import Role
from counteroffer.game.negotiation import GameConfig
from counteroffer.game.records import EpisodeRecord, EpisodeStatus, deadlock_rate
from counteroffer.game.transcript import transcript_text
from counteroffer.models.backend import Sampling
from counteroffer.models.hf import HFBackend, HFChatModel
from counteroffer.prompts.render import PromptBuilder
from counteroffer.rollout.mixture import SellerChoice, SellerMixture
from counteroffer.rollout.runner import EpisodeJob, episode_seed, run_episodes
from counteroffer.seeding import derive_seed
from counteroffer.train.config import TrainConfig
from counteroffer.train.generation import CachedGenerator, TurnGenerator, VLLMGenerator, sync_by_reload_on_cpu
from counteroffer.train.logs import TrainLog, TrainLogEntry
from counteroffer.train.model import BestPolicy, load_trainable, peft_config, save_final
from counteroffer.train.policy import POLICY_SPEC, PolicyBuyer
from counteroffer.train.stage import (
    is_main_process,
    resolve_bf16,
    start_stage,
    times_played,
    trainer_arguments,
    training_scenarios,
    trl_arguments,
)
from counteroffer.train.timing import StepClock, timed_trainer_class
from counteroffer.train.tokens import ChatTokenizer


def negotiation_reward(completions: list, episode_reward: list[float | None], **_: Any) -> list[float | None]:
    """The game's verifiable buyer reward, computed from the deal price during the rollout; ``None`` for an
    episode whose seller failed (TRL leaves it out of its group's baseline and gives it no advantage)."""
    return episode_reward


class EpisodeRollout:
    """TRL ``rollout_func``: plays the step's episodes and returns them as token sequences with masks."""

    def __init__(
        self,
        config: TrainConfig,
        scenarios: Sequence[Scenario],
        sellers: SellerMixture,
        log: TrainLog,
        clock: StepClock | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.scenarios = {s.scenario_id: s for s in scenarios}
        self.sellers = sellers
        self.log = log
        self.prompts = PromptBuilder(Role.BUYER, settings=config.prompts)
        self.sampling = Sampling(config.grpo.temperature, config.grpo.top_p, config.grpo.max_new_tokens)
        self._generator: TurnGenerator | None = None
        self._chat_tokenizer: ChatTokenizer | None = None

    def _setup(self, trainer) -> None:  # noqa: ANN001
        tokenizer = trainer.processing_class
        self._chat_tokenizer = ChatTokenizer(tokenizer)
        if trainer.args.use_vllm:
            self._generator = VLLMGenerator(trainer)
        else:
            model = trainer.accelerator.unwrap_model(trainer.model)
            self._generator = CachedGenerator(
                model,
                tokenizer.pad_token_id,
                self._chat_tokenizer.stop_token_ids,
                max_batch=self.config.grpo.generation.max_batch,
                bf16=trainer.args.bf16,
            )

    def __call__(self, prompts: list[str], trainer) -> dict[str, list]:  # noqa: ANN001 - a trl.GRPOTrainer
        if self._generator is None:
            self._setup(trainer)
        assert self._chat_tokenizer is not None and self._generator is not None
        self._generator.reset()  # the weights changed since the last rollout
        counted = self._generator.stats.as_dict() if isinstance(self._generator, CachedGenerator) else None
        started = time.perf_counter()
        buyer = PolicyBuyer(self._generator, self._chat_tokenizer, self.prompts, self.sampling)
        step = trainer.state.global_step
        process = trainer.accelerator.process_index
        jobs, seen = [], Counter[str]()
        for position, scenario_id in enumerate(prompts):
            if scenario_id not in self.scenarios:
                raise KeyError(f"prompt {scenario_id!r} is not a train scenario id")
            # Unique per (step, process, position): the policy tells episodes apart by seed, and a resumed run
            # replays the same seeds for the same step.
            seed = episode_seed(self.config.seed, f"grpo|{step}|{process}|{position}", 0)
            seller = self.sellers.draw(f"grpo|{step}|{scenario_id}", self.config.seed)
            scenario = self.scenarios[scenario_id]
            jobs.append(EpisodeJob(POLICY_SPEC, seller.spec, seller.persona, scenario, seen[scenario_id], seed))
            seen[scenario_id] += 1
        agents = {(c.spec, c.persona): (buyer, self.sellers.agent(c)) for c in self.sellers.choices}
        records: dict[int, EpisodeRecord] = {}
        run_episodes(
            jobs,
            lambda job: agents[job.seller, job.persona],
            lambda record: records.__setitem__(record.seed, record),
            config=GameConfig(max_turns=self.config.max_turns),
            concurrency=self.config.grpo.episodes_per_batch,
        )
        ordered = [records[job.seed] for job in jobs]
        tokens = [buyer.episodes[job.seed] for job in jobs]
        elapsed = time.perf_counter() - started
        rollout: dict[str, float] = {"seconds": round(elapsed, 2)}
        if counted is not None:
            rollout.update(self._generator.stats.since(counted))  # type: ignore[union-attr]
        if self.clock is not None:
            self.clock.add("rollout", elapsed)
            self.clock.add("policy_generation", rollout.get("generate_seconds", 0.0))
        self._report(ordered, trainer, step, rollout)
        return {
            "prompt_ids": [t.prompt_ids for t in tokens],
            "completion_ids": [t.completion_ids for t in tokens],
            "logprobs": [t.logprobs for t in tokens],
            "env_mask": [t.mask for t in tokens],
            "episode_reward": [scored_reward(r) for r in ordered],
        }

    def _report(self, records: list[EpisodeRecord], trainer, step: int, rollout: dict[str, float]) -> None:  # noqa: ANN001
        """Game metrics over every process's episodes (a collective: each process calls it once per step)."""
        if trainer.accelerator.num_processes > 1:
            from accelerate.utils import gather_object

            records = gather_object(records)
        if not trainer.accelerator.is_main_process:
            return
        samples = random.Random(derive_seed(self.config.seed, "samples", step)).sample(
            records, min(self.config.grpo.sample_transcripts, len(records))
        )
        fields: dict[str, Any] = {"game": game_metrics(records), "samples": [transcript_text(r) for r in samples]}
        group_size = self.config.grpo.group_size
        fields["groups"] = {
            "count": len(records) // group_size,
            "flat_rate": flat_group_rate([scored_reward(r) for r in records], group_size),
        }
        if len(self.sellers.choices) > 1:
            fields["game_by_seller"] = metrics_by_seller(records)
        fields["rollout"] = rollout  # this process's generation: seconds and token counts
        self.log.add(**fields)


def scored_reward(record: EpisodeRecord) -> float | None:
    """The reward GRPO trains on; ``None`` for an errored episode (its seller failed: no verdict to train on)."""
    return record.reward if record.status is EpisodeStatus.OK else None


def flat_group_rate(rewards: Sequence[float | None], group_size: int) -> float:
    """The share of groups (``group_size`` consecutive episodes, TRL's order) whose scored episodes all earned the
    same reward: every advantage in them is 0, so they teach nothing. TRL's ``frac_reward_zero_std`` cannot say
    this under ``scale_rewards: batch``, where it reads the whole batch's spread. ``None``: an errored episode."""
    if group_size < 1 or len(rewards) % group_size:
        raise ValueError(f"{len(rewards)} rewards do not split into groups of {group_size}")
    groups = [rewards[start : start + group_size] for start in range(0, len(rewards), group_size)]
    flat = sum(len({round(r, 9) for r in group if r is not None}) <= 1 for group in groups)
    return flat / len(groups) if groups else 0.0


def game_metrics(records: Sequence[EpisodeRecord]) -> dict[str, Any]:
    """Mean game metrics of a set of episodes, their deadlock rates (all episodes; mutual-interest ones only, what
    ``counteroffer phases`` tests) and counts (errored episodes not scored)."""
    scored = [r for r in records if r.status is EpisodeStatus.OK and r.metrics is not None]
    game: dict[str, Any] = mean_metrics([r.metrics for r in scored])
    game["deadlock_rate"] = deadlock_rate([r.outcome for r in scored if r.outcome is not None])
    game["mutual_interest_deadlock_rate"] = mutual_interest_deadlock_rate(scored)
    game["episodes"] = len(records)
    game["errored"] = len(records) - len(scored)
    return game


def metrics_by_seller(records: Sequence[EpisodeRecord]) -> dict[str, dict[str, Any]]:
    """:func:`game_metrics` per seller of the mixture, keyed by its label."""
    groups: dict[str, list[EpisodeRecord]] = {}
    for record in records:
        label = SellerChoice(spec=record.seller, persona=record.persona).label
        groups.setdefault(label, []).append(record)
    return {label: game_metrics(group) for label, group in sorted(groups.items())}


class HeldOutEvaluation:
    """The validation curve: every ``evaluation.every_steps`` steps the policy plays the held-out train products
    (never the test split), each against a seller drawn from the evaluation mixture (the same draw every time,
    so the points of the curve are comparable). Main process only."""

    def __init__(self, config: TrainConfig, scenarios: Sequence[Scenario], log: TrainLog) -> None:
        self.config = config
        self.log = log
        settings = config.evaluation
        self.sellers = SellerMixture(settings.sellers)
        self.jobs = []
        for scenario in scenarios[: settings.scenarios]:
            for index in range(settings.rollouts):
                seller = self.sellers.draw(f"validation|{scenario.scenario_id}|{index}", config.seed)
                seed = episode_seed(config.seed, scenario.scenario_id, index)
                self.jobs.append(EpisodeJob(POLICY_SPEC, seller.spec, seller.persona, scenario, index, seed))

    def evaluate(self, model, tokenizer, step: int) -> dict[str, Any]:  # noqa: ANN001
        settings = self.config.evaluation
        chat_model = HFChatModel(f"policy@{step}", model, tokenizer, max_batch=settings.max_batch)
        chat_model.engine.bf16 = resolve_bf16(self.config.grpo.bf16)
        buyer = LLMAgent(
            POLICY_SPEC,
            Role.BUYER,
            HFBackend(chat_model),
            Sampling(settings.temperature, 1.0, self.config.grpo.max_new_tokens),
            prompts=self.config.prompts,
        )
        records: list[EpisodeRecord] = []
        run_episodes(
            self.jobs,
            lambda job: (buyer, self.sellers.agent(SellerChoice(spec=job.seller, persona=job.persona))),
            records.append,
            config=GameConfig(max_turns=self.config.max_turns),
        )
        fields: dict[str, Any] = {"game": game_metrics(records)}
        if len(self.sellers.choices) > 1:
            fields["game_by_seller"] = metrics_by_seller(records)
        fields["samples"] = [transcript_text(records[0])] if records else []
        self.log.write(TrainLogEntry(kind="eval", step=step, **fields))
        return fields["game"]


def _evaluation_callback(evaluation: HeldOutEvaluation, every: int, best: BestPolicy | None):  # noqa: ANN202
    from transformers import TrainerCallback

    class EvaluateEvery(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):  # noqa: ANN001, ANN201
            if state.global_step % every == 0 and state.is_world_process_zero:
                game = evaluation.evaluate(model, processing_class, state.global_step)
                if best is not None:
                    best.offer(model, processing_class, state.global_step, game)

    return EvaluateEvery()


def grpo_prompts(scenarios: Sequence[Scenario], conflicting_repeats: int) -> list[str]:
    """The GRPO dataset's prompts: every train scenario id once, the conflicting-interest ones
    ``conflicting_repeats`` times (TRL's sampler shuffles them)."""
    return [s.scenario_id for s in scenarios for _ in range(times_played(s, conflicting_repeats))]


def run_grpo(config: TrainConfig, *, resume: bool = False) -> Path:
    """Train the buyer with multi-turn GRPO; returns the folder of the final checkpoint (``OUT/grpo/final``)."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is experimental in TRL; pinned minor
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    if config.role is not Role.BUYER:
        raise ConfigError(
            "GRPO trains the buyer (role: buyer); a trained seller plays as a frozen, regulated opponent: name its "
            "checkpoint in grpo.sellers as hf:PATH"
        )
    settings = config.grpo
    out = config.grpo_dir
    checkpoint, log = start_stage(out, resume)
    init = settings.init or str(config.sft_dir / "final")
    if settings.init is None and not Path(init).is_dir():
        raise ConfigError(
            f"GRPO starts from the SFT checkpoint {init}, which does not exist: run `train sft` first or set grpo.init"
        )
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    episodes = settings.products_per_step * settings.group_size
    per_step = settings.per_device_batch_size * world_size
    if episodes % per_step:
        raise ConfigError(
            f"products_per_step × group_size = {episodes} episodes per step must be a multiple of "
            f"per_device_batch_size × processes = {per_step}"
        )
    scenarios, validation = training_scenarios(config)
    if config.evaluation.every_steps and not validation:
        raise ConfigError("evaluation.every_steps needs held-out products: set validation_products")
    model, tokenizer = load_trainable(init, config.dtype)
    sellers = SellerMixture(settings.sellers)
    args = GRPOConfig(
        **trl_arguments(
            GRPOConfig,
            "grpo",
            settings.trl,
            **trainer_arguments(settings, out, config.seed),
            max_steps=settings.steps,
            gradient_accumulation_steps=episodes // per_step,
            generation_batch_size=episodes,
            num_generations=settings.group_size,
            beta=settings.beta,
            epsilon=settings.epsilon,
            loss_type=settings.loss_type,
            scale_rewards=settings.scale_rewards,
            temperature=settings.temperature,
            top_p=settings.top_p,
            max_completion_length=settings.max_new_tokens,  # per turn: what vLLM is asked for at each call
            use_vllm=settings.generation.backend == "vllm",
            vllm_mode=settings.generation.vllm_mode,
            vllm_server_base_url=settings.generation.vllm_server_base_url,
            vllm_gpu_memory_utilization=settings.generation.vllm_gpu_memory_utilization,
            vllm_tensor_parallel_size=settings.generation.vllm_tensor_parallel_size,
            log_completions=False,
        )
    )
    dataset = Dataset.from_dict({"prompt": grpo_prompts(scenarios, settings.conflicting_repeats)})
    clock = StepClock(log)
    callbacks: list = [log, clock]
    if config.evaluation.every_steps and is_main_process():
        evaluation = HeldOutEvaluation(config, validation, log)
        best = BestPolicy(out, config.prompts, settings.max_new_tokens) if config.evaluation.keep_best else None
        callbacks.append(_evaluation_callback(evaluation, config.evaluation.every_steps, best))
    trainer = timed_trainer_class(GRPOTrainer)(
        model=model,
        reward_funcs=[negotiation_reward],
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config(settings.lora),
        rollout_func=EpisodeRollout(config, scenarios, sellers, log, clock),
        callbacks=callbacks,
        clock=clock,
    )
    if args.use_vllm and args.vllm_mode == "colocate":
        sync_by_reload_on_cpu(trainer)
    if config.evaluation.every_steps and trainer.is_deepspeed_enabled:
        raise ConfigError(
            "evaluation.every_steps generates with the in-process model, which DeepSpeed shards; set it "
            "to 0 and evaluate saved checkpoints with `counteroffer bench --buyer hf:CHECKPOINT`"
        )
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        return save_final(trainer, out, config.prompts, settings.max_new_tokens)
    finally:
        sellers.close()
