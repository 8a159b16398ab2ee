"""The ``counteroffer`` command line, run as a real process: bench, play, data info, and user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from conftest import run_cli

from counteroffer.agents.scripted import Persona
from counteroffer.catalog import load_scenarios
from counteroffer.cli.app import PersonaOption
from counteroffer.game import EpisodeRecord, EpisodeStatus, Outcome, Role

BUYERS = ["scripted:naive", "scripted:anchor", "scripted:oracle"]
ROLLOUTS = 4


def squash(text: str) -> str:
    """Output with all whitespace runs collapsed, so that line wrapping by the terminal renderer does not matter."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def bench_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    out = tmp_path_factory.mktemp("bench") / "run"
    args = [a for buyer in BUYERS for a in ("--buyer", buyer)]
    args += ["--seller", "scripted:boulware", "--split", "test", "--rollouts", str(ROLLOUTS)]
    result = run_cli("bench", *args, "--data", shared_data, "--out", out)
    assert result.returncode == 0, result.stderr
    return out, result.stdout, " ".join(map(str, args))


def test_bench_prints_one_row_per_buyer(bench_run: tuple[Path, str, str]) -> None:
    _, stdout, _ = bench_run
    assert "amazon/test vs scripted:boulware (neutral): 128 products × 4 rollout(s)" in stdout
    rows = [line for line in stdout.splitlines() if "scripted:" in line and "boulware" not in line]
    assert [next(b for b in BUYERS if b in row) for row in rows] == BUYERS  # one row each, in --buyer order
    headers = ("reward", "MI", "CI", "deal", "bargained", "overshoot", "1st offer", "turns", "format err", "misquote")
    for header in headers:
        assert header in stdout
    assert all("512" in row for row in rows)
    assert "1536 played, 0 already finished" in squash(stdout)


def test_bench_writes_every_episode(bench_run: tuple[Path, str, str], shared_data: Path) -> None:
    out, _, _ = bench_run
    lines = (out / "episodes.jsonl").read_bytes().splitlines()
    assert len(lines) == len(BUYERS) * 128 * ROLLOUTS
    records = [msgspec.json.decode(line, type=EpisodeRecord) for line in lines]
    assert len({r.key for r in records}) == len(records)
    assert {r.buyer for r in records} == set(BUYERS)
    test_ids = {s.scenario_id for s in load_scenarios("amazon", "test", data_root=shared_data).scenarios}
    assert {r.scenario.scenario_id for r in records} == test_ids
    for record in records:
        assert record.status is EpisodeStatus.OK
        if record.outcome is Outcome.DEAL:
            assert record.price > record.scenario.cost, record.key  # no deal below cost, ever
        for message in record.messages:
            if message.role is Role.SELLER and message.shown_action.price is not None:
                assert message.shown_action.price >= record.scenario.cost


def _estimates(group: dict) -> dict[str, dict]:
    return {name: value for name, value in group.items() if isinstance(value, dict)}


def test_bench_summary(bench_run: tuple[Path, str, str], shared_data: Path) -> None:
    out, _, _ = bench_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["buyers"] == BUYERS and summary["config"]["rollouts"] == ROLLOUTS
    assert summary["scenarios"] == 128
    mi_scenarios = load_scenarios("amazon", "test", data_root=shared_data).mutual_interest_count
    assert summary["mutual_interest_scenarios"] == mi_scenarios
    rows = {row["buyer"]: row for row in summary["rows"]}
    assert [row["buyer"] for row in summary["rows"]] == BUYERS
    reward = {buyer: row["overall"]["reward"]["mean"] for buyer, row in rows.items()}
    assert reward["scripted:oracle"] > reward["scripted:anchor"] > reward["scripted:naive"]
    for row in rows.values():
        assert row["episodes"] == 512 and row["errored"] == 0
        assert row["mutual_interest"]["episodes"] == mi_scenarios * ROLLOUTS
        assert row["conflicting_interest"]["episodes"] == (128 - mi_scenarios) * ROLLOUTS
        for group in ("overall", "mutual_interest", "conflicting_interest"):
            estimates = _estimates(row[group])
            assert {"reward", "deal_rate", "bargained_ratio", "overshoot_rate", "first_offer_ratio"} <= set(estimates)
            for name, estimate in estimates.items():
                if estimate["n"] == 0:
                    assert estimate["mean"] is None, (group, name)
                    continue
                assert estimate["ci_low"] <= estimate["mean"] <= estimate["ci_high"], (row["buyer"], group, name)
        # The overall mean is the episode-weighted mean of the two groups.
        mi, ci = row["mutual_interest"], row["conflicting_interest"]
        weighted = (mi["reward"]["mean"] * mi["episodes"] + ci["reward"]["mean"] * ci["episodes"]) / 512
        assert row["overall"]["reward"]["mean"] == pytest.approx(weighted)
        assert ci["deal_rate"]["mean"] == 0.0  # no rational deal without mutual interest
        assert row["overall"]["overshoot_rate"]["mean"] == 0.0


