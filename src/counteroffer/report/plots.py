"""matplotlib figures as PNG bytes: training curves with phase bands, offer trajectories, category bars.

The Agg backend is used whatever the environment says: figures are only ever written to bytes, never shown.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
from matplotlib.figure import Figure  # noqa: E402

from counteroffer.analysis.phases import Phase, PhaseBand, StepSignals  # noqa: E402
from counteroffer.analysis.tables import CategoryPivot, PaperTable  # noqa: E402
from counteroffer.analysis.trajectory import offer_trajectory  # noqa: E402
from counteroffer.game.messages import ActionKind, Role  # noqa: E402
from counteroffer.game.records import EpisodeRecord  # noqa: E402
from counteroffer.train.log_records import TrainLogEntry  # noqa: E402

PHASE_COLOURS = {
    Phase.NAIVE: "#dbeafe",
    Phase.ANCHORING: "#fef3c7",
    Phase.DEADLOCK: "#fee2e2",
    Phase.PERSUASION: "#dcfce7",
}
ROLE_COLOURS = {Role.BUYER: "#0e7490", Role.SELLER: "#a21caf"}
DPI = 90


def figure_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _phase_bands(axes: plt.Axes, bands: Sequence[PhaseBand]) -> None:
    for band in bands:
        axes.axvspan(band.first_step - 0.5, band.last_step + 0.5, color=PHASE_COLOURS[band.phase], zorder=0)


GRPO_PANELS = (
    ("reward", "reward", None),
    ("deal_rate", "deal rate", (0, 1)),
    ("first_offer_ratio", "first offer / budget", None),
    ("bargained_ratio", "bargained ratio", None),
    ("deadlock_rate", "deadlock rate", (0, 1)),
    ("format_error_rate", "format-error rate", (0, 1)),
)
# A third row where the sellers hint at what moves them (the log has an argument-lever match rate).
TALK_PANELS = (
    ("argument_match_rate", "argument-lever match rate", (0, 1)),
    ("argument_rate", "episodes with an argument", (0, 1)),
    ("false_claim_rate", "episodes with a false claim", (0, 1)),
)


def grpo_curves(
    entries: Sequence[TrainLogEntry],
    steps: Sequence[StepSignals],
    bands: Sequence[PhaseBand],
    sft: Sequence[TrainLogEntry] | None = None,
) -> bytes:
    """The game metrics of each GRPO step (and held-out evaluations, as squares) over phase-coloured bands; the
    reward panel adds each training seller's reward (dotted) where the log has them, and a log with an
    argument-lever match rate gets a row of the argument rates. With ``sft`` (the SFT log's
    lines), a last column shows that stage's loss and token accuracy: the whole run in one figure."""
    train = {e.step: e for e in entries if e.kind == "train"}
    held_out = {e.step: e.game or {} for e in entries if e.kind == "eval"}
    deadlock = {s.step: s.deadlock_rate for s in steps}
    talk = any((e.game or {}).get("argument_match_rate") is not None for e in entries)
    panels = GRPO_PANELS + TALK_PANELS if talk else GRPO_PANELS
    columns, rows = (4 if sft is not None else 3), len(panels) // 3
    figure, axes_grid = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), sharex="col", squeeze=False)
    grpo_axes = [axes for row in axes_grid for axes in row[:3]]
    for axes, (key, label, limits) in zip(grpo_axes, panels, strict=True):
        _phase_bands(axes, bands)
        series = deadlock if key == "deadlock_rate" else {s: (e.game or {}).get(key) for s, e in train.items()}
        points = sorted((s, v) for s, v in series.items() if v is not None)
        if points:
            axes.plot(*zip(*points, strict=True), marker="o", markersize=3, color="#1f2937", label="rollouts")
        evaluated = sorted((s, g[key]) for s, g in held_out.items() if g.get(key) is not None)
        if evaluated:
            axes.plot(*zip(*evaluated, strict=True), marker="s", color="#dc2626", label="held-out")
        if key == "reward":
            for seller in sorted({name for e in train.values() for name in e.game_by_seller}):
                by_seller = [(s, e.game_by_seller.get(seller, {}).get("reward")) for s, e in train.items()]
                points = sorted((s, v) for s, v in by_seller if v is not None)
                if points:
                    axes.plot(*zip(*points, strict=True), linestyle=":", alpha=0.7, label=seller)
            if axes.get_legend_handles_labels()[0]:
                axes.legend(fontsize=7)
        axes.set_title(label, fontsize=10)
        if limits:
            axes.set_ylim(*limits)
        axes.grid(alpha=0.3)
    for axes in axes_grid[-1][:3]:
        axes.set_xlabel("GRPO step")
    if sft is not None:
        _sft_panels(axes_grid[0][3], axes_grid[1][3], sft)
        for row in axes_grid[2:]:
            row[3].set_axis_off()
    handles = [plt.Rectangle((0, 0), 1, 1, color=PHASE_COLOURS[p]) for p in Phase]
    figure.legend(handles, [p.value for p in Phase], loc="lower center", ncol=4, frameon=False)
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    return figure_bytes(figure)


def _sft_points(entries: Sequence[TrainLogEntry]) -> list[tuple[int, dict]]:
    return [(e.step, e.trainer) for e in entries if e.kind == "train" and "loss" in e.trainer]


