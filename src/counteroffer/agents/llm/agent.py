"""LLM negotiators: prompt, complete in one batch, and keep the seller's output playable.

A seller whose message does not parse is asked again (with the error and its own text) up to ``reasks`` times;
if it still fails, the turn falls back to the scripted linear seller of the same persona and the record says so
(``agent_reasked`` / ``agent_fallback`` events). A buyer's malformed message is not re-asked: it ends the episode
with reward −1, as in the paper.

A seller given ``levers`` reads the buyer: each episode its hidden lever is drawn from the seed (as the scripted
reading sellers draw theirs) and shown in its prompt.

With a ``talker`` (the spec's ``talk=plain``), the Talk of every well-formed message is replaced by the scripted
``talker``'s template for the same action, its Thought and action kept: the talk ablation, which shows how much of
a model's result its words carry.
"""

from __future__ import annotations

from collections.abc import Sequence

from counteroffer.agents.base import Agent, AgentFailure, Message, Reply, TurnRequest, turn_seed
from counteroffer.agents.scripted.base import ScriptedAgent
from counteroffer.defaults import DEFAULT_PERSONA
from counteroffer.game.arguments import ArgumentKind
from counteroffer.game.hints import draw_lever
from counteroffer.game.messages import FormatError, Role, format_message, parse_message
from counteroffer.models.backend import Chat, ChatBackend, Completion, Sampling, split_reasoning
from counteroffer.prompts.render import PromptBuilder
from counteroffer.prompts.settings import PromptSettings
from counteroffer.seeding import derive_seed

DEFAULT_TEMPERATURE = {Role.BUYER: 1.0, Role.SELLER: 0.7}  # the paper's sampling settings
REASK_TEMPLATE = (
    "Your message could not be used ({error}). Write it again as exactly three lines: "
    "Thought: ..., Talk: ..., Action: one allowed action with its price."
)


