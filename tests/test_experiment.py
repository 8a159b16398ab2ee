"""The experiment (:mod:`counteroffer.experiment`, ``counteroffer experiment CONFIG``): the summary table
BENCHMARKS.md shows, the shipped episodes, the test-evaluations ledger, the command's help and refusals, the
summary of a run cut short, and (slow) the whole pipeline on a tiny config."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from conftest import run_cli
from test_phases import FOUR_PHASES

from counteroffer.experiment import ExperimentConfig
from counteroffer.experiment.summary import EPISODES_FILE, record_test_evaluation, ship_episodes, summary_markdown
from counteroffer.train.log_records import LOG_FILE, TrainLogEntry

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "cpu-smollm2.yaml"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def summary_row(buyer: str, kind: str, opponent: str, reward: float) -> dict:
    return {
        "buyer": buyer,
        "kind": kind,
        "opponent": opponent,
        "n": 768,
        "reward": reward,
        "reward_ci": [reward - 0.02, reward + 0.02],
        "deal_rate": 0.95,
        "overshoot": 0.0,
        "format_errors": 0.0,
        "bargained_ratio": 0.7,
        "ci_n": 24,
        "ci_overshoot": 0.0,
    }


def test_every_teacher_of_a_mixture_has_its_own_line() -> None:
    """Four teachers share the kind "teacher": each keeps its own numbers and label (a table keyed by kind showed
    the last teacher's numbers under the first one's name)."""
    teachers = {"scripted:reader?opening=0.01": 0.750, "scripted:reader": 0.718, "scripted:reader?split=0.4": 0.650}
    rows = [summary_row(spec, "teacher", "mixture", reward) for spec, reward in teachers.items()]
    rows += [
        summary_row("scripted:oracle", "oracle", "mixture", 0.928),
        summary_row("hf:runs/x/grpo/final", "grpo", "mixture", 0.711),
        summary_row("hf:runs/x/sft/final", "sft", "mixture", 0.638),
        summary_row("hf:runs/x/sft/final", "sft", "a Boulware seller", 0.1),
        summary_row("scripted:naive", "other", "mixture", 0.1),
    ]
    table = summary_markdown(rows)
    reward_lines = table.split("\n\n")[0].splitlines()[2:]
    labels = [line.split(" | ")[0] for line in reward_lines]
    assert labels == [
        "| after SFT",
        "| after SFT + GRPO",
        *(f"| SFT teacher `{spec}`" for spec in teachers),
        "| `scripted:oracle` (knows cost and strategy)",
    ]
    for line, reward in zip(reward_lines[2:5], teachers.values(), strict=True):
        assert f"{reward:+.3f}" in line
    assert reward_lines[0].endswith("| +0.638 [+0.618, +0.658] | +0.100 [+0.080, +0.120] |")
    assert reward_lines[1].endswith("| +0.711 [+0.691, +0.731] | – |")
    assert "scripted:naive" not in table
    assert table.count("SFT teacher") == 2 * len(teachers)  # the reward table and the mixture's columns


def test_the_episodes_ship_with_the_results_and_read_back(shared_data: Path, tmp_path: Path) -> None:
    """A recorded claim ships its episodes: every evaluation episode, transcripts included, gzip JSONL sorted by
    key (the same bytes on a re-summary), one record per key even where tables share a cell."""
    import msgspec

    from counteroffer.evaluate.bench import BenchConfig, run_bench
    from counteroffer.game.records import EpisodeRecord

    bench = run_bench(
        BenchConfig(buyers=["scripted:anchor"], seller="scripted:linear", split="test", limit=3, rollouts=2,
                    out=tmp_path / "bench", data_root=str(shared_data))
    )  # fmt: skip
    records = bench.episodes_path.read_bytes().splitlines()
    decoded = [msgspec.json.decode(line, type=EpisodeRecord) for line in records]
    cells = {"cell-a": decoded, "cell-b": decoded[:2]}  # a cell shared by two tables
    shipped = ship_episodes(cells, tmp_path)
    first = (tmp_path / EPISODES_FILE).read_bytes()
    assert shipped["count"] == 6 and shipped["bytes"] == len(first)
    back = [msgspec.json.decode(line, type=EpisodeRecord) for line in gzip.decompress(first).splitlines()]
    assert sorted(r.key for r in back) == [r.key for r in back] == sorted(r.key for r in decoded)
    assert all(r.messages and r.messages[0].shown_talk for r in back)
    ship_episodes({"cell-b": decoded[:2], "cell-a": decoded[::-1]}, tmp_path)
    assert (tmp_path / EPISODES_FILE).read_bytes() == first


def test_a_run_counts_the_configurations_scored_on_test_before_it(tmp_path: Path) -> None:
    from counteroffer.train import load_config

    ledger = tmp_path / "test-evaluations.jsonl"
    ledger.write_text('{"config": "historical:a"}\n{"config": "historical:b"}\n')
    config = load_config(RECIPE)
    assert record_test_evaluation(ledger, RECIPE, config, tmp_path) == 3
    assert record_test_evaluation(ledger, RECIPE, config, tmp_path) == 3  # a re-summary is the same evaluation
    other = load_config(RECIPE, {"grpo.steps": 7})
    assert record_test_evaluation(ledger, RECIPE, other, tmp_path) == 4
    assert len(ledger.read_text().splitlines()) == 4
    fresh = tmp_path / "elsewhere" / "ledger.jsonl"  # a first ledger, in a folder that does not exist yet
    assert record_test_evaluation(fresh, RECIPE, config, tmp_path) == 1
    assert json.loads(fresh.read_text())["source"] == str(RECIPE)


def test_the_recorded_command_line_names_every_option_that_differs_from_its_default(tmp_path: Path) -> None:
    plain = ExperimentConfig.load(RECIPE)
    assert plain.command() == f"counteroffer experiment {RECIPE}"
    assert plain.results == Path("bench/results/cpu-learning")
    assert plain.ledger == Path("bench/results/test-evaluations.jsonl")  # relative: the current folder's
    variant = ExperimentConfig.load(
        RECIPE, ["out=runs/my variant", "grpo.steps=3"], results=tmp_path, limit=2, later_rollouts=1
    )
    assert variant.train.grpo.steps == 3 and variant.train.out == Path("runs/my variant")
    assert variant.command() == (
        f"counteroffer experiment {RECIPE} --results {tmp_path} --later-rollouts 1 --limit 2 "
        "--set 'out=runs/my variant' --set grpo.steps=3"
    )
    assert variant.evaluation_rollouts == (2, 1)


def test_help_documents_the_stages_what_it_writes_and_that_it_resumes() -> None:
    result = run_cli("experiment", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for stage in ("baselines", "sft", "evaluate_sft", "grpo", "evaluate_scripted", "evaluate_training",
                  "evaluate_unseen", "evaluate_base"):  # fmt: skip
        assert f" {stage} " in text
    for written in ("summary.json", "summary.md", "paired.json", "phases.json", "curves.png", "episodes.jsonl.gz"):
        assert written in text
    assert "Resumable" in text
    for option in ("--results", "--rollouts", "--later-rollouts", "--limit", "--set", "--summarize-only", "--report"):
        assert option in text


def test_summarize_only_without_checkpoints_fails_before_any_work(tmp_path: Path) -> None:
    results, ledger = tmp_path / "results", tmp_path / "ledger.jsonl"
    result = run_cli(
        "experiment", RECIPE, "--summarize-only", "--set", f"out={tmp_path / 'run'}",
        "--results", results, "--ledger", ledger,
    )  # fmt: skip
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "--summarize-only needs the trained checkpoints" in message
    assert f"{tmp_path / 'run' / 'sft' / 'final'}, {tmp_path / 'run' / 'grpo' / 'final'} are missing" in message
    assert not results.exists() and not ledger.exists() and not (tmp_path / "run").exists()
    broken = run_cli("experiment", RECIPE, "--set", "grpo.steps=-1", "--results", results)
    assert broken.returncode == 2 and "grpo.steps" in broken.stderr


def tiny_config(root: Path, data: Path, **sections: object) -> Path:
    """A config whose scripted parts are small (two-turn games, two training sellers)."""
    config = {
        "out": str(root / "run"),
        "data_root": str(data),
        "max_turns": 2,
        "validation_products": 4,
        "sft": {"demo_buyers": ["scripted:patient", "scripted:anchor?opening=0.4"]},
        "grpo": {"sellers": ["scripted:linear", "scripted:conceder"]},
        **sections,
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_summarize_only_writes_the_results_of_a_run_cut_short(shared_data: Path, tmp_path: Path) -> None:
    """A run stopped after its scripted evaluation (trained folders and logs, no LLM episodes yet) summarised:
    every file is written from what was played, and the trained rows are absent rather than wrong."""
    if importlib.util.find_spec("transformers") is None:  # the command's hf: specs; not imported here (slow)
        pytest.skip("needs the llm extra")
    from counteroffer.evaluate.suite import run_suite
    from counteroffer.experiment.pipeline import TIMINGS_FILE, Timings, best_scripted_buyers, evaluation_suite

    config = tiny_config(tmp_path, shared_data)
    run = tmp_path / "run"
    for stage in ("sft", "grpo"):
        (run / stage / "final").mkdir(parents=True)
    (run / "grpo" / LOG_FILE).write_text("".join(TrainLogEntry.of(line).to_line() for line in FOUR_PHASES))
    sft_lines = [TrainLogEntry(kind="data", step=0, demonstrations=8, too_long=0, tokens=900)] + [
        TrainLogEntry(kind="train", step=step, trainer={"loss": 2.0 / step, "mean_token_accuracy": 0.5})
        for step in range(1, 6)
    ]
    (run / "sft" / LOG_FILE).write_text("".join(line.to_line() for line in sft_lines))
    results, ledger, site = tmp_path / "results", tmp_path / "ledger.jsonl", tmp_path / "site"
    experiment = ExperimentConfig.load(config, results=results, rollouts=1, limit=2, ledger=ledger)
    results.mkdir()
    # What the baselines and evaluate_scripted stages leave behind (the scripted buyers: no model loads here).
    best, _ = best_scripted_buyers(experiment, Timings(results / TIMINGS_FILE, run))
    teachers = [spec for spec in experiment.train.sft.demo_buyers if spec != best]
    scripted = list(dict.fromkeys(["scripted:anchor", best, *teachers]))
    run_suite(evaluation_suite(experiment.train, scripted, rollouts=1, limit=2))

    options = ["--rollouts", "1", "--limit", "2", "--results", results, "--ledger", ledger]
    result = run_cli("experiment", config, "--summarize-only", *options, "--report", site, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((results / "summary.json").read_text())
    assert {row["buyer"] for row in summary["rows"]} == {*scripted, "scripted:oracle"}
    assert {row["table"] for row in summary["rows"]} == {
        "mixture", "linear", "conceder", "boulware", "unyielding", "craigslist"
    }  # fmt: skip
    assert all(row["n"] == (4 if row["table"] == "mixture" else 2) for row in summary["rows"])
    assert summary["grpo_paired"] == {}  # GRPO has played no test episode yet
    assert summary["best_scripted"] == best and summary["test_evaluations"] == 1
    assert len(ledger.read_text().splitlines()) == 1
    assert summary["command"] == (
        f"counteroffer experiment {config} --results {results} --rollouts 1 --limit 2 --report {site} "
        f"--ledger {ledger} --summarize-only"
    )
    assert set(summary["timings_seconds"]) == {"baselines"}
    # Five cells (the mixture's two are the training sellers' own tables) × two products, for each buyer.
    assert summary["episodes"]["count"] == len({row["buyer"] for row in summary["rows"]}) * 5 * 2
    markdown = (results / "summary.md").read_text()
    assert "| best scripted buyer |" in markdown and "after SFT" not in markdown
    assert all(f"| SFT teacher `{spec}` |" in markdown for spec in teachers)
    phases = json.loads((results / "phases.json").read_text())
    assert [band["phase"] for band in phases["bands"]] == [
        "naive bargaining", "aggressive anchoring", "deadlock", "persuasion"
    ]  # fmt: skip
    assert (results / "curves.png").read_bytes()[:8] == PNG_MAGIC
    paired = json.loads((results / "paired.json").read_text())
    assert {d["buyer"] for d in paired["best_scripted"]} == set(scripted) - {best}
    assert paired["sft"] and all(d["difference"]["n"] == 0 for d in paired["sft"])  # nothing to pair with yet
    assert (results / "tables.md").is_file() and (site / "index.html").is_file()
    assert "best_scripted" in result.stdout and "results in" in result.stdout


READING = ["scripted:reading-linear?levers=market_price&hints=train", "scripted:reading-titfortat?hints=train"]


def test_a_run_against_sellers_that_read_has_the_talk_rows(shared_data: Path, tmp_path: Path) -> None:
    """Against sellers that read words, the experiment adds the best talk-blind buyer, the oracle and the talk
    ablation of the GRPO buyer, plays the config's held-out tables instead of the unseen opponents, and reports
    the argument rates and the claims' paired differences (summarised here from the scripted rows alone)."""
    if importlib.util.find_spec("transformers") is None:
        pytest.skip("needs the llm extra")
    from counteroffer.evaluate.suite import run_suite
    from counteroffer.experiment.pipeline import TIMINGS_FILE, Buyers, Timings, best_scripted_buyers, evaluation_suite

    held_out = {"name": "held-out-wordings", "title": "Held out: wordings",
                "sellers": [spec.replace("hints=train", "hints=test") for spec in READING]}  # fmt: skip
    config = tiny_config(
        tmp_path,
        shared_data,
        sft={"demo_buyers": ["scripted:arguer?policy=random"], "sellers": READING},
        grpo={"sellers": READING},
        evaluation={"held_out_tables": [held_out]},
    )
    run = tmp_path / "run"
    for stage in ("sft", "grpo"):
        (run / stage / "final").mkdir(parents=True)
    (run / "grpo" / LOG_FILE).write_text("".join(TrainLogEntry.of(line).to_line() for line in FOUR_PHASES))
    results, ledger = tmp_path / "results", tmp_path / "ledger.jsonl"
    experiment = ExperimentConfig.load(config, results=results, rollouts=1, limit=2, ledger=ledger)
    results.mkdir()
    best, talk_blind = best_scripted_buyers(experiment, Timings(results / TIMINGS_FILE, run))
    assert talk_blind is not None and not talk_blind.startswith("scripted:arguer")
    buyers = Buyers.of(experiment.train, best, talk_blind, words=True)
    assert buyers.grpo_talk_ablated == buyers.grpo + "&talk=plain" and buyers.grpo_talk_ablated in buyers.trained
    assert Buyers.of(experiment.train, best, talk_blind).grpo_talk_ablated is None  # sellers deaf to words
    run_suite(evaluation_suite(experiment.train, buyers.scripted, rollouts=1, limit=2))

    result = run_cli("experiment", config, "--summarize-only", "--rollouts", "1", "--limit", "2",
                     "--results", results, "--ledger", ledger, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((results / "summary.json").read_text())
    kinds = {row["buyer"]: row["kind"] for row in summary["rows"]}
    assert kinds[talk_blind] in {"best_talk_blind", "best_scripted"} and kinds["scripted:oracle"] == "oracle"
    assert {row["table"] for row in summary["rows"]} == {
        "mixture", "reading-linear", "reading-titfortat", "held-out-wordings"
    }  # fmt: skip
    teacher = next(row for row in summary["rows"] if row["buyer"] == "scripted:arguer?policy=random")
    assert teacher["argument_rate"] == 1.0 and 0.0 <= teacher["argument_match_rate"] <= 1.0
    assert teacher["false_claim_rate"] is not None
    assert summary["paired"] == []  # no trained buyer has played: no claim to pair yet
    assert set(json.loads((results / "paired.json").read_text())) == {"best_scripted", "sft", "best_talk_blind", "grpo"}


def test_the_claims_are_the_trained_buyers_paired_with_their_references() -> None:
    """``summary.json``'s ``paired``: GRPO against the best talk-blind buyer and SFT, the talk ablation against
    GRPO, SFT against the best talk-blind buyer, on every table; other pairs are left out."""
    from counteroffer.experiment.summary import claims_paired

    def difference(buyer: str, table: str, mean: float) -> dict:
        estimate = {"mean": mean, "ci_low": mean - 0.1, "ci_high": mean + 0.1, "n": 64, "clusters": 32}
        return {"buyer": buyer, "table": table, "difference": estimate, "better": 30, "worse": 20}

    kinds = {"hf:g": "grpo", "hf:s": "sft", "hf:g&talk=plain": "grpo_talk_ablated"}
    kinds["scripted:reader"] = "best_talk_blind"
    paired = {
        "best_talk_blind": [difference("hf:g", "mixture", 0.2), difference("hf:s", "mixture", 0.05),
                            difference("scripted:anchor", "mixture", -0.3), difference("hf:g", "held-out", 0.1)],
        "sft": [difference("hf:g", "mixture", 0.15), difference("hf:g&talk=plain", "mixture", 0.0)],
        "grpo": [difference("hf:g&talk=plain", "mixture", -0.2)],
    }  # fmt: skip
    claims = {(d["buyer"], d["versus"], d["opponent"]): d for d in claims_paired(paired, kinds)}
    assert set(claims) == {
        ("grpo", "best_talk_blind", "mixture"), ("grpo", "best_talk_blind", "held-out"), ("grpo", "sft", "mixture"),
        ("grpo_talk_ablated", "grpo", "mixture"), ("sft", "best_talk_blind", "mixture"),
    }  # fmt: skip
    ablation = claims[("grpo_talk_ablated", "grpo", "mixture")]
    assert ablation["difference"] == -0.2 and ablation["ci"] == pytest.approx([-0.3, -0.1])
    assert (ablation["n"], ablation["products"], ablation["better"], ablation["worse"]) == (64, 32, 30, 20)


TEMPLATES = {
    "buyer.j2": "You buy: {{ title }}. Asking {{ asking_price }}. Your budget: {{ private_value }}. "
    "Write Thought:, Talk: and Action: lines; actions [BUY] $P, [DEAL] $P, [REJECT], [QUIT].",
    "opening.j2": "Turn {{ turn }} of {{ max_turns }}.",
    "reply.j2": "Seller: {{ action }}\nTurn {{ turn }} of {{ max_turns }}.",
}


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_experiment_end_to_end_on_a_tiny_config(shared_data: Path, tmp_path: Path) -> None:
    """Every stage on a tiny recipe (the training runs of test_train_runs.py, two test products, one rollout),
    then a re-run that trains and plays nothing again."""
    pytest.importorskip("trl")
    templates = tmp_path / "templates"
    templates.mkdir()
    for name, text in TEMPLATES.items():
        (templates / name).write_text(text)
    optim = {"per_device_batch_size": 4, "bf16": "auto", "save_total_limit": 1}
    config = tiny_config(
        tmp_path,
        shared_data,
        prompts={"templates_dir": str(templates), "description_chars": 0, "features_chars": 0},
        sft={"demo_buyers": ["scripted:patient", "scripted:anchor?opening=0.4"], "scenarios": 8, "max_demos": 8,
             "epochs": 4, "learning_rate": 1.0e-3, "save_steps": 1000, **optim},
        grpo={"sellers": ["scripted:linear", "scripted:conceder"], "products_per_step": 2, "group_size": 4,
              "steps": 1, "learning_rate": 1.0e-5, "max_new_tokens": 48, "save_steps": 1, **optim},
        evaluation={"every_steps": 1, "scenarios": 2, "sellers": ["scripted:linear"]},
    )  # fmt: skip
    results, ledger = tmp_path / "results", tmp_path / "ledger.jsonl"
    options = ["--rollouts", "1", "--limit", "2", "--results", results, "--ledger", ledger]
    result = run_cli("experiment", config, *options, timeout=1700)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((results / "summary.json").read_text())
    assert {row["kind"] for row in summary["rows"]} >= {"base", "sft", "grpo", "anchor", "best_scripted", "oracle"}
    assert set(summary["grpo_paired"]) == {"best_scripted", "sft"}
    stages = ["baselines", "sft", "evaluate_sft", "grpo", "evaluate_scripted", "evaluate_training",
              "evaluate_unseen", "evaluate_base"]  # fmt: skip
    assert list(summary["timings_seconds"]) == stages
    assert (results / "curves.png").read_bytes()[:8] == PNG_MAGIC
    assert "after SFT + GRPO" in (results / "summary.md").read_text()

    rerun = run_cli("experiment", config, *options, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    timings = json.loads((results / "timings.json").read_text())["seconds"]
    assert timings["sft"] == summary["timings_seconds"]["sft"]  # not trained again
    assert timings["grpo"] == summary["timings_seconds"]["grpo"]
    assert json.loads((results / "summary.json").read_text())["episodes"] == summary["episodes"]
