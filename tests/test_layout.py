"""One home per concept: the model runtime (``counteroffer.models``) and the prompts (``counteroffer.prompts``)
stand without the agents, and training and serving reach models and prompts without the LLM agent package."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "counteroffer"


def _loaded_after(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after ``statement``."""
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(done.stdout.split())


@pytest.mark.parametrize(
    "statement",
    [
        "import counteroffer.models",
        "import counteroffer.models.backend",
        "import counteroffer.prompts",
        "from counteroffer.prompts.settings import PromptSettings, agent_defaults",
        "import counteroffer.train.tokens",
        "import counteroffer.train.config",
        "import counteroffer.serve.schema",
    ],
)
def test_models_prompts_and_training_imports_leave_the_llm_agents_unloaded(statement: str) -> None:
    loaded = _loaded_after(statement)
    assert not {m for m in loaded if m == "counteroffer.agents.llm" or m.startswith("counteroffer.agents.llm.")}
    if "models" in statement or "prompts" in statement:
        assert not {m for m in loaded if m.startswith("counteroffer.agents")}
        assert "torch" not in loaded  # the backend protocol and the renderer need no model


def test_the_agents_public_api_gives_the_llm_agent_on_demand() -> None:
    assert "counteroffer.agents.llm" not in _loaded_after("import counteroffer.agents")
    loaded = _loaded_after("from counteroffer.agents import LLMAgent")
    assert "counteroffer.agents.llm.agent" in loaded


def _imports(folder: Path) -> dict[Path, list[str]]:
    pattern = re.compile(r"^\s*(?:from|import)\s+(counteroffer[\w.]*)", re.MULTILINE)
    return {path: pattern.findall(path.read_text()) for path in folder.rglob("*.py")}


def test_no_layer_imports_the_one_above_it() -> None:
    for folder in ("models", "prompts"):
        for path, modules in _imports(SRC / folder).items():
            assert not [m for m in modules if m.startswith("counteroffer.agents")], path
    for folder in ("train", "serve"):
        for path, modules in _imports(SRC / folder).items():
            assert not [m for m in modules if m.startswith("counteroffer.agents.llm")], path


def test_the_packaged_templates_live_with_the_renderer() -> None:
    from counteroffer.prompts.render import PACKAGED_TEMPLATES

    assert PACKAGED_TEMPLATES == SRC / "prompts" / "templates"
    assert {p.name for p in PACKAGED_TEMPLATES.glob("*.j2")} == {"buyer.j2", "seller.j2", "opening.j2", "reply.j2"}


def test_agent_failure_is_one_class_for_backends_and_agents() -> None:
    from counteroffer.agents import AgentFailure as FromAgents
    from counteroffer.agents.base import AgentFailure as FromBase
    from counteroffer.models.backend import AgentFailure

    assert FromAgents is FromBase is AgentFailure


def test_persona_has_one_home() -> None:
    from counteroffer.agents.scripted import Persona as FromScripted
    from counteroffer.agents.scripted.phrases import SELLER_PHRASES
    from counteroffer.prompts.personas import Persona
    from counteroffer.prompts.render import SELLER_PERSONAS

    assert FromScripted is Persona
    assert set(SELLER_PHRASES) == set(Persona)
    assert tuple(p.value for p in Persona) == SELLER_PERSONAS


def test_persona_templates_match_the_personas() -> None:
    from counteroffer.prompts.personas import Persona
    from counteroffer.prompts.render import PACKAGED_TEMPLATES

    assert {p.stem for p in (PACKAGED_TEMPLATES / "personas").glob("*.j2")} == {p.value for p in Persona}


def test_a_checkpoints_agent_defaults_use_the_one_key(tmp_path: Path) -> None:
    from counteroffer.prompts.settings import AGENT_DEFAULTS_FILE, PromptSettings, agent_defaults

    written = {**PromptSettings(templates_dir=tmp_path, description_chars=0).agent_params(), "max_new_tokens": 80}
    (tmp_path / AGENT_DEFAULTS_FILE).write_text(json.dumps(written))
    assert agent_defaults(str(tmp_path)) == {
        "templates_dir": str(tmp_path.resolve()),
        "description_chars": "0",
        "features_chars": "400",
        "thousands_separator": "True",
        "max_new_tokens": "80",
    }