class LLMAgent(Agent):
    def __init__(
        self,
        spec: str,
        role: Role,
        backend: ChatBackend,
        sampling: Sampling,
        *,
        persona: str = DEFAULT_PERSONA,
        prompts: PromptSettings | None = None,
        reasks: int = 2,
        fallback: Agent | None = None,
        talker: ScriptedAgent | None = None,
        levers: Sequence[ArgumentKind] | None = None,
    ) -> None:
        super().__init__(spec, role)
        self.backend = backend
        self.sampling = sampling
        self.persona = persona
        self.prompts = PromptBuilder(role, persona, prompts)
        self.reasks = reasks if role is Role.SELLER else 0
        self.fallback = fallback
        self.talker = talker
        if levers is not None and (role is not Role.SELLER or not levers):
            raise ValueError("levers: a seller's hidden lever, drawn from at least one kind")
        self.levers = tuple(levers) if levers is not None else None

    @property
    def joint_key(self) -> object | None:
        return self.backend.joint_key

    def act(self, requests: Sequence[TurnRequest]) -> list[Message | AgentFailure]:
        return self.act_jointly([(self, requests)])[0]

    def act_jointly(self, groups: Sequence[tuple[Agent, Sequence[TurnRequest]]]) -> list[list[Message | AgentFailure]]:
        """First attempts of every agent in ``groups`` (all on this agent's backend) in one completion call, each
        chat with its own agent's prompt and sampling; then each agent repairs its own malformed replies."""
        members: list[tuple[LLMAgent, Sequence[TurnRequest]]] = []
        for agent, requests in groups:
            if not isinstance(agent, LLMAgent) or agent.backend.joint_key is not self.backend.joint_key:
                raise ValueError(f"{agent!r} does not share {self!r}'s backend")
            members.append((agent, requests))
        chats = [agent.chat(request) for agent, requests in members for request in requests]
        samplings = [agent.sampling for agent, requests in members for _ in requests]
        seeds = [turn_seed(request) for _, requests in members for request in requests]
        completions = self.backend.complete(chats, samplings, seeds)
        results, start = [], 0
        for agent, requests in members:
            end = start + len(requests)
            replies = [agent._reply(completion) for completion in completions[start:end]]
            replies = agent._repair(requests, chats[start:end], seeds[start:end], replies)
            results.append(agent._plain(requests, replies) if agent.talker is not None else replies)
            start = end
        return results

    def _repair(
        self,
        requests: Sequence[TurnRequest],
        chats: list[Chat],
        seeds: list[int],
        replies: list[Message | AgentFailure],
    ) -> list[Message | AgentFailure]:
        """Re-ask malformed seller messages, then hand what is still malformed to the scripted fallback."""
        for attempt in range(self.reasks):
            retry = [i for i, reply in enumerate(replies) if self._malformed(reply)]
            if not retry:
                break
            retry_chats = [_reask_chat(chats[i], replies[i], self.role) for i in retry]  # type: ignore[arg-type]
            retry_seeds = [derive_seed(seeds[i], "reask", attempt, bits=31) for i in retry]
            completions = self.backend.complete(retry_chats, [self.sampling] * len(retry), retry_seeds)
            for i, completion in zip(retry, completions, strict=True):
                previous = replies[i]
                assert isinstance(previous, Reply)
                fresh = self._reply(completion)
                replies[i] = (
                    fresh
                    if isinstance(fresh, AgentFailure)
                    else Reply(fresh.text, fresh.reasoning, (*previous.reasks, previous.text))
                )
        if self.role is Role.SELLER and self.fallback is not None:
            stuck = [i for i, reply in enumerate(replies) if self._malformed(reply)]
            if stuck:
                written = self.fallback.act([requests[i] for i in stuck])
                for i, text in zip(stuck, written, strict=True):
                    previous = replies[i]
                    assert isinstance(previous, Reply) and isinstance(text, str)
                    # ``reasks`` holds the attempts that were asked again; the last one was not (it was replaced)
                    replies[i] = Reply(text, previous.reasoning, previous.reasks, self.fallback.spec, previous.text)
        return replies

    def chat(self, request: TurnRequest) -> Chat:
        """The prompt of one turn, with the episode's lever for a seller that reads."""
        lever = draw_lever(request.seed, self.levers) if self.levers is not None else None
        return self.prompts.chat(request.view, lever)

    def _plain(
        self, requests: Sequence[TurnRequest], replies: list[Message | AgentFailure]
    ) -> list[Message | AgentFailure]:
        """Each well-formed reply with its Talk replaced by the talker's template for its action."""
        assert self.talker is not None
        plain: list[Message | AgentFailure] = []
        for request, reply in zip(requests, replies, strict=True):
            parsed = parse_message(reply.text, self.role) if isinstance(reply, Reply) else None
            if isinstance(reply, Reply) and parsed is not None and not isinstance(parsed, FormatError):
                talk = self.talker.talk(request, parsed.action)
                text = format_message(parsed.thought, talk, parsed.action)
                reply = Reply(text, reply.reasoning, reply.reasks, reply.fallback, reply.replaced)
            plain.append(reply)
        return plain

    def _reply(self, completion: Completion | AgentFailure) -> Reply | AgentFailure:
        if isinstance(completion, AgentFailure):
            return completion
        text, reasoning = split_reasoning(completion.text, completion.reasoning)
        return Reply(text, reasoning)

    def _malformed(self, reply: Message | AgentFailure) -> bool:
        return isinstance(reply, Reply) and isinstance(parse_message(reply.text, self.role), FormatError)

    def close(self) -> None:
        self.backend.close()


def _reask_chat(chat: Chat, reply: Reply, role: Role) -> Chat:
    error = parse_message(reply.text, role)
    detail = str(error) if isinstance(error, FormatError) else "format error"
    return [
        *chat,
        {"role": "assistant", "content": reply.text},
        {"role": "user", "content": REASK_TEMPLATE.format(error=detail)},
    ]
