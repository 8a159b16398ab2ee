"""The SFT warm start: scripted demonstrations, rendered exactly as the LLM buyer (or seller) sees its turns.

:func:`make_demonstrations` plays each demo buyer on the *train* split (less the held-out validation products),
each episode against a seller drawn from the training mixture, and keeps the episodes worth imitating
(:func:`is_good_demonstration`): deals within the budget with a positive reward, walk-aways from a seller
whose price stayed above the budget (and, with ``sft.keep_conflicting_holds``, holding under the budget to the
turn limit on a product whose budget is below its cost), so the model also learns to refuse to overpay.
:func:`demonstration_tokens` replays a kept episode through the game, builds the buyer's chat at each of its
turns with the same prompt builder the ``hf:`` agent uses, and produces one token sequence per episode with
labels on the buyer's own tokens only (every prompt, seller and game token is ``-100``). :func:`run_sft`
fine-tunes with TRL's ``SFTTrainer`` on those sequences and writes ``OUT/sft/final``, a checkpoint
``hf:OUT/sft/final`` loads.

With ``role: seller`` the roles swap: each scripted seller of ``sft.demo_sellers`` (a strategy and a persona)
meets a scripted buyer drawn per product from ``sft.opponent_buyers``; every episode without an error is kept
(a scripted seller is always well formed and never goes below its cost); the chat is the LLM seller's, with the
persona's instructions in its system prompt, and the loss falls on the seller's tokens only.
"""

from __future__ import annotations

import os
import random
from functools import partial
from pathlib import Path

import msgspec

from counteroffer.agents.base import Agent
from counteroffer.agents.registry import make_agent
from counteroffer.catalog.models import Scenario
from counteroffer.errors import ConfigError
from counteroffer.game.hints import hinted_lever
from counteroffer.game.messages import ActionKind, Role
from counteroffer.game.negotiation import GameConfig, Negotiation
from counteroffer.game.records import EpisodeRecord, EpisodeStatus, Outcome
from counteroffer.game.reward import PRICE_TOLERANCE
from counteroffer.prompts.render import PromptBuilder
from counteroffer.rollout.mixture import draw, draw_seller
from counteroffer.rollout.runner import EpisodeJob, episode_seed, run_episodes
from counteroffer.seeding import derive_seed
from counteroffer.train.config import TrainConfig
from counteroffer.train.log_records import TrainLogEntry
from counteroffer.train.model import load_trainable, peft_config, save_final
from counteroffer.train.stage import start_stage, times_played, trainer_arguments, training_scenarios, trl_arguments
from counteroffer.train.tokens import ChatTokenizer, EpisodeTokens

DEMOS_FILE = "demos.jsonl"
IGNORE_INDEX = -100  # the label transformers' loss skips


def seller_standing_price(record: EpisodeRecord) -> float:
    """The seller's last price in effect when the episode ended (the asking price if it never named one)."""
    prices = [
        m.shown_action.price
        for m in record.messages
        if m.role is Role.SELLER and m.shown_action is not None and m.shown_action.kind is ActionKind.SELL
    ]
    return prices[-1] if prices else record.scenario.asking_price


def is_good_demonstration(record: EpisodeRecord, keep_conflicting_holds: bool = False) -> bool:
    """An episode worth imitating: no buyer error and no offer above the budget, and either a deal within the
    budget with a positive reward, the buyer walking away from a seller whose price stayed above the budget, or,
    with ``keep_conflicting_holds``, on a product whose budget is below its cost, the buyer holding under its
    budget to the turn limit.

    A deadlock on a product that could be bought shows nothing worth doing, so it is left out. On a
    budget-below-cost product, holding out is the right play: against a seller still conceding at its last turn
    the teacher never walks away, so without these episodes the student sees refusals to overpay against only
    some of its sellers (off by default: the recorded CPU run predates it)."""
    if record.status is not EpisodeStatus.OK or record.metrics is None or record.metrics.overshoot:
        return False
    budget = record.scenario.budget
    if record.outcome is Outcome.DEAL:
        return record.price is not None and record.price <= budget + PRICE_TOLERANCE and record.reward > 0
    if record.outcome is Outcome.TURN_LIMIT:
        return keep_conflicting_holds and not record.scenario.mutual_interest
    return record.outcome is Outcome.BUYER_QUIT and seller_standing_price(record) > budget + PRICE_TOLERANCE


def is_good_seller_demonstration(record: EpisodeRecord) -> bool:
    """A seller episode worth imitating: finished without an agent failure, every seller message well formed and
    taking effect as written (no regulator intervention)."""
    return record.status is EpisodeStatus.OK and not any(
        m.role is Role.SELLER and (m.format_error is not None or m.events) for m in record.messages
    )


def _demonstration_jobs(config: TrainConfig, scenarios: list[Scenario]) -> list[EpisodeJob]:
    """The episodes to play: every teacher on every training product (a conflicting-interest one
    ``conflicting_repeats`` times as often), the opponent drawn per product and rollout."""
    settings = config.sft
    jobs: list[EpisodeJob] = []
    for scenario in scenarios[: settings.scenarios]:
        for index in range(settings.rollouts * times_played(scenario, settings.conflicting_repeats)):
            seed = episode_seed(config.seed, scenario.scenario_id, index)
            if config.role is Role.BUYER:
                for spec in settings.demo_buyers:
                    choice = draw_seller(settings.sellers, f"sft|{spec}|{scenario.scenario_id}|{index}", config.seed)
                    jobs.append(EpisodeJob(spec, choice.spec, choice.persona, scenario, index, seed))
            else:
                for teacher in settings.demo_sellers:
                    key = f"sft|{teacher.label}|{scenario.scenario_id}|{index}"
                    buyer = draw(settings.opponent_buyers, key, config.seed, "buyer")
                    jobs.append(EpisodeJob(buyer, teacher.spec, teacher.persona, scenario, index, seed))
    return jobs


