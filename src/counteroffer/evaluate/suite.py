"""``evaluate``: a suite of benches that make up the paper's tables, run resumably from one YAML file.

A suite names the buyers once and a list of tables; each table names a seller, its personas and its catalogues.
Every (catalogue, split, seller, persona) combination is one *cell*, a bench of all the buyers (plus the oracle
buyer, the tables' upper bound) in ``OUT/cells/<catalogue>-<split>/<seller>/<persona>/``. Cells shared by several
tables are played once, and a re-run skips every finished episode, so a suite can be stopped, extended with new
buyers or tables, and run again. ``OUT/suite.json`` keeps the resolved config for the report.

Example (``configs/suite-cpu.yaml``)::

    out: runs/suite-cpu
    buyers: [scripted:naive, scripted:anchor]
    rollouts: 4
    tables:
      - {name: table1, title: "Table 1: neutral regulated seller", seller: scripted:linear}
      - {name: table2, title: "Table 2: a stronger seller", seller: scripted:boulware}
      - name: table3
        title: "Table 3: hostile personas"
        seller: scripted:linear
        personas: [begging, insulting, unyielding, deceptive, manipulative]
      - {name: cross_catalogue, title: "Across catalogues", seller: scripted:linear, catalogs: [amazon, craigslist]}
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from counteroffer.catalog.models import Scenario
from counteroffer.catalog.recipes import CatalogName, load_scenarios
from counteroffer.config_file import load_yaml_model
from counteroffer.errors import InputNotFoundError
from counteroffer.evaluate.bench import EPISODES_FILE, BenchConfig, BenchResult, run_bench
from counteroffer.files import write_text_atomic
from counteroffer.game.negotiation import DEFAULT_MAX_TURNS
from counteroffer.game.records import EpisodeRecord
from counteroffer.rollout.runner import plan_jobs
from counteroffer.rollout.store import read_episodes

SUITE_FILE = "suite.json"
ORACLE_SPEC = "scripted:oracle"


def _limit(table: int | None, suite: int | None) -> int | None:
    """A table's product limit under the suite's (a smoke run's ``--limit`` caps a table's own limit too)."""
    limits = [limit for limit in (table, suite) if limit is not None]
    return min(limits) if limits else None


class SuiteTable(BaseModel):
    """One table: every buyer against one seller, under each persona and on each catalogue named. With
    ``sellers`` instead, each row pools the buyer's episodes against every seller listed (each played in full,
    in its own cell): the expected result against a uniform mixture of them, without the noise of a draw."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$", description="file-safe name: OUT/tables/NAME.md")
    title: str
    seller: str | None = Field(None, description="seller agent spec (always regulated)")
    sellers: list[str] | None = Field(None, min_length=2, description="a mixture: rows pool these sellers' cells")
    personas: list[str] = Field(default_factory=lambda: ["neutral"], min_length=1)
    catalogs: list[CatalogName] = Field(default_factory=lambda: ["amazon"], min_length=1)
    split: str | None = Field(None, description="scenario split; null = the suite's")
    limit: int | None = Field(None, ge=1, description="first K scenarios; null = the suite's")

    @model_validator(mode="after")
    def _one_seller_or_a_mixture(self) -> SuiteTable:
        if (self.seller is None) == (self.sellers is None):
            raise ValueError(f"table {self.name!r} needs either seller (one spec) or sellers (a mixture)")
        return self

    @property
    def seller_specs(self) -> list[str]:
        return self.sellers or [self.seller]  # type: ignore[list-item]

    @property
    def mixture_label(self) -> str | None:
        """How a mixture table's rows name their seller; None for a one-seller table."""
        return f"mixture of {', '.join(self.sellers)}" if self.sellers else None

    @property
    def condition_label(self) -> str:
        """What distinguishes this table's rows besides the buyer."""
        varied = (("persona", self.personas), ("catalogue", self.catalogs))
        return " / ".join(label for label, values in varied if len(values) > 1)


class SuiteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    out: Path = Field(description="suite folder: cells/, tables/, suite.json")
    buyers: list[str] = Field(min_length=1, description="buyer agent specs, one row each in every table")
    oracle: str | None = Field(
        ORACLE_SPEC, description="upper-bound buyer played in every cell with a scripted seller; null = none"
    )
    split: str = "test"
    rollouts: int = Field(4, ge=1, description="episodes per scenario and buyer")
    limit: int | None = Field(None, ge=1, description="use only the first K scenarios of each split")
    max_turns: int = Field(DEFAULT_MAX_TURNS, ge=1)
    seed: int = 0
    concurrency: int = Field(256, ge=1)
    data_root: str | None = None
    tables: list[SuiteTable] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> SuiteConfig:
        names = [t.name for t in self.tables]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"table names must be unique; repeated: {', '.join(duplicated)}")
        return self

    def cell_buyers(self, seller: str) -> list[str]:
        """The buyers of a cell against ``seller``: the oracle joins only against a scripted seller, the one kind it
        can simulate to find its best reply."""
        plays_oracle = self.oracle and self.oracle not in self.buyers and seller.startswith("scripted:")
        return self.buyers + ([self.oracle] if plays_oracle else [])


