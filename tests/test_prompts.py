"""Prompt building for LLM agents: private-value isolation, structure, caps and template overrides.

No model is needed: prompts are built from the views the game hands each role during real scripted episodes.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import make_scenario, message

from counteroffer.agents import TurnRequest, make_agent
from counteroffer.catalog import load_scenarios
from counteroffer.game import Negotiation, Role
from counteroffer.prompts.render import SELLER_PERSONAS, PromptBuilder, price_vs_private_value
from counteroffer.prompts.settings import PromptSettings


def _money(amount: float) -> str:
    return f"${amount:,.2f}"


def _views_of_a_scripted_episode(scenario, seller_spec: str = "scripted:boulware"):
    """Every view each role gets during a full scripted episode."""
    buyer = make_agent("scripted:anchor", Role.BUYER)
    seller = make_agent(seller_spec, Role.SELLER)
    game = Negotiation(scenario)
    views = []
    while not game.done:
        view = game.view(game.next_role)
        views.append(view)
        agent = buyer if view.role is Role.BUYER else seller
        game.step(agent.act([TurnRequest(view, 7)])[0])
    return views


def test_no_prompt_ever_contains_the_other_sides_private_value(shared_data: Path) -> None:
    builders = {Role.BUYER: PromptBuilder(Role.BUYER), Role.SELLER: PromptBuilder(Role.SELLER, "manipulative")}
    checked = 0
    for scenario in load_scenarios("amazon", "test", data_root=shared_data).scenarios:
        hidden = {Role.BUYER: _money(scenario.cost), Role.SELLER: _money(scenario.budget)}
        own = {Role.BUYER: _money(scenario.budget), Role.SELLER: _money(scenario.cost)}
        for view in _views_of_a_scripted_episode(scenario):
            text = "\n".join(m["content"] for m in builders[view.role].chat(view))
            assert own[view.role] in text  # the role does get its own private value
            # The other side's value must not appear, unless it is also a public number of this prompt.
            if hidden[view.role] in text:
                public = {_money(scenario.asking_price)} | {_money(p) for p in _prices_shown(view)}
                assert hidden[view.role] in public, (scenario.scenario_id, view.role)
            checked += 1
    assert checked > 128 * 4


def _prices_shown(view) -> list[float]:
    return [m.action.price for m in view.history if m.action.price is not None]


def test_chat_alternates_and_replays_own_messages_verbatim() -> None:
    scenario = make_scenario()
    views = _views_of_a_scripted_episode(scenario)
    buyer_view = [v for v in views if v.role is Role.BUYER][-1]
    chat = PromptBuilder(Role.BUYER).chat(buyer_view)
    assert chat[0]["role"] == "system"
    roles = [m["role"] for m in chat[1:]]
    assert roles[0] == "user" and roles[-1] == "user"
    assert all(a != b for a, b in zip(roles, roles[1:], strict=False)), roles
    assistant = [m["content"] for m in chat if m["role"] == "assistant"]
    assert assistant == list(buyer_view.own_messages)  # own Thoughts included, exactly as written
    assert "Turn" in chat[-1]["content"]


def test_seller_prompt_has_the_persona_and_never_the_buyers_thought() -> None:
    scenario = make_scenario()
    views = _views_of_a_scripted_episode(scenario)
    seller_view = [v for v in views if v.role is Role.SELLER][-1]
    for persona in SELLER_PERSONAS:
        builder = PromptBuilder(Role.SELLER, persona)
        text = "\n".join(m["content"] for m in builder.chat(seller_view))
        assert builder.persona_instructions and builder.persona_instructions in text
        assert "My budget is" not in text  # the scripted buyer's Thought says this; it is never shown


def test_unknown_persona_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown persona"):
        PromptBuilder(Role.SELLER, "pirate")


def test_product_text_is_capped_and_none_keeps_it_whole() -> None:
    long = make_scenario()
    view = Negotiation(long).view(Role.BUYER)
    view = type(view)(**{**{f: getattr(view, f) for f in view.__slots__}, "description": "word " * 2000})
    capped = PromptBuilder(Role.BUYER, settings=PromptSettings(description_chars=100)).system_prompt(view)
    full = PromptBuilder(Role.BUYER, settings=PromptSettings(description_chars=None)).system_prompt(view)
    assert len(full) - len(capped) > 9000
    assert "word word" in capped and "…" in capped


def test_templates_folder_overrides_by_file_name(tmp_path: Path) -> None:
    (tmp_path / "buyer.j2").write_text("CUSTOM buyer prompt for {{ title }} with budget {{ private_value }}")
    view = Negotiation(make_scenario(budget=160.0)).view(Role.BUYER)
    chat = PromptBuilder(Role.BUYER, settings=PromptSettings(templates_dir=tmp_path)).chat(view)
    assert chat[0]["content"] == "CUSTOM buyer prompt for Espresso machine with budget $160.00"
    assert "Turn 1" in chat[1]["content"]  # the other templates still come from the package
    with pytest.raises(FileNotFoundError):
        PromptBuilder(Role.BUYER, settings=PromptSettings(templates_dir=tmp_path / "missing"))


@pytest.mark.parametrize("role", [Role.BUYER, Role.SELLER])
def test_earlier_messages_read_the_same_at_every_turn(tmp_path: Path, role: Role) -> None:
    """A later chat extends the earlier one: multi-turn training appends to the tokens the model saw."""
    for name in ("buyer.j2", "seller.j2", "opening.j2"):
        (tmp_path / name).write_text("Turn {{ turn }}{% if is_last_turn %} (last){% endif %}: {{ title }}")
    builder = PromptBuilder(role, settings=PromptSettings(templates_dir=tmp_path))
    chats = [builder.chat(view) for view in _views_of_a_scripted_episode(make_scenario()) if view.role is role]
    assert len(chats) >= 3
    for earlier, later in zip(chats, chats[1:], strict=False):
        assert later[: len(earlier)] == earlier


COMPACT_PROMPTS = Path(__file__).resolve().parents[1] / "configs" / "prompts" / "compact"


def _replies(chat) -> list[str]:
    return [m["content"] for m in chat[2:] if m["role"] == "user"]


def test_the_compact_prompt_says_how_each_seller_price_stands_against_the_budget() -> None:
    """The CPU recipe's prompt annotates every seller price with the buyer's own budget comparison, computed with
    the game's tolerance; the packaged prompt leaves that comparison to the model."""
    scenario = make_scenario(asking=200.0, budget=160.0, cost=100.0)
    game = Negotiation(scenario)
    for buyer_msg, seller_msg in (
        (message("[BUY] $50.00"), message("[SELL] $180.00")),  # above the budget
        (message("[BUY] $60.00"), message("[SELL] $160.00")),  # exactly the budget: within
    ):
        game.step(buyer_msg)
        game.step(seller_msg)
    view = game.view(Role.BUYER)
    compact = _replies(PromptBuilder(Role.BUYER, settings=PromptSettings(templates_dir=COMPACT_PROMPTS)).chat(view))
    assert compact[0].splitlines()[1] == "Action: [SELL] $180.00 (above your budget)"
    assert compact[1].splitlines()[1] == "Action: [SELL] $160.00 (within your budget)"
    packaged = "\n".join(_replies(PromptBuilder(Role.BUYER).chat(view)))
    assert "your budget)" not in packaged