def _sft_panels(loss_axes: plt.Axes, accuracy_axes: plt.Axes, entries: Sequence[TrainLogEntry]) -> None:
    """SFT's loss above its token accuracy (a column of :func:`grpo_curves`)."""
    points = _sft_points(entries)
    loss_axes.plot([s for s, _ in points], [t["loss"] for _, t in points], marker="o", markersize=3, color="#1f2937")
    loss_axes.set_title("SFT: loss on buyer tokens", fontsize=10)
    accuracy = [(s, t["mean_token_accuracy"]) for s, t in points if "mean_token_accuracy" in t]
    if accuracy:
        accuracy_axes.plot(*zip(*accuracy, strict=True), marker="o", markersize=3, color="#0e7490")
    accuracy_axes.set_title("SFT: token accuracy", fontsize=10)
    accuracy_axes.set_xlabel("SFT step")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)


def sft_curve(entries: Sequence[TrainLogEntry]) -> bytes:
    """The SFT stage's training loss and token accuracy per step."""
    points = _sft_points(entries)
    figure, axes = plt.subplots(figsize=(6, 3))
    axes.plot([s for s, _ in points], [t["loss"] for _, t in points], marker="o", markersize=3, color="#1f2937")
    axes.set_xlabel("SFT step")
    axes.set_ylabel("loss")
    axes.grid(alpha=0.3)
    accuracy = [(s, t["mean_token_accuracy"]) for s, t in points if "mean_token_accuracy" in t]
    if accuracy:
        twin = axes.twinx()
        twin.plot(*zip(*accuracy, strict=True), color="#0e7490", linestyle="--")
        twin.set_ylabel("token accuracy", color="#0e7490")
    figure.tight_layout()
    return figure_bytes(figure)


def offer_trajectory_plot(record: EpisodeRecord) -> bytes:
    """Buyer and seller offers over turns, with the buyer's budget, the seller's cost and the asking price."""
    scenario = record.scenario
    figure, axes = plt.subplots(figsize=(5.5, 3))
    offers = offer_trajectory(record)
    for role in (Role.BUYER, Role.SELLER):
        own = [o for o in offers if o.role is role]
        if own:
            axes.plot([o.turn for o in own], [o.price for o in own], marker="o", color=ROLE_COLOURS[role], label=role)
    for deal in (o for o in offers if o.kind is ActionKind.DEAL):
        axes.plot(deal.turn, deal.price, marker="*", markersize=14, color="#16a34a", linestyle="none", label="deal")
    axes.axhline(scenario.budget, color=ROLE_COLOURS[Role.BUYER], linestyle="--", linewidth=1, label="budget")
    axes.axhline(scenario.cost, color=ROLE_COLOURS[Role.SELLER], linestyle=":", linewidth=1, label="cost")
    axes.axhline(scenario.asking_price, color="#6b7280", linestyle="-.", linewidth=0.8, label="asking")
    axes.set_xlabel("turn")
    axes.set_ylabel("price ($)")
    axes.set_xticks(range(1, max([record.max_turns, *(o.turn for o in offers)]) + 1))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="best")
    figure.tight_layout()
    return figure_bytes(figure)


def short_spec(spec: str) -> str:
    """An agent spec without its parameters, for narrow places (legends, table cells of the web app)."""
    return spec.partition("?")[0]


def legend_labels(specs: Sequence[str]) -> list[str]:
    """Short specs, except where two would read the same (then the full spec)."""
    short = [short_spec(spec) for spec in specs]
    return [s if short.count(s) == 1 else spec for s, spec in zip(short, specs, strict=True)]


def category_bars(pivot: CategoryPivot, top: int = 10) -> bytes:
    """Mean reward per product category (the ``top`` categories with the most episodes), one bar per buyer."""
    rows = pivot.rows[:top][::-1]
    height = 0.8 / max(1, len(pivot.buyers))
    figure, axes = plt.subplots(figsize=(7, 1.2 + 0.12 * len(rows) * (len(pivot.buyers) + 1)))
    for index, label in enumerate(legend_labels(pivot.buyers)):
        rewards = [(cells[index].reward.mean or 0.0) if cells[index] else 0.0 for _, cells in rows]
        axes.barh([i + index * height for i in range(len(rows))], rewards, height=height, label=label)
    axes.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))])
    axes.set_yticklabels(
        [f"{category} ({sum(c.episodes for c in cells if c)})" for category, cells in rows], fontsize=8
    )
    axes.axvline(0, color="#374151", linewidth=0.8)
    axes.set_xlabel("mean reward")
    axes.grid(axis="x", alpha=0.3)
    axes.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
    figure.tight_layout()
    return figure_bytes(figure)


def reward_bars(table: PaperTable) -> bytes:
    """Each row's mean reward with its 95% interval, one bar per row (buyer, and condition where there is one)."""
    rows = table.rows[::-1]
    labels = [" / ".join(filter(None, (short_spec(r.summary.buyer), r.condition))) for r in rows]
    means = [r.summary.overall.reward.mean or 0.0 for r in rows]
    low = [m - (r.summary.overall.reward.ci_low or m) for m, r in zip(means, rows, strict=True)]
    high = [(r.summary.overall.reward.ci_high or m) - m for m, r in zip(means, rows, strict=True)]
    figure, axes = plt.subplots(figsize=(7, 0.8 + 0.32 * len(rows)))
    colours = ["#9ca3af" if r.is_oracle else "#2563eb" for r in rows]
    axes.barh(range(len(rows)), means, xerr=[low, high], color=colours, capsize=3)
    axes.set_yticks(range(len(rows)))
    axes.set_yticklabels(labels, fontsize=8)
    axes.axvline(0, color="#374151", linewidth=0.8)
    axes.set_xlabel("mean reward (95% interval)")
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return figure_bytes(figure)
