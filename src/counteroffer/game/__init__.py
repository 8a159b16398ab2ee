"""The rules of the game: message format, state machine, regulator, reward and metrics. Pure; no model code."""

from counteroffer.game.messages import (
    Action,
    ActionKind,
    FormatError,
    FormatErrorKind,
    ParsedMessage,
    Role,
    format_message,
    parse_message,
)
from counteroffer.game.negotiation import GameConfig, GameOver, Negotiation, RoleView, VisibleMessage
from counteroffer.game.records import (
    EpisodeMetrics,
    EpisodeRecord,
    EpisodeStatus,
    EventKind,
    GameEvent,
    MessageRecord,
    Outcome,
    episode_key,
)
from counteroffer.game.reward import bargained_ratio, buyer_reward, episode_metrics

__all__ = [
    "Action",
    "ActionKind",
    "EpisodeMetrics",
    "EpisodeRecord",
    "EpisodeStatus",
    "EventKind",
    "FormatError",
    "FormatErrorKind",
    "GameConfig",
    "GameEvent",
    "GameOver",
    "MessageRecord",
    "Negotiation",
    "Outcome",
    "ParsedMessage",
    "Role",
    "RoleView",
    "VisibleMessage",
    "bargained_ratio",
    "buyer_reward",
    "episode_key",
    "episode_metrics",
    "format_message",
    "parse_message",
]