def make_demonstrations(config: TrainConfig) -> list[EpisodeRecord]:
    settings = config.sft
    scenarios, _ = training_scenarios(config)
    jobs = _demonstration_jobs(config, scenarios)
    # One buyer per (buyer, seller) pair: the oracle binds to, and simulates, the one seller it meets.
    pairs: dict[tuple[str, str, str], tuple[Agent, Agent]] = {}
    for job in jobs:
        if (job.buyer, job.seller, job.persona) not in pairs:
            buyer, seller = make_agent(job.buyer, Role.BUYER), make_agent(job.seller, Role.SELLER, job.persona)
            buyer.bind_opponent(seller)
            pairs[job.buyer, job.seller, job.persona] = (buyer, seller)
    records: list[EpisodeRecord] = []
    try:
        run_episodes(
            jobs,
            lambda job: pairs[job.buyer, job.seller, job.persona],
            records.append,
            config=GameConfig(max_turns=config.max_turns),
        )
    finally:
        for agents in pairs.values():
            for agent in agents:
                agent.close()
    good = (
        partial(is_good_demonstration, keep_conflicting_holds=settings.keep_conflicting_holds)
        if config.role is Role.BUYER
        else is_good_seller_demonstration
    )
    order = {job.key: i for i, job in enumerate(jobs)}
    kept = sorted((r for r in records if good(r)), key=lambda r: order[r.key])
    if settings.max_demos is not None and len(kept) > settings.max_demos:
        sample = random.Random(derive_seed(config.seed, "demos")).sample(kept, settings.max_demos)
        kept = sorted(sample, key=lambda r: order[r.key])
    return kept


def demonstration_tokens(record: EpisodeRecord, prompts: PromptBuilder, chat_tokenizer: ChatTokenizer) -> EpisodeTokens:
    """The episode as the model of ``prompts.role`` would have seen and written it, turn by turn. A seller that
    hinted at a lever (a reading seller: :mod:`counteroffer.game.hints`) sees it in its prompt, as an LLM seller
    given ``levers`` does when it plays."""
    game = Negotiation(record.scenario, GameConfig(max_turns=record.max_turns))
    lever = hinted_lever(record.messages) if prompts.role is Role.SELLER else None
    tokens = EpisodeTokens()
    for message in record.messages:
        if message.role is prompts.role:
            tokens.observe(prompts.chat(game.view(prompts.role), lever), chat_tokenizer)
            tokens.add_written(prompts.in_money_style(message.raw), chat_tokenizer)
        game.step(message.raw)
    return tokens


def sft_example(tokens: EpisodeTokens) -> dict[str, list[int]]:
    ids = tokens.ids
    labels = [IGNORE_INDEX] * len(tokens.prompt_ids) + [
        token if trained else IGNORE_INDEX for token, trained in zip(tokens.completion_ids, tokens.mask, strict=True)
    ]
    return {"input_ids": ids, "labels": labels}


def run_sft(config: TrainConfig, *, resume: bool = False) -> Path:
    """Make demonstrations and fine-tune on them; returns ``OUT/sft/final``."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    settings = config.sft
    out = config.sft_dir
    # Built first: a misspelt pass-through option fails before the demonstrations are played.
    args = SFTConfig(
        **trl_arguments(
            SFTConfig,
            "sft",
            settings.trl,
            **trainer_arguments(settings, out, config.seed),
            num_train_epochs=settings.epochs,
            gradient_accumulation_steps=settings.gradient_accumulation_steps,
            max_length=settings.max_length,
        )
    )
    checkpoint, log = start_stage(out, resume)
    out.mkdir(parents=True, exist_ok=True)
    demos = make_demonstrations(config)
    if not demos:
        raise ConfigError(
            "no demonstration was worth keeping (a deal within budget or a refusal to overpay): "
            "check sft.demo_buyers and sft.sellers"
            if config.role is Role.BUYER
            else "no seller demonstration finished without an error: check sft.demo_sellers and sft.opponent_buyers"
        )
    with (out / DEMOS_FILE).open("wb") as file:
        for record in demos:
            file.write(msgspec.json.encode(record) + b"\n")
    model, tokenizer = load_trainable(config.model, config.dtype)
    chat_tokenizer = ChatTokenizer(tokenizer)
    builders: dict[str, PromptBuilder] = {}

    def prompts_for(record: EpisodeRecord) -> PromptBuilder:
        """A seller's persona is part of its prompt; the buyer's prompt is the same whoever it meets."""
        persona = record.persona if config.role is Role.SELLER else "neutral"
        if persona not in builders:
            builders[persona] = PromptBuilder(config.role, persona, config.prompts)
        return builders[persona]

    examples = [sft_example(demonstration_tokens(record, prompts_for(record), chat_tokenizer)) for record in demos]
    kept = [e for e in examples if len(e["input_ids"]) <= settings.max_length]
    if checkpoint is None:  # a resumed run's log already starts with this line
        log.write(
            TrainLogEntry(
                kind="data",
                step=0,
                demonstrations=len(demos),
                too_long=len(examples) - len(kept),
                tokens=sum(len(e["input_ids"]) for e in kept),
            )
        )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(kept),
        processing_class=tokenizer,
        peft_config=peft_config(settings.lora),
        callbacks=[log],
    )
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    return save_final(trainer, out, config.prompts, config.grpo.max_new_tokens)
