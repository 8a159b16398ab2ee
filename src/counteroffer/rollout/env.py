"""A Gymnasium environment for one buyer: the seller (any agent, always regulated) plays inside it.

For users who drive a policy step by step (their own RL loop, a notebook, Gymnasium's wrappers) rather than
through the batched engine. It is a real :class:`gymnasium.Env`, registered as ``counteroffer/Negotiation-v0``::

    import gymnasium, counteroffer.rollout.env  # importing this module registers the environment
    env = gymnasium.make("counteroffer/Negotiation-v0", seller="scripted:boulware", split="train", max_turns=4)
    observation, info = env.reset(seed=0)
    while True:
        observation, reward, terminated, truncated, info = env.step(my_policy(observation))
        if terminated or truncated:
            break

- **Observation** (a :class:`UnicodeText` space): the buyer's prompt as plain text, the chat the LLM agent would
  see (system prompt, the opening, each seller message as shown), so a text policy needs nothing else.
  ``info["view"]`` is the same turn as a structured :class:`~counteroffer.game.negotiation.RoleView` (budget,
  product card, visible history) and ``info["chat"]`` as chat messages.
- **Action** (also text): the buyer's raw message in the ``Thought / Talk / Action`` format. Anything else is
  a recorded format error that ends the episode with reward −1, as in the paper, never an exception.
- **A failing seller** (an endpoint still failing after its retries): ``step`` raises
  :class:`~counteroffer.rollout.turns.TurnFailure` (an :class:`~counteroffer.agents.base.AgentFailure`) and the
  game is as it was before the action, so calling ``step`` again with the same action retries the turn safely.
- **Reward**: 0 until the episode ends, then the verifiable reward. ``terminated``: a deal, a quit or a buyer
  error; ``truncated``: the turn limit. ``info["record"]`` holds the finished episode's record.

``gymnasium.make`` kwargs: ``seller``, ``persona``, ``catalog``, ``split``, ``max_turns``, ``limit`` (first K
scenarios), ``data_root``, ``render_mode`` (``"ansi"``: the transcript so far).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import gymnasium
from gymnasium import spaces

from counteroffer.agents.base import Agent
from counteroffer.agents.registry import make_agent
from counteroffer.catalog.models import Scenario
from counteroffer.catalog.recipes import load_scenarios
from counteroffer.defaults import DEFAULT_PERSONA, DEFAULT_SELLER
from counteroffer.game.messages import Role
from counteroffer.game.negotiation import DEFAULT_MAX_TURNS, GameConfig, Negotiation
from counteroffer.game.records import Outcome
from counteroffer.game.transcript import messages_text, transcript_text
from counteroffer.prompts.render import PromptBuilder
from counteroffer.rollout.registration import ENV_ID, register_envs  # noqa: F401 - ENV_ID is re-exported
from counteroffer.rollout.runner import EpisodeJob, episode_seed, record_of
from counteroffer.rollout.turns import play_exchange

MAX_OBSERVATION_CHARS = 1_000_000
MAX_ACTION_CHARS = 100_000
_BMP = "".join(chr(c) for c in range(sys.maxunicode + 1) if c < 0x10000 and not 0xD800 <= c <= 0xDFFF)


class UnicodeText(spaces.Text):
    """A text space over every character of the Basic Multilingual Plane (what catalogue titles and model output
    use); a character beyond it is written as U+FFFD in observations."""

    def __init__(self, max_length: int, *, min_length: int = 0, seed: int | None = None) -> None:
        super().__init__(max_length, min_length=min_length, charset=_BMP, seed=seed)

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnicodeText) and (self.min_length, self.max_length) == (
            other.min_length,
            other.max_length,
        )


def chat_text(chat: Sequence[dict[str, str]]) -> str:
    """A chat as one plain text: each message under its role, in order."""
    text = "\n\n".join(f"[{message['role']}]\n{message['content']}" for message in chat)
    return "".join(c if ord(c) < 0x10000 else "\ufffd" for c in text)[:MAX_OBSERVATION_CHARS]


class NegotiationEnv(gymnasium.Env[str, str]):
    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        scenarios: Sequence[Scenario],
        seller: Agent | str = DEFAULT_SELLER,
        *,
        persona: str = DEFAULT_PERSONA,
        max_turns: int = DEFAULT_MAX_TURNS,
        buyer_name: str = "env:buyer",
        render_mode: str | None = None,
    ) -> None:
        if not scenarios:
            raise ValueError("the environment needs at least one scenario")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.scenarios = list(scenarios)
        self.seller = seller if isinstance(seller, Agent) else make_agent(seller, Role.SELLER, persona)
        self.persona = persona
        self.config = GameConfig(max_turns=max_turns)
        self.buyer_name = buyer_name
        self.render_mode = render_mode
        self.prompts = PromptBuilder(Role.BUYER)
        self.observation_space = UnicodeText(MAX_OBSERVATION_CHARS)
        self.action_space = UnicodeText(MAX_ACTION_CHARS)
        self._game: Negotiation | None = None
        self._job: EpisodeJob | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Start an episode: ``options={"scenario_id": ...}`` picks the scenario, else a seeded random one."""
        super().reset(seed=seed)
        wanted = (options or {}).get("scenario_id")
        if wanted is None:
            scenario = self.scenarios[int(self.np_random.integers(len(self.scenarios)))]
        else:
            matches = [s for s in self.scenarios if s.scenario_id == wanted]
            if not matches:
                raise ValueError(f"no scenario {wanted!r} in this environment")
            scenario = matches[0]
        episode = int(self.np_random.integers(2**31))
        seed_of_episode = episode_seed(episode, scenario.scenario_id, 0)
        self._job = EpisodeJob(self.buyer_name, self.seller.spec, self.persona, scenario, 0, seed_of_episode)
        self._game = Negotiation(scenario, self.config)
        return self._observe()

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Play the buyer's raw message, then the seller's reply; return Gymnasium's five-tuple.

        Raises :class:`~counteroffer.rollout.turns.TurnFailure` (an :class:`~counteroffer.agents.base.AgentFailure`)
        when the seller fails (an endpoint still failing after its retries): the game is then exactly as it was
        before ``action``, so ``step(action)`` again plays the turn once, as if the first call had not happened.
        """
        game, job = self._game, self._job
        if game is None or job is None:
            raise RuntimeError("call reset() before step()")
        if game.done:
            raise RuntimeError("the episode is over: call reset() to start another")
        failure = play_exchange(game, action, self.seller, job.seed)
        if failure is not None:
            raise failure
        observation, info = self._observe()
        if not game.done:
            return observation, 0.0, False, False, info
        info["record"] = record_of(job, game)
        truncated = game.outcome is Outcome.TURN_LIMIT
        return observation, float(game.reward), not truncated, truncated, info

    def render(self) -> str | None:
        """``ansi``: the transcript so far (with its header and reward once the episode is over)."""
        if self.render_mode != "ansi" or self._game is None or self._job is None:
            return None
        if self._game.done:
            return transcript_text(record_of(self._job, self._game))
        return messages_text(self._game.messages)

    def _observe(self) -> tuple[str, dict[str, Any]]:
        assert self._game is not None
        view = self._game.view(Role.BUYER)
        chat = self.prompts.chat(view)
        info = {"view": view, "chat": chat, "scenario_id": view.scenario_id, "turn": view.turn}
        return chat_text(chat), info

    def close(self) -> None:
        self.seller.close()


def make_env(
    seller: str = DEFAULT_SELLER,
    persona: str = DEFAULT_PERSONA,
    catalog: str = "amazon",
    split: str = "train",
    max_turns: int = DEFAULT_MAX_TURNS,
    limit: int | None = None,
    data_root: str | None = None,
    render_mode: str | None = None,
) -> NegotiationEnv:
    """The registered environment's entry point: scenarios from a catalogue split, a seller spec."""
    scenarios = load_scenarios(catalog, split, data_root=data_root, limit=limit).scenarios  # type: ignore[arg-type]
    return NegotiationEnv(scenarios, seller, persona=persona, max_turns=max_turns, render_mode=render_mode)


register_envs()  # ENV_ID, whichever way this module was imported