def test_bench_rerun_plays_nothing(bench_run: tuple[Path, str, str], shared_data: Path) -> None:
    out, _, args = bench_run
    episodes_before = (out / "episodes.jsonl").read_bytes()
    summary_before = (out / "summary.json").read_text()
    again = run_cli("bench", *args.split(), "--data", shared_data, "--out", out)
    assert again.returncode == 0, again.stderr
    assert "0 played, 1536 already finished" in squash(again.stdout)
    assert (out / "episodes.jsonl").read_bytes() == episodes_before
    assert (out / "summary.json").read_text() == summary_before


def test_bench_rerun_with_other_settings_is_refused(bench_run: tuple[Path, str, str], shared_data: Path) -> None:
    out, _, args = bench_run
    episodes_before = (out / "episodes.jsonl").read_bytes()
    again = run_cli("bench", *args.split(), "--max-turns", "3", "--data", shared_data, "--out", out)
    assert again.returncode == 2
    assert "Traceback" not in again.stderr
    assert "played with another --max-turns (6 there, 3 now); use another --out" in again.stderr
    assert (out / "episodes.jsonl").read_bytes() == episodes_before


def test_play_shows_the_episode_and_saves_it(shared_data: Path, tmp_path: Path) -> None:
    saved = tmp_path / "episode.json"
    args = ["--buyer", "scripted:anchor", "--seller", "scripted:titfortat", "--persona", "insulting", "--index", "2"]
    result = run_cli("play", *args, "--save", saved, "--data", shared_data)
    assert result.returncode == 0, result.stderr
    record = msgspec.json.decode(saved.read_bytes(), type=EpisodeRecord)
    scenario = load_scenarios("amazon", "test", data_root=shared_data).scenarios[2]
    assert record.scenario == scenario
    assert (record.buyer, record.seller, record.persona) == ("scripted:anchor", "scripted:titfortat", "insulting")
    assert record.status is EpisodeStatus.OK and record.outcome is not None and record.messages
    shown = squash(result.stdout)
    assert squash(scenario.product.title) in shown
    assert "offer trajectory" in shown
    for message in record.messages:
        assert f"T{message.turn} {message.role.value}" in shown
        assert squash(message.shown_action.render()) in shown
    assert squash(record.messages[1].shown_talk)[:40] in shown  # an insulting seller's words
    assert f"outcome {record.outcome.value}" in shown
    assert f"reward {record.reward:+.3f}" in shown
    assert "My budget is" not in shown  # thoughts are private unless --thoughts


def test_play_thoughts_flag(shared_data: Path) -> None:
    result = run_cli("play", "--thoughts", "--index", "0", "--data", shared_data)
    assert result.returncode == 0, result.stderr
    assert "(thinks: My budget is" in squash(result.stdout)