def test_without_thousands_separators_every_amount_read_is_plain_and_own_messages_stay_as_written() -> None:
    scenario = make_scenario(asking=2400.0, budget=1529.7, cost=1200.0)
    game = Negotiation(scenario)
    written = message("[BUY] $1,100.00", thought="Budget $1,529.70; I start low.")
    game.step(written)
    game.step(message("[SELL] $2,250.00", talk="It is worth $2,400.00, I can do $2,250.00."))
    view = game.view(Role.BUYER)
    config = PromptSettings(templates_dir=COMPACT_PROMPTS, thousands_separator=False)
    chat = PromptBuilder(Role.BUYER, settings=config).chat(view)
    read = "\n".join(m["content"] for m in chat if m["role"] != "assistant")
    assert "$1529.70" in read and "$2400.00" in read and "[SELL] $2250.00 (above your budget)" in read
    assert not re.search(r"\$\d{1,3},\d{3}", read)
    assert [m["content"] for m in chat if m["role"] == "assistant"] == [written]  # the buyer's own text, verbatim
    separated = "\n".join(m["content"] for m in PromptBuilder(Role.BUYER).chat(view))
    assert "$1,529.70" in separated and "$2,250.00" in separated  # the default style is unchanged


def test_price_vs_private_value_for_each_role() -> None:
    assert price_vs_private_value(Role.BUYER, 160.004, 160.0) == "within your budget"  # same offer in cents
    assert price_vs_private_value(Role.BUYER, 160.01, 160.0) == "above your budget"
    assert price_vs_private_value(Role.SELLER, 100.0, 100.0) == "at or below your cost"
    assert price_vs_private_value(Role.SELLER, 100.01, 100.0) == "above your cost"
    assert price_vs_private_value(Role.BUYER, None, 160.0) == ""  # [REJECT] / [QUIT] name no price


def test_a_seller_template_may_show_the_buyers_offer_against_its_cost(tmp_path: Path) -> None:
    (tmp_path / "reply.j2").write_text("{{ action }} ({{ price_vs_private_value }})")
    game = Negotiation(make_scenario(cost=100.0))
    game.step(message("[BUY] $90.00"))
    chat = PromptBuilder(Role.SELLER, settings=PromptSettings(templates_dir=tmp_path)).chat(game.view(Role.SELLER))
    assert chat[-1]["content"] == "[BUY] $90.00 (at or below your cost)"


