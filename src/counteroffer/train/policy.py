"""The buyer being trained, as an agent the rollout engine plays like any other.

:class:`PolicyBuyer` answers a batch of buyer turns by generating from token ids (one call per round for all
live episodes) and keeps, per episode, the :class:`~counteroffer.train.tokens.EpisodeTokens` that GRPO trains on.
Episodes are told apart by their seed, which the rollout makes unique within a batch.
"""

from __future__ import annotations

from collections.abc import Sequence

from counteroffer.agents.base import Agent, AgentFailure, Message, TurnRequest, turn_seed
from counteroffer.game.messages import Role
from counteroffer.models.backend import Sampling
from counteroffer.prompts.render import PromptBuilder
from counteroffer.train.generation import TurnGenerator
from counteroffer.train.tokens import ChatTokenizer, EpisodeTokens

POLICY_SPEC = "policy"


class PolicyBuyer(Agent):
    def __init__(
        self,
        generator: TurnGenerator,
        chat_tokenizer: ChatTokenizer,
        prompts: PromptBuilder,
        sampling: Sampling,
    ) -> None:
        super().__init__(POLICY_SPEC, Role.BUYER)
        self.generator = generator
        self.chat_tokenizer = chat_tokenizer
        self.prompts = prompts
        self.sampling = sampling
        self.episodes: dict[int, EpisodeTokens] = {}

    def act(self, requests: Sequence[TurnRequest]) -> list[Message | AgentFailure]:
        sequences = []
        for request in requests:
            tokens = self.episodes.setdefault(request.seed, EpisodeTokens())
            tokens.observe(self.prompts.chat(request.view), self.chat_tokenizer)
            sequences.append(tokens)
        turns = self.generator.generate(
            [tokens.ids for tokens in sequences], self.sampling, [turn_seed(r) for r in requests]
        )
        messages: list[Message | AgentFailure] = []
        for tokens, turn in zip(sequences, turns, strict=True):
            tokens.add_generated(turn.ids, turn.logprobs)
            messages.append(self.chat_tokenizer.decode_message(turn.ids))
        return messages