@dataclass(frozen=True, slots=True)
class Cell:
    catalog: str
    split: str
    seller: str
    persona: str
    limit: int | None

    @property
    def folder(self) -> Path:
        return Path("cells") / f"{self.catalog}-{self.split}" / _slug(self.seller) / self.persona


def _slug(spec: str) -> str:
    """A spec as one folder name: ``scripted:linear`` → ``scripted-linear``; a spec with other characters gets a
    readable prefix and a hash of the whole spec, so two specs never share a folder."""
    if re.fullmatch(r"[A-Za-z0-9_.]+(:[A-Za-z0-9_.]+)?", spec):
        return spec.replace(":", "-")
    digest = hashlib.blake2b(spec.encode(), digest_size=4).hexdigest()
    return f"{re.sub(r'[^A-Za-z0-9_.=-]+', '-', spec).strip('-')[:60]}-{digest}"


def table_cells(config: SuiteConfig, table: SuiteTable) -> list[tuple[str, Cell]]:
    """The table's cells in row order, each with the condition it stands for in the table (a mixture table has
    one cell per seller under each condition)."""
    label = table.condition_label
    cells = []
    for catalog in table.catalogs:
        for persona in table.personas:
            parts = {"persona": persona, "catalogue": catalog}
            condition = " / ".join(parts[part] for part in label.split(" / ")) if label else ""
            for seller in table.seller_specs:
                cell = Cell(catalog, table.split or config.split, seller, persona, _limit(table.limit, config.limit))
                cells.append((condition, cell))
    return cells


def load_suite(path: Path, overrides: dict[str, object] | None = None) -> SuiteConfig:
    return load_yaml_model(path, SuiteConfig, overrides)


def run_suite(
    config: SuiteConfig,
    on_cell: Callable[[Cell, int], None] | None = None,
    on_episode: Callable[[EpisodeRecord], None] | None = None,
) -> dict[Cell, BenchResult]:
    """Play (or resume) every cell once; ``on_cell(cell, pending)`` is called as each cell starts."""
    config.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(config.out / SUITE_FILE, config.model_dump_json(indent=2) + "\n")
    results: dict[Cell, BenchResult] = {}
    for table in config.tables:
        for _, cell in table_cells(config, table):
            if cell in results:
                continue
            bench = BenchConfig(
                buyers=config.cell_buyers(cell.seller),
                seller=cell.seller,
                persona=cell.persona,
                catalog=cell.catalog,  # type: ignore[arg-type]
                split=cell.split,
                rollouts=config.rollouts,
                limit=cell.limit,
                max_turns=config.max_turns,
                seed=config.seed,
                concurrency=config.concurrency,
                data_root=config.data_root,
                out=config.out / cell.folder,
            )
            results[cell] = run_bench(
                bench,
                on_episode=on_episode,
                on_start=(lambda pending, cell=cell: on_cell(cell, pending)) if on_cell else None,
            )
    return results


def read_suite(out: Path) -> SuiteConfig:
    """The config a suite folder was run with."""
    path = out / SUITE_FILE
    if not path.exists():
        raise InputNotFoundError(f"{out} is not a suite folder (no {SUITE_FILE}); run `counteroffer evaluate` first")
    return SuiteConfig.model_validate(json.loads(path.read_text()))


def cell_records(config: SuiteConfig, cell: Cell, scenarios: Sequence[Scenario] | None = None) -> list[EpisodeRecord]:
    """The latest record of each episode the suite plans for the cell, in plan order (buyer as listed, scenario,
    rollout). Other episodes in the folder (another limit, more rollouts, a buyer since removed) are left out.
    ``scenarios``: the cell's split, if the caller has it already (else it is loaded)."""
    records = {r.key: r for r in read_episodes(config.out / cell.folder / EPISODES_FILE)}
    if not records:
        return []
    if scenarios is None:
        scenarios = load_scenarios(cell.catalog, cell.split, data_root=config.data_root, limit=cell.limit).scenarios
    jobs = plan_jobs(
        scenarios, config.cell_buyers(cell.seller), cell.seller, cell.persona, config.rollouts, config.seed
    )
    return [records[job.key] for job in jobs if job.key in records]
