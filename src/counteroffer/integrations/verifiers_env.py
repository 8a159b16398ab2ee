"""The negotiation as a ``verifiers`` multi-turn environment: the model is the buyer; the seller (any agent spec,
always regulated by the game) answers inside the environment.

For prime-rl, the Environments Hub, ``vf-eval`` and anything else that drives ``verifiers`` environments
(``pip install 'counteroffer[verifiers]'``)::

    import verifiers as vf
    from openai import AsyncOpenAI

    env = vf.load_environment("counteroffer.integrations.verifiers_env", seller="scripted:boulware", split="test")
    client = vf.OpenAIChatCompletionsClient(AsyncOpenAI(base_url="http://localhost:8000/v1", api_key="EMPTY"))
    results = env.evaluate_sync(client=client, model="MODEL", num_examples=128, rollouts_per_example=4)

- **Dataset**: one row per scenario of a catalogue split, in the split's order (``limit``: the first K). The
  prompt is the buyer's opening chat (system prompt and opening message) exactly as
  :class:`~counteroffer.rollout.env.NegotiationEnv` and the LLM buyer agents build it with
  :class:`~counteroffer.prompts.render.PromptBuilder` (``templates_dir``, ``description_chars``, ``features_chars``
  as in an agent spec); ``answer`` and ``info["scenario_id"]`` name the scenario, so the environment rebuilds the
  game from it.
- **Environment response**: the model's message is played into a :class:`~counteroffer.game.Negotiation` as the
  buyer's raw message (``<think>`` blocks and a reasoning field are kept out of it, as for an LLM buyer agent), the
  seller answers and the game regulates it; the next user message is the seller's reply rendered exactly as the
  buyer's prompt renders it everywhere else.
- **End**: the game is over (a deal, a quit, a buyer format or protocol error, the turn limit): stop condition
  ``game_over``. A buyer format error is the game's verdict (reward −1), never an exception.
- **Rubric**: the reward is the game's verifiable buyer reward (:func:`counteroffer.game.reward.buyer_reward`);
  the per-episode metrics of :class:`~counteroffer.game.records.EpisodeMetrics` (deal, bargained_ratio, overshoot,
  first_offer_ratio, turns, format_error, protocol_error, regulator_interventions, mutual_interest) and
  ``finished`` are zero-weight scores. A metric undefined for an episode (bargained_ratio without a deal,
  first_offer_ratio without an offer) scores 0, not NaN: verifiers adds every score times its weight into the
  reward, and NaN × 0 would make the reward NaN. So the mean of ``bargained_ratio`` runs over all episodes; divide
  it by the mean of ``deal`` for the bench's ratio over deals. ``state["episode"]`` (ask for it with
  ``state_columns=["episode"]``) is the finished episode's :class:`~counteroffer.game.records.EpisodeRecord` as
  JSON, the very record ``counteroffer bench`` writes, with the exact metrics.
- **Seeds**: as in the bench, episode ``k`` of a scenario plays with seed ``episode_seed(seed, scenario_id, k)``
  (:func:`counteroffer.rollout.runner.episode_seed`), ``k`` counting that scenario's rollouts started by this
  environment object. A first evaluation with R rollouts per example therefore plays the bench's episodes 0..R-1
  (a scripted seller then writes the bench's very messages); in training each new rollout of a scenario gets the
  next seed, as a bench with more rollouts would.

Which ``verifiers`` API: the classic one (``vf.MultiTurnEnv`` with ``env_response``, ``vf.Rubric``, a module-level
``load_environment``), pinned to verifiers 0.3.x. It is the interface prime-rl's orchestrator and the Environments
Hub load (``vf.load_environment``), and 0.3.x requires ``openai>=2.9``, which the project's openai 3 client
satisfies. verifiers 0.4 has only the new ``verifiers.v1`` API (Taskset / Env / ``run``), which still changed
between 0.3.1 and 0.4.0 and pins ``openai<3``, so it would hold every other part of the project on an older
client.

Differences from ``counteroffer bench`` with an ``openai:`` buyer, all from verifiers' side of the loop: the
conversation is append-only, so a later turn's prompt keeps the model's earlier ``<think>`` text where the bench's
prompt holds the message the game played (identical for models that do not think aloud); the sampling settings
are verifiers' (``sampling_args``), not the agent spec's; an empty model response is verifiers'
``EmptyModelResponseError`` and a seller that fails (an endpoint after its retries) a ``vf.InfraError``: errored
rollouts (``state["error"]``, reward 0, ``finished`` 0) that ``max_retries`` re-runs, as the bench re-runs
errored episodes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
from pydantic import ConfigDict, Field, ValidationError

from counteroffer.agents.base import Agent, Reply
from counteroffer.agents.registry import make_agent
from counteroffer.catalog.models import Scenario
from counteroffer.catalog.recipes import CatalogName, load_scenarios
from counteroffer.config_file import validation_problems
from counteroffer.defaults import DEFAULT_PERSONA, DEFAULT_SELLER
from counteroffer.errors import ConfigError
from counteroffer.game.messages import Role
from counteroffer.game.negotiation import DEFAULT_MAX_TURNS, GameConfig, Negotiation
from counteroffer.game.records import EpisodeMetrics
from counteroffer.models.backend import split_reasoning
from counteroffer.prompts.render import PromptBuilder
from counteroffer.prompts.settings import DEFAULT_PROMPTS, PromptSettings
from counteroffer.rollout.runner import EpisodeJob, episode_seed, record_of
from counteroffer.rollout.turns import play_exchange

INSTALL_HINT = "pip install 'counteroffer[verifiers]'"
try:
    import verifiers as vf
    from datasets import Dataset
except ImportError as exc:
    raise ImportError(f"counteroffer's verifiers environment needs the verifiers package: {INSTALL_HINT}") from exc
try:
    vf.MultiTurnEnv  # noqa: B018 - the classic API; verifiers >= 0.4 ships only verifiers.v1
except (ImportError, AttributeError) as exc:
    raise ImportError(
        f"counteroffer's verifiers environment needs verifiers' classic API (verifiers 0.3.x), found verifiers "
        f"{getattr(vf, '__version__', '?')}: {INSTALL_HINT}"
    ) from exc

BUYER_PREFIX = "verifiers:"  # the buyer named in episode records: "verifiers:MODEL"


class VerifiersEnvSettings(PromptSettings):
    """The arguments of :func:`load_environment`, checked before anything is loaded."""

    model_config = ConfigDict(extra="forbid")
    seller: str = Field(DEFAULT_SELLER, description="seller agent spec (always regulated)")
    persona: str = Field(DEFAULT_PERSONA, description="seller persona")
    catalog: CatalogName = "amazon"
    split: str = "train"
    max_turns: int = Field(DEFAULT_MAX_TURNS, ge=1, description="turns per episode (buyer message + seller reply)")
    limit: int | None = Field(None, ge=1, description="use only the first LIMIT scenarios of the split")
    data_root: str | Path | None = None
    seed: int = Field(0, description="base of the per-episode seeds, as the bench's --seed")


def _text(content: Any) -> str:
    """A chat message's content as text (a list of content parts: their text parts, joined)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text") or "" for part in content if part.get("type") == "text")


