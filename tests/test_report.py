"""``counteroffer report``: one self-contained HTML file for a training run (curves with phase bands, the phase
table, its benches) and an evaluation suite (tables, categories, offer trajectories, transcripts)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import yaml
from conftest import run_cli
from test_phases import FOUR_PHASES
from test_tables import SUITE

from counteroffer.rollout.store import EpisodeStore

PNG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def test_report_of_a_training_run_and_a_suite(shared_data: Path, tmp_path: Path) -> None:
    train = tmp_path / "train"
    (train / "grpo").mkdir(parents=True)
    (train / "grpo" / "train_log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in FOUR_PHASES))
    buyers = ["--buyer", "scripted:anchor", "--buyer", "scripted:oracle"]
    settings = ["--seller", "scripted:linear", "--limit", "5", "--rollouts", "1", "--data", shared_data]
    bench = run_cli("bench", *buyers, *settings, "--out", train / "eval" / "anchor")
    assert bench.returncode == 0, bench.stderr
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        yaml.safe_dump({**SUITE, "limit": 3, "out": str(tmp_path / "suite"), "data_root": str(shared_data)})
    )
    assert run_cli("evaluate", suite).returncode == 0

    result = run_cli("report", train, tmp_path / "suite", "--out", tmp_path / "site", "--title", "Test report")
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "site" / "index.html").read_text()
    assert "<title>Test report</title>" in html
    assert not re.search(r'(src|href)="https?:', html)  # self-contained: nothing loaded from elsewhere
    images = PNG.findall(html)
    # GRPO curves, 2 category charts, and one trajectory per sample episode (2 per buyer: 2 + 3 buyers).
    assert len(images) == 1 + 2 + 2 * 2 + 3 * 2
    assert all(base64.b64decode(image)[:8] == b"\x89PNG\r\n\x1a\n" for image in images)
    bands = re.findall(r'<span class="band [a-z-]+">steps \d+–\d+: ([a-z ]+)</span>', html)
    assert bands == ["naive bargaining", "aggressive anchoring", "deadlock", "persuasion"]
    assert html.count("<td>persuasion</td>") >= 4  # the phase table
    # The suite's tables, with the numbers of tables.json.
    tables = json.loads((tmp_path / "suite" / "tables.json").read_text())
    for table in tables:
        assert f"<caption>{table['title']}</caption>" in html
    reward = tables[0]["rows"][1]["summary"]["overall"]["reward"]
    half = (reward["ci_high"] - reward["ci_low"]) / 2
    assert f"<td>{reward['mean']:.3f} ±{half:.3f}</td>" in html
    # Sample episodes: the transcript's talk and the reward as the episodes file has them.
    with EpisodeStore(train / "eval" / "anchor" / "episodes.jsonl") as store:
        first_deal = min((r for r in store.records() if r.buyer == "scripted:anchor" and r.metrics.deal),
                         key=lambda r: r.key)  # fmt: skip
    assert f'data-key="{first_deal.key}"' in html
    assert first_deal.messages[0].shown_talk.replace("'", "&#39;") in html
    assert f'data-reward="{first_deal.reward:.4f}"' in html
    assert 'class="thought"' in html and "show-thoughts" in html  # thoughts are in the page, hidden by default


def test_report_errors(tmp_path: Path) -> None:
    result = run_cli("report", tmp_path / "missing")
    assert result.returncode == 2 and "is not a folder" in result.stderr
    (tmp_path / "empty").mkdir()
    result = run_cli("report", tmp_path / "empty")
    assert result.returncode == 2 and "holds no training log, suite or episodes file" in result.stderr


def test_a_runs_nested_evaluation_suite_shows_its_transcripts(shared_data: Path, tmp_path: Path) -> None:
    """The recorded experiment keeps its test episodes in a suite under RUN/eval: the report samples their
    transcripts and per-category results too (a claim's report shows the episodes it rests on)."""
    run = tmp_path / "run"
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({**SUITE, "limit": 2, "out": str(run / "eval"), "data_root": str(shared_data)}))
    assert run_cli("evaluate", suite).returncode == 0
    result = run_cli("report", run, "--out", tmp_path / "site")
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "site" / "index.html").read_text()
    with EpisodeStore(next((run / "eval").glob("cells/amazon-test/*/neutral/episodes.jsonl"))) as store:
        deal = min((r for r in store.records() if r.metrics.deal), key=lambda r: r.key)
    assert f'data-key="{deal.key}"' in html
    assert deal.messages[0].shown_talk.replace("'", "&#39;") in html
    assert "Per-category results" in html


def test_the_curves_of_a_talk_run_add_the_argument_rates() -> None:
    """A log with an argument-lever match rate gets a third row of panels (the match, argument and false-claim
    rates, as training and validation points); a log without one keeps two rows."""
    import struct

    from counteroffer.analysis.phases import analyse_entries
    from counteroffer.report.plots import grpo_curves
    from counteroffer.train.log_records import TrainLogEntry

    def height(lines: list[dict]) -> int:
        entries = [TrainLogEntry.of(line) for line in lines]
        analysis = analyse_entries(entries)
        png = grpo_curves(entries, analysis.steps, analysis.bands)
        return struct.unpack(">II", png[16:24])[1]

    talk = json.loads(json.dumps(FOUR_PHASES))
    for line in talk:
        line["game"] |= {"argument_match_rate": 0.4, "argument_rate": 0.9, "false_claim_rate": 0.1}
        # A step plays the sellers it drew: one seller is missing from some steps (a KeyError once).
        line["game_by_seller"] = {"scripted:linear" if line["step"] % 3 else "scripted:titfortat": {"reward": 0.1}}
    assert abs(height(talk) - 1.5 * height(FOUR_PHASES)) <= 2  # bbox_inches="tight" rounds by a pixel or so
