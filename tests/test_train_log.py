"""The train log's one record type: what TrainLog writes reads back through ``read_train_log`` (the reader that
analysis, the report and the experiment share), older lines with fields it does not know still read, and a torn
or garbled line is reported with its file and line number."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from counteroffer.train.log_records import (
    LOG_FILE,
    GroupStats,
    TrainLogEntry,
    TrainLogError,
    parse_train_log_line,
    read_train_log,
)


def test_the_record_module_leaves_torch_and_transformers_out() -> None:
    """analysis and report import the reader; it must not pull the training stack in with it."""
    import subprocess

    code = (
        "import sys; import counteroffer.train.log_records, counteroffer.analysis.phases; "
        "print(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_what_train_log_writes_reads_back(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("tensorboard")
    from counteroffer.train.logs import TrainLog

    log = TrainLog(tmp_path)
    log.write(TrainLogEntry(kind="data", step=0, demonstrations=8, too_long=1, tokens=900))
    game = {"reward": 0.25, "deal_rate": 0.5, "first_offer_ratio": None, "episodes": 8, "errored": 0}
    log.add(
        game=game,
        samples=["T | budget 160.00 cost 100.00 asking 200.00 | deal at 150.0 | reward 0.500"],
        groups={"count": 2, "flat_rate": 0.5},
        game_by_seller={"scripted:linear": {"reward": 0.5, "episodes": 4}},
        rollout={"seconds": 1.5, "reused": 10},
    )
    state = SimpleNamespace(is_world_process_zero=True, global_step=1)
    log.on_log(None, state, None, logs={"loss": 0.125, "grad_norm": float("nan"), "learning_rate": 1e-5})
    log.write(TrainLogEntry(kind="eval", step=1, game=game, samples=[]))
    log.on_train_end(None, state, None)

    data, train, held_out = read_train_log(tmp_path / LOG_FILE)
    assert (data.kind, data.step, data.demonstrations, data.too_long, data.tokens) == ("data", 0, 8, 1, 900)
    assert data.game is None and data.trainer == {}
    assert train.kind == "train" and train.step == 1 and train.game == game
    assert train.trainer["loss"] == 0.125 and train.trainer["grad_norm"] != train.trainer["grad_norm"]  # NaN kept
    assert train.groups == GroupStats(count=2, flat_rate=0.5)
    assert train.game_by_seller["scripted:linear"]["episodes"] == 4 and train.rollout["reused"] == 10
    assert train.samples[0].startswith("T | budget")
    assert held_out.kind == "eval" and held_out.game == game and held_out.trainer == {}
    # A line holds the fields that were set, nothing more: an eval line has no trainer, a data line no game.
    raw = [json.loads(line) for line in (tmp_path / LOG_FILE).read_text().splitlines()]
    assert set(raw[0]) == {"kind", "step", "demonstrations", "too_long", "tokens"}
    assert set(raw[2]) == {"kind", "step", "game", "samples"}
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_unknown_fields_are_kept_and_dict_lines_validate() -> None:
    entry = parse_train_log_line('{"kind": "train", "step": 3, "trainer": {"loss": 1}, "future_field": [1, 2]}')
    assert entry.step == 3 and entry.model_extra == {"future_field": [1, 2]}
    assert json.loads(entry.to_line())["future_field"] == [1, 2]
    assert TrainLogEntry.of({"kind": "eval", "step": 2, "game": {}}).game == {}
    assert TrainLogEntry.of(entry) is entry


def test_a_torn_or_garbled_line_names_its_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / LOG_FILE
    good = TrainLogEntry(kind="train", step=1, trainer={"loss": 0.5}).to_line()
    path.write_text(good + "\n" + good + '{"kind": "train", "step": 2, "trai')  # a kill mid-write
    with pytest.raises(TrainLogError, match=rf"{LOG_FILE}:4: not a JSON line"):
        read_train_log(path)
    path.write_text(good + '{"kind": "checkpoint", "step": 2}\n')
    with pytest.raises(TrainLogError, match=rf"{LOG_FILE}:2: not a train log line \(kind: "):
        read_train_log(path)
    path.write_text(good + '{"kind": "train"}\n')
    with pytest.raises(TrainLogError, match=rf"{LOG_FILE}:2: not a train log line \(step: Field required"):
        read_train_log(path)