def _metric(name: str, value: Callable[[EpisodeMetrics], float | bool | int | None]) -> Callable[..., Any]:
    async def score(state: vf.State) -> float:
        metrics = _finished_metrics(state)
        result = None if metrics is None else value(metrics)
        return 0.0 if result is None else float(result)  # never NaN: see the module docstring

    score.__name__ = name
    return score


def _finished_metrics(state: vf.State) -> EpisodeMetrics | None:
    game = state.get("negotiation")
    return game.metrics() if isinstance(game, Negotiation) and game.done else None


async def buyer_reward(state: vf.State) -> float:
    """The game's verifiable buyer reward; 0 for a rollout that errored before the game ended."""
    game = state.get("negotiation")
    return float(game.reward) if isinstance(game, Negotiation) and game.done else 0.0


async def finished(state: vf.State) -> float:
    """1 when the game ended (any outcome), 0 when the rollout stopped first (an error, a prompt too long)."""
    return 1.0 if _finished_metrics(state) is not None else 0.0


def negotiation_rubric() -> vf.Rubric:
    """The buyer reward (weight 1) and the episode's metrics (weight 0)."""
    rubric = vf.Rubric(funcs=[buyer_reward], weights=[1.0])
    rubric.add_metric(finished)
    for name in (
        "deal",
        "bargained_ratio",
        "overshoot",
        "first_offer_ratio",
        "turns",
        "format_error",
        "protocol_error",
        "regulator_interventions",
        "mutual_interest",
    ):
        rubric.add_metric(_metric(name, lambda metrics, name=name: getattr(metrics, name)))
    return rubric


