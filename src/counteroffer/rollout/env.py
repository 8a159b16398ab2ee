"""A Gymnasium-style environment for one buyer: the seller (any agent, always regulated) plays inside it.

For users who drive a policy step by step (their own RL loop, a notebook) rather than through the batched
engine. The API follows Gymnasium's small environment interface without depending on it::

    env = NegotiationEnv(load_scenarios("amazon", "train").scenarios, seller="scripted:boulware")
    observation, info = env.reset(seed=0)
    while True:
        observation, reward, terminated, truncated, info = env.step(my_policy(observation))
        if terminated or truncated:
            break

An observation is the buyer's :class:`~counteroffer.game.negotiation.RoleView` (its budget, the public product
card and the visible history); ``info["chat"]`` is the same turn as chat messages in the LLM prompt format. The
reward is 0 until the episode ends and then the verifiable reward; ``terminated`` means a deal, a quit or a buyer
error, ``truncated`` the turn limit. ``info["record"]`` holds the finished episode's record.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from counteroffer.agents.base import Agent, TurnRequest
from counteroffer.agents.llm.prompts import PromptBuilder
from counteroffer.agents.registry import make_agent
from counteroffer.catalog.models import Scenario
from counteroffer.game.messages import Role
from counteroffer.game.negotiation import DEFAULT_MAX_TURNS, GameConfig, Negotiation, RoleView
from counteroffer.game.records import Outcome
from counteroffer.rollout.runner import EpisodeJob, episode_seed, play_message, record_of


class NegotiationEnv:
    def __init__(
        self,
        scenarios: Sequence[Scenario],
        seller: Agent | str = "scripted:boulware",
        *,
        persona: str = "neutral",
        max_turns: int = DEFAULT_MAX_TURNS,
        buyer_name: str = "env:buyer",
    ) -> None:
        if not scenarios:
            raise ValueError("the environment needs at least one scenario")
        self.scenarios = list(scenarios)
        self.seller = seller if isinstance(seller, Agent) else make_agent(seller, Role.SELLER, persona)
        self.persona = persona
        self.config = GameConfig(max_turns=max_turns)
        self.buyer_name = buyer_name
        self.prompts = PromptBuilder(Role.BUYER)
        self._rng = random.Random()
        self._game: Negotiation | None = None
        self._job: EpisodeJob | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[RoleView, dict[str, Any]]:
        """Start an episode: ``options={"scenario_id": ...}`` picks the scenario, else a seeded random one."""
        if seed is not None:
            self._rng.seed(seed)
        wanted = (options or {}).get("scenario_id")
        if wanted is None:
            scenario = self._rng.choice(self.scenarios)
        else:
            matches = [s for s in self.scenarios if s.scenario_id == wanted]
            if not matches:
                raise ValueError(f"no scenario {wanted!r} in this environment")
            scenario = matches[0]
        episode = self._rng.getrandbits(31) if seed is None else seed
        self._job = EpisodeJob(
            self.buyer_name, self.seller.spec, self.persona, scenario, 0, episode_seed(episode, scenario.scenario_id, 0)
        )
        self._game = Negotiation(scenario, self.config)
        return self._observe()

    def step(self, message: str) -> tuple[RoleView, float, bool, bool, dict[str, Any]]:
        """Play the buyer's raw message, then the seller's reply; return Gymnasium's five-tuple."""
        game, job = self._game, self._job
        if game is None or job is None:
            raise RuntimeError("call reset() before step()")
        game.step(message)
        if not game.done:
            [reply] = self.seller.act([TurnRequest(game.view(Role.SELLER), job.seed)])
            if isinstance(reply, Exception):
                raise reply
            play_message(game, reply)
        observation, info = self._observe()
        if not game.done:
            return observation, 0.0, False, False, info
        info["record"] = record_of(job, game)
        return (
            observation,
            game.reward,
            game.outcome is not Outcome.TURN_LIMIT,
            game.outcome is Outcome.TURN_LIMIT,
            info,
        )

    def _observe(self) -> tuple[RoleView, dict[str, Any]]:
        assert self._game is not None
        view = self._game.view(Role.BUYER)
        return view, {"chat": self.prompts.chat(view), "scenario_id": view.scenario_id, "turn": view.turn}

    def close(self) -> None:
        self.seller.close()
