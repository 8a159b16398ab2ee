"""Multi-turn GRPO on TRL's ``GRPOTrainer`` with a custom ``rollout_func``.

Each optimizer step, TRL hands this process its slice of train products, each repeated ``group_size`` times
(the dataset's prompt is the scenario id). :class:`EpisodeRollout` plays all those episodes at once with the
rollout engine (the policy answers every buyer turn of a round in one generation call; the seller is any agent,
always regulated by the game) and returns, per episode, the buyer's first prompt, the rest of the episode as the
"completion" with ``env_mask`` 0 on the seller's and the game's tokens, the sampling log-probabilities, and the
game's verifiable reward, which the reward function passes through. TRL then computes group-relative advantages
per product and the clipped policy loss on the buyer's own tokens only.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from counteroffer.agents.base import Agent
from counteroffer.agents.llm.agent import LLMAgent
from counteroffer.agents.llm.backend import Sampling
from counteroffer.agents.llm.hf import HFBackend, HFChatModel
from counteroffer.agents.llm.prompts import PromptBuilder
from counteroffer.agents.registry import make_agent
from counteroffer.catalog.models import Scenario
from counteroffer.catalog.recipes import load_scenarios
from counteroffer.evaluate.summary import mean_metrics
from counteroffer.game.messages import Role
from counteroffer.game.negotiation import GameConfig
from counteroffer.game.records import EpisodeRecord, EpisodeStatus, deadlock_rate
from counteroffer.game.transcript import transcript_text
from counteroffer.rollout.runner import EpisodeJob, episode_seed, plan_jobs, run_episodes
from counteroffer.train.config import TrainConfig
from counteroffer.train.generation import TransformersGenerator, TurnGenerator, VLLMGenerator
from counteroffer.train.logs import TrainLog
from counteroffer.train.model import load_trainable, peft_config, save_final
from counteroffer.train.policy import POLICY_SPEC, PolicyBuyer
from counteroffer.train.stage import is_main_process, start_stage, trainer_arguments
from counteroffer.train.tokens import ChatTokenizer


def negotiation_reward(completions: list, episode_reward: list[float | None], **_: Any) -> list[float | None]:
    """The game's verifiable buyer reward, computed from the deal price during the rollout; ``None`` for an
    episode whose seller failed (TRL leaves it out of its group's baseline and gives it no advantage)."""
    return episode_reward


class EpisodeRollout:
    """TRL ``rollout_func``: plays the step's episodes and returns them as token sequences with masks."""

    def __init__(self, config: TrainConfig, scenarios: Sequence[Scenario], seller: Agent, log: TrainLog) -> None:
        self.config = config
        self.scenarios = {s.scenario_id: s for s in scenarios}
        self.seller = seller
        self.log = log
        self.prompts = PromptBuilder(Role.BUYER, config=config.prompt_config())
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
            self._generator = TransformersGenerator(
                model,
                tokenizer.pad_token_id,
                self._chat_tokenizer.stop_token_ids,
                self.config.grpo.generation.max_batch,
                bf16=trainer.args.bf16,
            )

    def __call__(self, prompts: list[str], trainer) -> dict[str, list]:  # noqa: ANN001 - a trl.GRPOTrainer
        if self._generator is None:
            self._setup(trainer)
        assert self._chat_tokenizer is not None and self._generator is not None
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
            jobs.append(
                EpisodeJob(
                    POLICY_SPEC,
                    self.seller.spec,
                    self.config.grpo.persona,
                    self.scenarios[scenario_id],
                    seen[scenario_id],
                    seed,
                )
            )
            seen[scenario_id] += 1
        records: dict[int, EpisodeRecord] = {}
        run_episodes(
            jobs,
            lambda job: (buyer, self.seller),
            lambda record: records.__setitem__(record.seed, record),
            config=GameConfig(max_turns=self.config.max_turns),
            concurrency=self.config.grpo.episodes_per_batch,
        )
        ordered = [records[job.seed] for job in jobs]
        tokens = [buyer.episodes[job.seed] for job in jobs]
        self._report(ordered, trainer, step)
        return {
            "prompt_ids": [t.prompt_ids for t in tokens],
            "completion_ids": [t.completion_ids for t in tokens],
            "logprobs": [t.logprobs for t in tokens],
            "env_mask": [t.mask for t in tokens],
            "episode_reward": [r.reward if r.status is EpisodeStatus.OK else None for r in ordered],
        }

    def _report(self, records: list[EpisodeRecord], trainer, step: int) -> None:  # noqa: ANN001
        """Game metrics over every process's episodes (a collective: each process calls it once per step)."""
        if trainer.accelerator.num_processes > 1:
            from accelerate.utils import gather_object

            records = gather_object(records)
        if not trainer.accelerator.is_main_process:
            return
        scored = [r.metrics for r in records if r.status is EpisodeStatus.OK and r.metrics is not None]
        game = mean_metrics(scored)
        finished = [r.outcome for r in records if r.status is EpisodeStatus.OK and r.outcome is not None]
        game["deadlock_rate"] = deadlock_rate(finished)
        game["episodes"] = len(records)
        game["errored"] = sum(r.status is EpisodeStatus.ERRORED for r in records)
        samples = random.Random(step).sample(records, min(self.config.grpo.sample_transcripts, len(records)))
        self.log.add(game=game, samples=[transcript_text(r) for r in samples])


class HeldOutEvaluation:
    """Plays the current policy on the evaluation split every ``evaluation.every_steps`` steps (main process)."""

    def __init__(self, config: TrainConfig, log: TrainLog) -> None:
        self.config = config
        self.log = log
        settings = config.evaluation
        scenario_set = load_scenarios(
            config.catalog, settings.split, data_root=config.data_root, limit=settings.scenarios
        )
        self.jobs = plan_jobs(
            scenario_set.scenarios, [POLICY_SPEC], settings.seller, settings.persona, settings.rollouts, config.seed
        )
        self.seller = make_agent(settings.seller, Role.SELLER, settings.persona)

    def evaluate(self, model, tokenizer, step: int) -> dict[str, float | None]:  # noqa: ANN001
        settings = self.config.evaluation
        chat_model = HFChatModel(f"policy@{step}", model, tokenizer, max_batch=settings.max_batch)
        buyer = LLMAgent(
            POLICY_SPEC,
            Role.BUYER,
            HFBackend(chat_model),
            Sampling(settings.temperature, 1.0, self.config.grpo.max_new_tokens),
            prompts=self.config.prompt_config(),
        )
        records: list[EpisodeRecord] = []
        run_episodes(
            self.jobs,
            lambda job: (buyer, self.seller),
            records.append,
            config=GameConfig(max_turns=self.config.max_turns),
        )
        game = mean_metrics([r.metrics for r in records if r.metrics is not None])
        game["episodes"] = len(records)
        self.log.write({"kind": "eval", "step": step, "game": game, "samples": [transcript_text(records[0])]})
        return game


def _evaluation_callback(evaluation: HeldOutEvaluation, every: int):  # noqa: ANN202
    from transformers import TrainerCallback

    class EvaluateEvery(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):  # noqa: ANN001, ANN201
            if state.global_step % every == 0 and state.is_world_process_zero:
                evaluation.evaluate(model, processing_class, state.global_step)

    return EvaluateEvery()


def run_grpo(config: TrainConfig, *, resume: bool = False) -> Path:
    """Train the buyer with multi-turn GRPO; returns the folder of the final checkpoint (``OUT/grpo/final``)."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is experimental in TRL; pinned minor
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    settings = config.grpo
    out = config.grpo_dir
    checkpoint, log = start_stage(out, resume)
    init = settings.init or str(config.sft_dir / "final")
    if settings.init is None and not Path(init).is_dir():
        raise ValueError(
            f"GRPO starts from the SFT checkpoint {init}, which does not exist: run `train sft` first or set grpo.init"
        )
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    episodes = settings.products_per_step * settings.group_size
    per_step = settings.per_device_batch_size * world_size
    if episodes % per_step:
        raise ValueError(
            f"products_per_step × group_size = {episodes} episodes per step must be a multiple of "
            f"per_device_batch_size × processes = {per_step}"
        )
    scenario_set = load_scenarios(config.catalog, "train", data_root=config.data_root)
    model, tokenizer = load_trainable(init, config.dtype)
    seller = make_agent(settings.seller, Role.SELLER, settings.persona)
    args = GRPOConfig(
        **trainer_arguments(settings, out, config.seed),
        max_steps=settings.steps,
        lr_scheduler_type="constant_with_warmup",
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
    dataset = Dataset.from_dict({"prompt": [s.scenario_id for s in scenario_set.scenarios]})
    callbacks: list = [log]
    if config.evaluation.every_steps and is_main_process():
        callbacks.append(_evaluation_callback(HeldOutEvaluation(config, log), config.evaluation.every_steps))
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[negotiation_reward],
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config(settings.lora),
        rollout_func=EpisodeRollout(config, scenario_set.scenarios, seller, log),
        callbacks=callbacks,
    )
    if config.evaluation.every_steps and trainer.is_deepspeed_enabled:
        raise ValueError(
            "evaluation.every_steps generates with the in-process model, which DeepSpeed shards; set it "
            "to 0 and evaluate saved checkpoints with `counteroffer bench --buyer hf:CHECKPOINT`"
        )
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        return save_final(trainer, out, config.prompts, settings.max_new_tokens)
    finally:
        seller.close()
