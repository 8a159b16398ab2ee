"""``bench``: run N rollouts per scenario for one or more buyers against one seller, resumably, and summarise.

Outputs in ``out``:

- ``episodes.jsonl``: one record per finished episode (see :class:`~counteroffer.game.records.EpisodeRecord`);
  a re-run with the same ``out`` skips finished episodes and re-runs errored ones.
- ``summary.json``: the bench's settings and, per buyer, aggregate metrics with 95% bootstrap intervals,
  overall and by mutual / conflicting interest.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from counteroffer.agents.base import Agent
from counteroffer.agents.registry import make_agent
from counteroffer.catalog.loaders import RecordProblem
from counteroffer.catalog.recipes import CatalogName, load_scenarios
from counteroffer.defaults import DEFAULT_PERSONA, DEFAULT_SELLER
from counteroffer.errors import ConfigError
from counteroffer.evaluate.summary import RowSummary, summarize
from counteroffer.files import write_text_atomic
from counteroffer.game.messages import Role
from counteroffer.game.negotiation import DEFAULT_MAX_TURNS, GameConfig
from counteroffer.game.records import EpisodeRecord
from counteroffer.rollout.runner import EpisodeJob, plan_jobs, run_episodes
from counteroffer.rollout.store import EpisodeStore, scenario_digest

EPISODES_FILE = "episodes.jsonl"
SUMMARY_FILE = "summary.json"


def find_episode_files(root: Path, excluding: Sequence[Path] = ()) -> list[Path]:
    """Every episodes file under ``root`` (itself included), sorted; none inside a training checkpoint or under
    one of the ``excluding`` folders."""
    return sorted(
        path
        for path in root.glob(f"**/{EPISODES_FILE}")
        if not any(part.startswith("checkpoint-") for part in path.parts)
        and not any(path.is_relative_to(folder) for folder in excluding)
    )


class BenchConfig(BaseModel):
    """Everything that defines a bench run."""

    model_config = ConfigDict(extra="forbid")
    buyers: list[str] = Field(min_length=1, description="buyer agent specs, one table row each")
    seller: str = Field(DEFAULT_SELLER, description="seller agent spec (always regulated)")
    persona: str = Field(DEFAULT_PERSONA, description="seller persona")
    catalog: CatalogName = "amazon"
    split: str = "test"
    rollouts: int = Field(4, ge=1, description="episodes per scenario and buyer")
    limit: int | None = Field(None, ge=1, description="use only the first LIMIT scenarios of the split")
    max_turns: int = Field(DEFAULT_MAX_TURNS, ge=1)
    seed: int = 0
    concurrency: int = Field(256, ge=1, description="episodes in flight at once")
    data_root: str | None = None
    out: Path


@dataclass(slots=True)
class BenchResult:
    rows: list[RowSummary]
    played: int  # episodes played by this call
    skipped: int  # episodes already finished in ``out``
    problems: list[RecordProblem]  # malformed catalogue records that were skipped
    episodes_path: Path
    summary_path: Path


def run_bench(
    config: BenchConfig,
    on_episode: Callable[[EpisodeRecord], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> BenchResult:
    """Run (or resume) a bench; ``on_start(pending)`` is called once the number of episodes to play is known and
    ``on_episode(record)`` after each finished episode."""
    scenario_set = load_scenarios(config.catalog, config.split, data_root=config.data_root, limit=config.limit)
    jobs = plan_jobs(scenario_set.scenarios, config.buyers, config.seller, config.persona, config.rollouts, config.seed)
    # Every agent built is closed, also when a later one fails to build (an endpoint agent holds a thread); a run
    # that cannot start writes nothing.
    with ExitStack() as cleanup:
        seller = make_agent(config.seller, Role.SELLER, config.persona)
        cleanup.callback(seller.close)
        buyers: dict[str, Agent] = {}
        for spec in config.buyers:
            buyers[spec] = make_agent(spec, Role.BUYER)
            cleanup.callback(buyers[spec].close)
            buyers[spec].bind_opponent(seller)
        config.out.mkdir(parents=True, exist_ok=True)
        store = cleanup.enter_context(EpisodeStore(config.out / EPISODES_FILE))
        _check_same_settings(store, jobs, config)
        pending = [job for job in jobs if not store.is_finished(job.key)]
        if on_start is not None:
            on_start(len(pending))

        def finished(record: EpisodeRecord) -> None:
            store.append(record)
            if on_episode is not None:
                on_episode(record)

        played = run_episodes(
            pending,
            lambda job: (buyers[job.buyer], seller),
            finished,
            config=GameConfig(max_turns=config.max_turns),
            concurrency=config.concurrency,
        )
        # In plan order (buyer, scenario, rollout), not the file's finishing order: the rows then follow the
        # --buyer order.
        order = {job.key: position for position, job in enumerate(jobs)}
        records = sorted((r for r in store.stored() if r.key in order), key=lambda r: order[r.key])
    rows = summarize(records, seed=config.seed)
    summary_path = config.out / SUMMARY_FILE
    summary = {
        "config": json.loads(config.model_dump_json()),
        "scenarios": len(scenario_set.scenarios),
        "mutual_interest_scenarios": scenario_set.mutual_interest_count,
        "skipped_catalogue_records": len(scenario_set.problems),
        "rows": [row.model_dump(mode="json") for row in rows],
    }
    write_text_atomic(summary_path, json.dumps(summary, indent=2) + "\n")
    return BenchResult(
        rows=rows,
        played=played,
        skipped=len(jobs) - len(pending),
        problems=scenario_set.problems,
        episodes_path=config.out / EPISODES_FILE,
        summary_path=summary_path,
    )


def _check_same_settings(store: EpisodeStore, jobs: list[EpisodeJob], config: BenchConfig) -> None:
    """Refuse to resume into ``out`` when its finished episodes of the same keys were played with other settings.

    An episode's key names its buyer, seller, persona, scenario and rollout, not the seed, the turn limit or the
    scenario's private values, so without this check a re-run with another --seed, --max-turns, recipe or data
    copy would skip those episodes and report the old ones under the new settings.
    """
    for job in jobs:
        if not store.is_finished(job.key):
            continue  # absent, or errored and about to be re-run and superseded
        record = store.latest(job.key)
        differences = []
        if record.seed != job.seed:
            differences.append("--seed")
        if record.max_turns != config.max_turns:
            differences.append(f"--max-turns ({record.max_turns} there, {config.max_turns} now)")
        if record.scenario_digest != scenario_digest(job.scenario):
            differences.append("scenario (recipe or data)")
        if differences:
            raise ConfigError(
                f"{store.path} already holds episode {job.key} played with another {', '.join(differences)}; "
                "use another --out"
            )
