"""What a model reads: the prompt renderer (:mod:`.render`), its Jinja templates (``templates/``), the prompt
settings every part of the project shares (:mod:`.settings`) and the seller personas (:mod:`.personas`).

Importing this package loads neither torch nor the agents.
"""

from counteroffer.prompts.personas import Persona
from counteroffer.prompts.render import PACKAGED_TEMPLATES, SELLER_PERSONAS, PromptBuilder, price_vs_private_value
from counteroffer.prompts.settings import AGENT_DEFAULTS_FILE, PromptSettings, agent_defaults

__all__ = [
    "AGENT_DEFAULTS_FILE",
    "PACKAGED_TEMPLATES",
    "SELLER_PERSONAS",
    "Persona",
    "PromptBuilder",
    "PromptSettings",
    "agent_defaults",
    "price_vs_private_value",
]