class NegotiationVerifiersEnv(vf.MultiTurnEnv):
    """A verifiers multi-turn environment over ``scenarios``: the model is the buyer, ``seller`` answers it."""

    def __init__(
        self,
        scenarios: Sequence[Scenario],
        seller: Agent,
        *,
        persona: str = DEFAULT_PERSONA,
        game_config: GameConfig | None = None,
        prompts: PromptBuilder | None = None,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        if not scenarios:
            raise ValueError("the environment needs at least one scenario")
        if seller.role is not Role.SELLER:
            raise ValueError(f"{seller!r} is not a seller")
        self.scenarios = {scenario.scenario_id: scenario for scenario in scenarios}
        self.seller = seller
        self.persona = persona
        self.game_config = game_config or GameConfig()
        self.buyer_prompts = prompts or PromptBuilder(Role.BUYER)
        if self.buyer_prompts.role is not Role.BUYER:
            raise ValueError("prompts must be a buyer's PromptBuilder")
        self.base_seed = seed
        self._rollouts_started: Counter[str] = Counter()
        self._seller_closed = False
        dataset = Dataset.from_list([self._row(scenario) for scenario in scenarios])
        kwargs.setdefault("env_id", "counteroffer")
        # The game ends every episode within game_config.max_turns buyer messages, after the message that ends it;
        # verifiers' own turn cap would stop before that last message is played, so it is off.
        super().__init__(dataset=dataset, eval_dataset=dataset, rubric=negotiation_rubric(), max_turns=-1, **kwargs)

    def _row(self, scenario: Scenario) -> dict[str, Any]:
        opening = self.buyer_prompts.chat(Negotiation(scenario, self.game_config).view(Role.BUYER))
        info = {"scenario_id": scenario.scenario_id, "mutual_interest": scenario.mutual_interest}
        return {"prompt": opening, "answer": scenario.scenario_id, "info": info}

    async def setup_state(self, state: vf.State) -> vf.State:
        scenario_id = state["info"]["scenario_id"]
        scenario = self.scenarios.get(scenario_id)
        if scenario is None:
            raise ValueError(f"no scenario {scenario_id!r} in this environment")
        rollout_index = self._rollouts_started[scenario_id]
        self._rollouts_started[scenario_id] += 1
        seed = episode_seed(self.base_seed, scenario_id, rollout_index)
        buyer = BUYER_PREFIX + str(state["model"])
        state["episode_job"] = EpisodeJob(buyer, self.seller.spec, self.persona, scenario, rollout_index, seed)
        state["negotiation"] = Negotiation(scenario, self.game_config)
        state["rollout_index"] = rollout_index
        state["episode_seed"] = seed
        state["episode"] = None
        return state

    async def env_response(self, messages: vf.Messages, state: vf.State, **kwargs: Any) -> vf.Messages:
        """Play the buyer's message and the regulated seller's reply; return the reply as the buyer reads it."""
        game: Negotiation = state["negotiation"]
        job: EpisodeJob = state["episode_job"]
        buyer_message = messages[-1]
        text, reasoning = split_reasoning(
            _text(buyer_message.get("content")), buyer_message.get("reasoning_content") or ""
        )
        # Agents are synchronous (a local model generates, an endpoint agent waits on its own loop): off the event
        # loop, so other rollouts go on meanwhile. A failing seller leaves the game as it was before the message.
        failure = await asyncio.to_thread(play_exchange, game, Reply(text, reasoning), self.seller, job.seed)
        if failure is not None:
            raise vf.InfraError(f"seller {failure}") from failure
        if game.done:
            state["episode"] = msgspec.to_builtins(record_of(job, game))
            state["final_env_response"] = []  # the rollout ends here, without another model call
            return []
        # The buyer's view now ends with the seller's reply: the last message of its chat is that reply as shown.
        reply_message = self.buyer_prompts.chat(game.view(Role.BUYER))[-1]
        return [vf.UserMessage(content=reply_message["content"])]

    @vf.stop(priority=50)  # before has_final_env_response, so the stop condition reads "game_over"
    async def game_over(self, state: vf.State) -> bool:
        game = state.get("negotiation")
        return isinstance(game, Negotiation) and game.done

    @vf.teardown
    async def close_seller(self) -> None:
        self.close()

    def close(self) -> None:
        """Release the seller (an endpoint agent's thread, a local model); safe to call more than once."""
        if not self._seller_closed:
            self._seller_closed = True
            self.seller.close()


def load_environment(
    seller: str = DEFAULT_SELLER,
    persona: str = DEFAULT_PERSONA,
    catalog: str = "amazon",
    split: str = "train",
    max_turns: int = DEFAULT_MAX_TURNS,
    limit: int | None = None,
    data_root: str | Path | None = None,
    templates_dir: str | Path | None = None,
    description_chars: int | None = DEFAULT_PROMPTS.description_chars,
    features_chars: int | None = DEFAULT_PROMPTS.features_chars,
    thousands_separator: bool = DEFAULT_PROMPTS.thousands_separator,
    seed: int = 0,
    prompts: str | Path | None = None,
) -> NegotiationVerifiersEnv:
    """The environment over one catalogue split against one seller (the Environments Hub's entry point).

    ``seller``: any agent spec (``scripted:boulware``, ``openai:MODEL@URL``, ``hf:MODEL``), always regulated by
    the game; ``persona``: the seller's manner; ``catalog`` / ``split`` / ``limit`` / ``data_root``: the scenarios,
    as in ``counteroffer bench``; ``max_turns``: turns per episode; ``templates_dir`` (old name:
    ``prompts``), ``description_chars``, ``features_chars``, ``thousands_separator``: the buyer's prompt, as in an
    LLM agent spec; ``seed``: the bench's ``--seed``.
    """
    try:
        settings = VerifiersEnvSettings(
            seller=seller,
            persona=persona,
            catalog=catalog,  # type: ignore[arg-type]
            split=split,
            max_turns=max_turns,
            limit=limit,
            data_root=data_root,
            templates_dir=templates_dir,  # type: ignore[arg-type]
            prompts=prompts,  # the old name of templates_dir
            description_chars=description_chars,
            features_chars=features_chars,
            thousands_separator=thousands_separator,
            seed=seed,
        )
    except ValidationError as exc:
        raise ConfigError(f"load_environment: {validation_problems(exc)}") from None
    try:
        buyer_prompts = PromptBuilder(
            Role.BUYER,
            settings=settings.prompt_settings(),
        )
    except FileNotFoundError as exc:
        raise ConfigError(f"load_environment: prompts: {exc}") from None
    scenarios = load_scenarios(settings.catalog, settings.split, data_root=settings.data_root, limit=settings.limit)
    seller_agent = make_agent(settings.seller, Role.SELLER, settings.persona)
    try:
        return NegotiationVerifiersEnv(
            scenarios.scenarios,
            seller_agent,
            persona=settings.persona,
            game_config=GameConfig(max_turns=settings.max_turns),
            prompts=buyer_prompts,
            seed=settings.seed,
            env_args=settings.model_dump(mode="json"),
        )
    except BaseException:
        seller_agent.close()
        raise
