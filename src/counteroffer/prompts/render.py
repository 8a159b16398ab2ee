"""Chat prompts for LLM negotiators, rendered from template files a user can read and override.

The templates (``templates/*.j2`` beside this module, Jinja2) are: ``buyer.j2`` / ``seller.j2`` (the system
prompt: product card, the role's own private value, the rules and the Thought/Talk/Action format), ``opening.j2``
(the buyer's first user message), ``reply.j2`` (each message of the other side, as shown) and
``personas/<name>.j2`` (the seller's manner). The folder named by ``templates_dir`` (see
:mod:`counteroffer.prompts.settings`) overrides any of them by file name.

A prompt is built from a :class:`~counteroffer.game.negotiation.RoleView` only, which holds the role's own
private value and nothing of the other side's, so the buyer's prompt cannot contain the seller's cost and vice
versa. The role's own earlier messages appear as assistant turns exactly as it wrote them.

Product descriptions and feature lists run to several kB, and prompt length dominates CPU cost, so both are
capped (``description_chars``, ``features_chars``; ``None`` keeps the full text, as GPU recipes do).

``reply.j2`` also gets ``price_vs_private_value``: where the other side's message names a price, how it stands
against the reader's own private value ("above your budget", "within your budget"; for a seller "at or below your
cost", "above your cost"), else "". The packaged templates leave it out (a capable model compares prices
itself); the CPU recipe's compact prompt shows it, because a 135M model cannot compare two prices reliably and
a buyer that cannot tell whether a price fits its budget overpays whatever it learns.

Every template also gets ``public_prices`` (name → amount: the product's current and average price where the
catalogue has them, :func:`counteroffer.game.arguments.public_prices`), the prices a buyer may cite to a seller
that reads arguments; the packaged and compact templates do not show them, ``configs/prompts/talk`` does.

``thousands_separator: False`` writes every dollar amount the role reads without separators (``$1299.50``), and
:meth:`PromptBuilder.in_money_style` rewrites demonstrations the same way: a small model halving ``$1,529.70``
digit by digit loses the comma's place ("Half of $1,529.70 is $81.75"). The role's own earlier messages are kept
as it wrote them, whatever the style, so multi-turn training still only appends.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from counteroffer.errors import ConfigError, InputNotFoundError
from counteroffer.game.arguments import ArgumentKind
from counteroffer.game.messages import Role, drop_thousands_separators, format_money
from counteroffer.game.negotiation import RoleView
from counteroffer.game.reward import PRICE_TOLERANCE
from counteroffer.prompts.personas import Persona
from counteroffer.prompts.settings import PromptSettings

PACKAGED_TEMPLATES = Path(__file__).parent / "templates"
SELLER_PERSONAS = tuple(persona.value for persona in Persona)  # one list of personas, scripted and LLM

ChatMessage = dict[str, str]


def price_vs_private_value(role: Role, price: float | None, private_value: float) -> str:
    """How a price the other side named stands against ``role``'s own private value, in the reader's words."""
    if price is None:
        return ""
    if role is Role.BUYER:
        return "within your budget" if price <= private_value + PRICE_TOLERANCE else "above your budget"
    return "above your cost" if price > private_value + PRICE_TOLERANCE else "at or below your cost"


def _cap(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    if limit == 0:
        return ""
    return text[:limit].rsplit(" ", 1)[0] + " …"


class PromptBuilder:
    """Builds the chat (system + alternating user/assistant messages) that one role's LLM sees at its turn."""

    def __init__(self, role: Role, persona: str = "neutral", settings: PromptSettings | None = None) -> None:
        self.role = role
        self.settings = settings if settings is not None else PromptSettings()
        search_path = [str(PACKAGED_TEMPLATES)]
        if self.settings.templates_dir is not None:
            if not Path(self.settings.templates_dir).is_dir():
                raise InputNotFoundError(f"prompt templates folder {self.settings.templates_dir} does not exist")
            search_path.insert(0, str(self.settings.templates_dir))
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(search_path),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=False,
            autoescape=False,  # plain-text prompts, not HTML
        )
        self._system = self._env.get_template(f"{role.value}.j2")
        self._opening = self._env.get_template("opening.j2")
        self._reply = self._env.get_template("reply.j2")
        self.persona_instructions = ""
        if role is Role.SELLER:
            if persona not in SELLER_PERSONAS and not self._has_template(f"personas/{persona}.j2"):
                raise ConfigError(f"unknown persona {persona!r}; choose from {', '.join(SELLER_PERSONAS)}")
            self.persona_instructions = self._env.get_template(f"personas/{persona}.j2").render().strip()

    def _has_template(self, name: str) -> bool:
        try:
            self._env.get_template(name)
        except jinja2.TemplateNotFound:
            return False
        return True

    def _context(self, view: RoleView, lever: ArgumentKind | None = None) -> dict[str, object]:
        return {
            "lever": lever.value if lever is not None else "",
            "title": view.title,
            "category": view.category,
            "description": _cap(view.description, self.settings.description_chars),
            "features": _cap(view.features, self.settings.features_chars),
            "asking_price": format_money(view.asking_price),
            "public_prices": {name: format_money(price) for name, price in view.public_prices},
            "private_value": format_money(view.private_value),
            "max_turns": view.max_turns,
            "turn": view.turn,
            "is_last_turn": view.is_last_turn,
            "persona_instructions": self.persona_instructions,
            "other_role": view.role.other.value,
        }

    @staticmethod
    def _as_at_turn_1(context: dict[str, object], view: RoleView) -> dict[str, object]:
        """The context of the messages that open the chat, rendered as at turn 1 whatever the current turn:
        earlier messages must read the same at every turn (multi-turn training appends, never re-renders)."""
        return {**context, "turn": 1, "is_last_turn": view.max_turns <= 1}

    def in_money_style(self, text: str) -> str:
        """``text`` with its dollar amounts written as this role reads them (see ``thousands_separator``)."""
        return text if self.settings.thousands_separator else drop_thousands_separators(text)

    def _render(self, template: jinja2.Template, context: dict[str, object]) -> str:
        return self.in_money_style(template.render(context).strip())

    def system_prompt(self, view: RoleView) -> str:
        return self.chat(view)[0]["content"]

    def chat(self, view: RoleView, lever: ArgumentKind | None = None) -> list[ChatMessage]:
        """The chat at ``view``'s turn; ``lever``: a seller's hidden lever (:mod:`counteroffer.game.hints`), for
        templates that tell a seller that reads what moves it (``{{ lever }}``: its kind, or empty)."""
        context = self._context(view, lever)
        opening = self._as_at_turn_1(context, view)
        messages: list[ChatMessage] = [{"role": "system", "content": self._render(self._system, opening)}]
        if self.role is Role.BUYER:
            messages.append({"role": "user", "content": self._render(self._opening, opening)})
        own = iter(view.own_messages)
        for shown in view.history:
            if shown.role is self.role:
                messages.append({"role": "assistant", "content": next(own, "")})
            else:
                reply_context = {
                    **context,
                    "talk": shown.talk,
                    "action": shown.action.render(),
                    "price_vs_private_value": price_vs_private_value(self.role, shown.action.price, view.private_value),
                    "turn": shown.turn,
                }
                if self.role is Role.SELLER:
                    reply_context["is_last_turn"] = shown.turn >= view.max_turns
                else:  # the seller's reply closes turn t; the buyer now writes turn t + 1
                    reply_context["turn"] = shown.turn + 1
                    reply_context["is_last_turn"] = shown.turn + 1 >= view.max_turns
                messages.append({"role": "user", "content": self._render(self._reply, reply_context)})
        return messages