@pytest.mark.parametrize("key", ["templates_dir", "prompts"])
def test_one_prompt_settings_model_reads_the_key_and_its_old_name_alike(key: str) -> None:
    from counteroffer.agents.llm.factory import EndpointSettings, HFSettings
    from counteroffer.train.config import TrainConfig

    folder = str(COMPACT_PROMPTS)
    expected = PromptSettings(templates_dir=COMPACT_PROMPTS)
    with _deprecated_if(key == "prompts"):
        assert PromptSettings.model_validate({key: folder}) == expected
        assert HFSettings.model_validate({key: folder}).prompt_settings() == expected  # an hf: agent spec
        assert EndpointSettings.model_validate({key: folder}).prompt_settings() == expected  # an openai: spec
        assert TrainConfig.model_validate({"prompts": {key: folder}}).prompts == expected  # a training YAML
    with _deprecated_if(key == "prompts"):
        agent = make_agent(f"openai:fake@http://127.0.0.1:9/v1?{key}={folder}", Role.BUYER)
    try:
        assert agent.prompts.settings == expected
    finally:
        agent.close()


@contextmanager
def _deprecated_if(old: bool) -> Iterator[None]:
    """Expect the old key's DeprecationWarning, or none of it."""
    if old:
        with pytest.warns(DeprecationWarning, match="old name"):
            yield
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert not [w for w in caught if "old name" in str(w.message)]


def test_prompt_settings_refuse_both_names_and_keep_their_defaults() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="give templates_dir only"), pytest.warns(DeprecationWarning):
        PromptSettings.model_validate({"templates_dir": "a", "prompts": "b"})
    assert PromptSettings.model_validate({"prompts": None}) == PromptSettings()  # an unset old key is no setting
    defaults = PromptSettings()
    assert (defaults.templates_dir, defaults.description_chars, defaults.features_chars) == (None, 600, 400)
    assert defaults.thousands_separator is True
    full = PromptSettings.model_validate({"description_chars": "none", "features_chars": "FULL"})
    assert (full.description_chars, full.features_chars) == (None, None)
    with pytest.raises(ValidationError, match="Extra inputs"):
        PromptSettings.model_validate({"template_dir": "a"})


def test_a_checkpoint_written_with_the_old_key_still_loads_its_prompt_settings(tmp_path: Path) -> None:
    from counteroffer.agents.llm.factory import HFSettings
    from counteroffer.prompts.settings import AGENT_DEFAULTS_FILE, agent_defaults

    old = {"prompts": str(COMPACT_PROMPTS), "description_chars": 0, "features_chars": None, "max_new_tokens": 80}
    (tmp_path / AGENT_DEFAULTS_FILE).write_text(json.dumps(old))
    with pytest.warns(DeprecationWarning):
        defaults = agent_defaults(str(tmp_path))
    assert defaults == {
        "templates_dir": str(COMPACT_PROMPTS),
        "description_chars": "0",
        "features_chars": "none",
        "max_new_tokens": "80",
    }
    settings = HFSettings.model_validate(defaults)
    assert settings.prompt_settings() == PromptSettings(
        templates_dir=COMPACT_PROMPTS, description_chars=0, features_chars=None
    )
    packaged = {"prompts": None, "thousands_separator": False}
    (tmp_path / AGENT_DEFAULTS_FILE).write_text(json.dumps(packaged))
    assert agent_defaults(str(tmp_path)) == {"thousands_separator": "False"}


TALK_PROMPTS = Path(__file__).resolve().parents[1] / "configs" / "prompts" / "talk"


def test_the_talk_prompt_shows_what_a_buyer_may_cite_and_nothing_private(shared_data: Path) -> None:
    """The prompt of the words experiment: the listing and the public prices, the forms the checker reads; the
    packaged prompt shows no price history."""
    from counteroffer.game.arguments import find_arguments

    settings = PromptSettings(templates_dir=TALK_PROMPTS, description_chars=200, features_chars=0)
    scenario = next(
        s
        for s in load_scenarios("amazon", "train", data_root=shared_data).scenarios
        if s.product.current_price and s.product.average_price and s.product.description
    )
    view = Negotiation(scenario).view(Role.BUYER)
    system = PromptBuilder(Role.BUYER, settings=settings).chat(view)[0]["content"]
    current, average = _money(scenario.product.current_price), _money(scenario.product.average_price)
    assert f"Public prices: current {current}, average {average}." in system
    assert "The listing: " + scenario.product.description[:40] in system
    assert _money(scenario.cost) not in system.replace(current, "").replace(average, "")
    cited = find_arguments(f"The average price is {average}.", view.listing, 1)
    assert [a.true for a in cited] == [True]  # what the prompt shows, the checker accepts
    assert "Public prices" not in PromptBuilder(Role.BUYER).chat(view)[0]["content"]
