"""The seller personas: one list for the scripted sellers' phrases and the LLM sellers' prompt templates
(``templates/personas/<name>.j2``)."""

from __future__ import annotations

from enum import StrEnum


class Persona(StrEnum):
    NEUTRAL = "neutral"
    BEGGING = "begging"
    INSULTING = "insulting"
    UNYIELDING = "unyielding"
    DECEPTIVE = "deceptive"
    MANIPULATIVE = "manipulative"
