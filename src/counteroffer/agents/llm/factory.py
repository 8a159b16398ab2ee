"""Building LLM agents from specs.

``hf:MODEL[?params]`` and ``openai:MODEL@BASE_URL[,BASE_URL...][?params]`` (several base URLs: one model on
several servers, each request sent to the least busy one). Parameters (all optional):

- sampling: ``temperature`` (default: buyer 1.0, seller 0.7, as in the paper), ``top_p`` (1.0),
  ``max_new_tokens`` per turn (``hf`` 96: a well-formed message needs 40-80 tokens and CPU time is precious;
  ``openai`` 256, room for models that think aloud);
- prompts (:class:`~counteroffer.prompts.settings.PromptSettings`): ``templates_dir`` (a folder overriding the
  packaged templates; its old name ``prompts`` still works), ``description_chars`` (600) and ``features_chars``
  (400): caps on the product text, ``none`` for the full text; ``thousands_separator`` (true);
- ``talk``: ``own`` (the default) or ``plain``: every well-formed message's Talk replaced by the scripted
  template for its action (the reader's words for a buyer, the linear seller's for a seller), offers and actions
  kept: the talk ablation;
- seller only: ``levers`` (none): a seller that reads the buyer (:mod:`counteroffer.agents.scripted.reading`):
  each episode its hidden lever is drawn from the seed among these kinds (comma-separated, or ``all``), as the
  scripted reading sellers draw theirs, and passed to its prompt (``{{ lever }}`` in the templates);
- seller only: ``reasks`` (2): how often a malformed message is asked again before the scripted fallback;
- ``hf`` only: ``dtype`` (auto | float32 | bfloat16 | float16), ``device`` (cpu, cuda, ...), ``max_batch`` (16);
- ``openai`` only: ``key_env`` (OPENAI_API_KEY: the environment variable holding the key), ``concurrency`` (16
  requests in flight), ``timeout`` (60 s), ``retries`` (4), ``backoff`` (0.5 s, doubled each retry).
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, ValidationError

from counteroffer.agents.base import Agent, AgentSpecError
from counteroffer.agents.llm.agent import DEFAULT_TEMPERATURE, LLMAgent
from counteroffer.agents.scripted.base import ScriptedAgent
from counteroffer.config_file import validation_problems
from counteroffer.game.hints import parse_levers
from counteroffer.game.messages import Role
from counteroffer.models.backend import ChatBackend, Sampling
from counteroffer.prompts.settings import PromptSettings, agent_defaults, rename_old_keys


class LLMSettings(PromptSettings):
    model_config = ConfigDict(extra="forbid")
    temperature: float | None = Field(None, ge=0, description="sampling temperature; default buyer 1.0, seller 0.7")
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(96, ge=1, description="tokens per turn (a well-formed message needs 40-80)")
    reasks: int = Field(2, ge=0, description="seller only: re-asks of a malformed message before the fallback")
    levers: str | None = Field(
        None, description="seller only: kinds its hidden lever is drawn from per episode (comma-separated, or all)"
    )
    talk: Literal["own", "plain"] = Field(
        "own", description="plain: the Talk of each message replaced by the scripted template (the talk ablation)"
    )


class HFSettings(LLMSettings):
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = "cpu"
    max_batch: int = Field(16, ge=1, description="sequences per generate call")


class EndpointSettings(LLMSettings):
    max_new_tokens: int = Field(256, ge=1, description="tokens per turn")
    key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the API key")
    concurrency: int = Field(16, ge=1, description="requests in flight")
    timeout: float = Field(60.0, gt=0, description="seconds per request")
    retries: int = Field(4, ge=0)
    backoff: float = Field(0.5, ge=0, description="first retry delay in seconds, doubled each retry")


def _settings(model: type[LLMSettings], spec: str, params: dict[str, str]) -> LLMSettings:
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise AgentSpecError(f"{spec}: {validation_problems(exc)}") from None


def make_llm_agent(
    spec: str,
    backend_name: str,
    name: str,
    params: dict[str, str],
    role: Role,
    persona: str,
    fallback: Agent | None,
    plain: ScriptedAgent,
) -> LLMAgent:
    """The LLM agent a spec names; ``fallback`` writes a seller's turn it cannot, ``plain`` is the scripted agent
    whose Talk replaces its own under ``talk=plain``."""
    backend: ChatBackend
    if backend_name == "hf":
        # A checkpoint trained here says which prompt caps and turn length it learned; explicit params win.
        try:
            params = {**agent_defaults(name), **rename_old_keys(params)}
        except ValueError as exc:
            raise AgentSpecError(f"{spec}: {exc}") from None
        settings = _settings(HFSettings, spec, params)
        assert isinstance(settings, HFSettings)
        from counteroffer.models.hf import HFBackend, load_chat_model

        try:
            backend = HFBackend(load_chat_model(name, settings.dtype, settings.device, settings.max_batch))
        except (OSError, ValueError, RuntimeError) as exc:  # no such model or path, no network to a hub, no package
            raise AgentSpecError(f"{spec}: cannot load model {name!r}: {exc}") from exc
    else:
        model, at, urls = name.partition("@")
        base_urls = urls.split(",")
        if not at or not model or not all(url.startswith(("http://", "https://")) for url in base_urls):
            raise AgentSpecError(
                f"{spec!r}: write endpoint agents as openai:MODEL@http(s)://HOST[:PORT]/v1 (several servers: "
                "comma-separated base URLs)"
            )
        settings = _settings(EndpointSettings, spec, params)
        assert isinstance(settings, EndpointSettings)
        from counteroffer.models.endpoint import EndpointBackend

        backend = EndpointBackend(
            model,
            base_urls,
            api_key_env=settings.key_env,
            concurrency=settings.concurrency,
            timeout=settings.timeout,
            retries=settings.retries,
            backoff=settings.backoff,
        )
    temperature = settings.temperature if settings.temperature is not None else DEFAULT_TEMPERATURE[role]
    try:
        return LLMAgent(
            spec,
            role,
            backend,
            Sampling(temperature, settings.top_p, settings.max_new_tokens),
            persona=persona,
            prompts=settings.prompt_settings(),
            reasks=settings.reasks,
            fallback=fallback,
            talker=plain if settings.talk == "plain" else None,
            levers=parse_levers(settings.levers) if settings.levers is not None else None,
        )
    except (FileNotFoundError, ValueError) as exc:
        backend.close()
        raise AgentSpecError(f"{spec}: {exc}") from exc