def test_bench_on_craigslist(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "cl"
    result = run_cli(
        "bench",
        "--catalog",
        "craigslist",
        "--split",
        "test",
        "--limit",
        "5",
        "--rollouts",
        "2",
        "--buyer",
        "scripted:oracle",
        "--seller",
        "scripted:titfortat",
        "--data",
        shared_data,
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    assert "craigslist/test vs scripted:titfortat" in result.stdout
    assert "10 played" in squash(result.stdout)
    records = [
        msgspec.json.decode(line, type=EpisodeRecord) for line in (out / "episodes.jsonl").read_bytes().splitlines()
    ]
    assert len(records) == 10
    expected = [s.scenario_id for s in load_scenarios("craigslist", "test", data_root=shared_data, limit=5).scenarios]
    assert sorted({r.scenario.scenario_id for r in records}) == sorted(expected)
    assert all(r.scenario.recipe == "craigslist" for r in records)
    assert json.loads((out / "summary.json").read_text())["scenarios"] == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "--buyer", "scripted:haggler"], "no scripted buyer named 'haggler'"),
        (["bench", "--buyer", "gpt:4"], "unknown agent backend 'gpt'"),
        (["bench", "--persona", "rude"], "unknown persona 'rude'"),
        (["bench", "--buyer", "scripted:anchor?opening"], "bad parameters 'opening'"),
        (["bench", "--split", "dev"], "unknown AmazonHistoryPrice split 'dev'"),
        (["bench", "--catalog", "ebay"], "catalog: Input should be 'amazon' or 'craigslist'"),
        (["baselines", "--catalog", "ebay"], "catalog: Input should be 'amazon' or 'craigslist'"),
        (["baselines", "--seller", "scripted:linear", "--buyer", "scripted:oracle"], "ranks scripted buyers"),
        (["bench", "--data", "/nonexistent"], "data folder /nonexistent does not exist"),
        (["play", "--data", "/nonexistent"], "data folder /nonexistent does not exist"),
        (["play", "--catalog", "ebay"], "unknown catalogue 'ebay'"),
        (["play", "--index", "500"], "--index 500 is past the 128 scenarios"),
        (["play", "--seller", "scripted:boulware?exponent=nan"], "not a finite number"),
        (["data", "info", "--data", "/nonexistent"], "data folder /nonexistent does not exist"),
        (["data", "info", "--catalog", "ebay"], "unknown catalogue 'ebay'"),
    ],
)
def test_user_errors_exit_2_without_traceback(args: list[str], message: str, shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "never"
    full = [*args, "--out", out] if args[0] == "bench" else list(args)
    if "--data" not in args:
        full += ["--data", shared_data]
    result = run_cli(*full)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert "error:" in result.stderr
    assert message in squash(result.stderr)
    assert not out.exists()  # nothing written for a run that could not start


# `counteroffer train sft` with only the training run replaced: the command's own path (reading the config,
# catching errors, printing, the exit status) is the real one.
TRAIN_WITH_A_STUB_RUN = """
import sys

import counteroffer.train
from counteroffer.agents.base import AgentSpecError

def run_sft(*args, **kwargs):
    raise {error}

counteroffer.train.run_sft = run_sft
from counteroffer.cli.app import main

sys.argv = ["counteroffer", *sys.argv[1:]]
main()
"""


def train_sft_raising(error: str, config: Path) -> subprocess.CompletedProcess[str]:
    script = TRAIN_WITH_A_STUB_RUN.format(error=error)
    return subprocess.run(
        [sys.executable, "-c", script, "train", "sft", str(config)], capture_output=True, text=True, timeout=120
    )


def test_a_value_error_inside_a_training_run_is_a_bug_with_its_traceback(tmp_path: Path) -> None:
    """A mock: ``counteroffer.train.run_sft`` is replaced by a stub that raises ``ValueError``, as a bug or TRL
    might three hours into a run. Only the project's own errors are user errors: this one keeps its traceback and
    the exit status is 1, not one line and 2."""
    config = tmp_path / "train.yaml"
    config.write_text(f"out: {tmp_path / 'run'}\n")
    result = train_sft_raising("ValueError('a bug deep inside the trainer')", config)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback (most recent call last)" in result.stderr
    assert "ValueError: a bug deep inside the trainer" in result.stderr
    assert "error:" not in result.stderr


def test_a_project_error_inside_a_training_run_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """A mock as above, raising the project's own AgentSpecError (an unknown agent spec in the config)."""
    config = tmp_path / "train.yaml"
    config.write_text(f"out: {tmp_path / 'run'}\n")
    result = train_sft_raising("AgentSpecError(\"no scripted buyer named 'haggler'\")", config)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == "error: no scripted buyer named 'haggler'"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "sft", "/nonexistent/train.yaml"], "cannot read config /nonexistent/train.yaml"),
        (["train", "sft", "CONFIG", "--set", "sft.bogus=1"], "sft.bogus: Extra inputs are not permitted"),
        (["train", "sft", "CONFIG", "--set", "sft.steps"], "--set 'sft.steps': write it as FIELD=VALUE"),
        (["train", "show-config", "CONFIG", "--set", "max_turns=0"], "max_turns: Input should be greater than"),
    ],
)
def test_training_config_errors_are_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(f"out: {tmp_path / 'run'}\n")
    result = run_cli(*[config if arg == "CONFIG" else arg for arg in args])
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert message in squash(result.stderr)
    assert not (tmp_path / "run").exists()


def test_the_persona_help_lists_every_persona() -> None:
    help_text = squash(run_cli("bench", "--help").stdout)
    for persona in Persona:
        assert persona.value in help_text
    assert PersonaOption.__metadata__[0].help == "seller persona: " + " | ".join(p.value for p in Persona)


def test_corrupt_episodes_file_is_a_user_error(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "episodes.jsonl").write_text("not a record\n")
    result = run_cli("bench", "--limit", "1", "--rollouts", "1", "--data", shared_data, "--out", out)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{out / 'episodes.jsonl'}:1: not an episode record" in result.stderr  # not broken across lines
    assert (out / "episodes.jsonl").read_text() == "not a record\n"
    sellers = run_cli("sellers", out)
    assert sellers.returncode == 2 and "Traceback" not in sellers.stderr
    assert f"{out / 'episodes.jsonl'}:1: not an episode record" in sellers.stderr


def test_data_info_json(shared_data: Path) -> None:
    result = run_cli("data", "info", "--catalog", "amazon", "--split", "all", "--json", "--data", shared_data)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info == {
        "data": str(shared_data),
        "catalog": "amazon",
        "split": "all",
        "scenarios": 930,
        "mutual_interest": 886,
        "conflicting_interest": 44,
        "skipped_records": 0,
    }
