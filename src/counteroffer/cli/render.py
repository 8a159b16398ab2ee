"""Rich renderings: an episode's transcript with its offer trajectory, and the bench table in the paper's columns."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from counteroffer.analysis.paired import PairedDifference
from counteroffer.analysis.phases import PERSUASION_LEXICON, PhaseAnalysis
from counteroffer.analysis.tables import COLUMNS, PaperTable, format_cell
from counteroffer.analysis.trajectory import offer_trajectory
from counteroffer.evaluate.seller_play import SellerPlay
from counteroffer.evaluate.summary import RowSummary
from counteroffer.evaluate.talk_swap import TalkSwapResult
from counteroffer.game.messages import Role, format_money_or_dash
from counteroffer.game.records import EpisodeRecord

INTERVAL_CAPTION = "± is half the 95% interval; intervals resample products, not episodes"
ROLE_STYLE = {Role.BUYER: "bold cyan", Role.SELLER: "bold magenta"}
TRAJECTORY_WIDTH = 56


def transcript(record: EpisodeRecord, show_thoughts: bool = False) -> Group:
    scenario = record.scenario
    parts: list[Text | Table] = [
        Text.assemble(
            (scenario.product.title, "bold"),
            f"  [{scenario.product.category}, {scenario.interest}]\n",
            ("asking ", "dim"),
            format_money_or_dash(scenario.asking_price),
            ("   buyer budget ", "dim"),
            (format_money_or_dash(scenario.budget), "cyan"),
            ("   seller cost ", "dim"),
            (format_money_or_dash(scenario.cost), "magenta"),
        )
    ]
    for message in record.messages:
        line = Text()
        line.append(f"T{message.turn} {message.role.value:<6} ", style=ROLE_STYLE[message.role])
        if show_thoughts and message.thought:
            line.append(f"(thinks: {message.thought}) ", style="dim italic")
        if message.format_error is not None:
            line.append(f"format error ({message.format_error.kind}): ", style="bold red")
            line.append(message.raw[:200].replace("\n", " ⏎ "), style="red")
        else:
            line.append(message.shown_talk or "")
            if message.shown_action is not None:
                line.append(f"  {message.shown_action.render()}", style="bold")
        for event in message.events:
            line.append(f"\n      ⚑ {event.kind.value}: {event.detail}", style="yellow")
        parts.append(line)
    parts.append(trajectory(record))
    outcome = record.outcome.value if record.outcome else record.status.value
    parts.append(
        Text.assemble(
            ("outcome ", "dim"),
            (outcome, "bold"),
            ("   price ", "dim"),
            format_money_or_dash(record.price),
            ("   reward ", "dim"),
            (
                f"{record.reward:+.3f}",
                "bold green" if record.reward > 0 else "bold red" if record.reward < 0 else "bold",
            ),
        )
    )
    return Group(*parts)


def trajectory(record: EpisodeRecord) -> Table:
    """Each turn's buyer (B) and seller (S) offers on one price axis, with the budget (|) and cost (:) marked."""
    scenario = record.scenario
    offers: dict[int, dict[Role, float]] = {}
    for offer in offer_trajectory(record):
        offers.setdefault(offer.turn, {})[offer.role] = offer.price
    prices = [p for turn in offers.values() for p in turn.values()]
    low = min([scenario.cost, scenario.budget, *prices]) * 0.95
    high = max([scenario.asking_price, scenario.budget, *prices]) * 1.02

    def column(price: float) -> int:
        return round((price - low) / (high - low) * (TRAJECTORY_WIDTH - 1))

    table = Table(title="offer trajectory", show_header=True, header_style="dim", box=None, pad_edge=False)
    table.add_column("turn", justify="right")
    table.add_column(
        f"{format_money_or_dash(low)} … {format_money_or_dash(high)}   (B buyer, S seller, | budget, : cost)"
    )
    table.add_column("buyer", justify="right", style="cyan")
    table.add_column("seller", justify="right", style="magenta")
    for turn in sorted(offers):
        cells = [" "] * TRAJECTORY_WIDTH
        cells[column(scenario.cost)] = ":"
        cells[column(scenario.budget)] = "|"
        line = Text("".join(cells), style="dim")
        for role, mark in ((Role.SELLER, "S"), (Role.BUYER, "B")):
            if role in offers[turn]:
                at = column(offers[turn][role])
                line = line[:at] + Text(mark, style=ROLE_STYLE[role]) + line[at + 1 :]
        table.add_row(
            str(turn),
            line,
            format_money_or_dash(offers[turn].get(Role.BUYER)),
            format_money_or_dash(offers[turn].get(Role.SELLER)),
        )
    return table


def bench_table(rows: Sequence[RowSummary], title: str) -> Table:
    """The paper's Table 1 columns; ± is half the 95% interval resampling products, and rare events show their
    count with the exact binomial interval (all intervals are in summary.json)."""
    table = Table(
        title=title,
        title_justify="left",
        caption="MI / CI: mutual / conflicting-interest scenarios; " + INTERVAL_CAPTION + "; [ ]: exact binomial",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("buyer", no_wrap=True)
    for name in ("n", "reward", "MI", "CI", "deal", "bargained", "overshoot", "1st offer", "turns"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("format err", justify="right", no_wrap=True)
    table.add_column("misquote", justify="right", no_wrap=True)  # buyer misstated its budget or arithmetic
    for row in rows:
        overall = row.overall
        table.add_row(
            row.buyer,
            f"{row.episodes}" + (f" (+{row.errored} errored)" if row.errored else ""),
            overall.reward.format(),
            row.mutual_interest.reward.format(),
            row.conflicting_interest.reward.format(),
            overall.deal_rate.format(1, percent=True),
            overall.bargained_ratio.format(),
            overall.overshoot_rate.format_events(with_n=False),
            format_cell(overall.first_offer_ratio.mean),
            format_cell(overall.turns.mean, digits=2),
            overall.format_error_rate.format_events(with_n=False),
            overall.misquote_rate.format_events(with_n=False),
        )
    return table


def seller_play_table(rows: Sequence[SellerPlay]) -> Table:
    """How each seller played, per persona: its own messages (re-asked, replaced by the fallback), the
    regulator's corrections, and its concessions (deal rate, seller reward)."""
    table = Table(title="Seller play", title_justify="left", caption=INTERVAL_CAPTION)
    table.add_column("seller", no_wrap=True)
    table.add_column("persona")
    for name in ("episodes", "seller turns", "re-asked", "fallback", "regulator / episode", "deal", "seller reward"):
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(
            row.seller,
            row.persona,
            str(row.episodes),
            str(row.seller_turns),
            format_cell(row.reask_rate, percent=True),
            format_cell(row.fallback_rate, percent=True),
            row.regulator_interventions.format(2),
            row.deal_rate.format(1, percent=True),
            row.seller_reward.format(),
        )
    return table


def talk_swap_table(result: TalkSwapResult) -> Table:
    """The Talk-swap test: the seller's concession and deals under each Talk, and each Talk's paired difference
    from the plain template's."""
    config = result.config
    title = (
        f"Talk swap: {config.seller} ({config.persona}), {result.games} games, {result.hinted} with a hint, "
        f"fallback {format_cell(result.fallback_rate, percent=True)}"
    )
    table = Table(title=title, title_justify="left", caption=INTERVAL_CAPTION)
    for name in ("buyer's Talk", "n", "concession", "deal", "walk away", "minus none (paired)"):
        table.add_column(name, justify="left" if name == "buyer's Talk" else "right")
    for swap in result.swaps:
        versus = swap.versus_none.format() if swap.versus_none is not None else "–"
        deal, quit = swap.deal_rate.format(1, True), swap.quit_rate.format(1, True)
        table.add_row(swap.swap.value, str(swap.n), swap.concession.format(), deal, quit, versus)
    return table


def paired_table(rows: Sequence[PairedDifference]) -> Table:
    """Each buyer's paired reward difference from the reference, per suite table."""
    title = f"Paired differences from {rows[0].reference}" if rows else "Paired differences"
    table = Table(
        title=title,
        title_justify="left",
        caption="pairs: same product, seller, persona and rollout; 95% interval resampling products",
    )
    table.add_column("table")
    table.add_column("buyer", no_wrap=True)
    for name in ("pairs", "reward difference", "95% interval", "better", "worse"):
        table.add_column(name, justify="right")
    for row in rows:
        estimate = row.difference
        interval = "–" if estimate.ci_low is None else f"[{estimate.ci_low:+.3f}, {estimate.ci_high:+.3f}]"
        mean = "–" if estimate.mean is None else f"{estimate.mean:+.3f}"
        table.add_row(row.table, row.buyer, str(estimate.n), mean, interval, str(row.better), str(row.worse))
    return table


def paper_table(table: PaperTable) -> Table:
    """A suite table in the paper's layout; the oracle's row (the upper bound) is dimmed."""
    rich_table = Table(title=table.title, title_justify="left", caption=INTERVAL_CAPTION)
    rich_table.add_column("buyer", no_wrap=True)
    if table.condition_label:
        rich_table.add_column(table.condition_label)
    rich_table.add_column("n", justify="right")
    for column in COLUMNS:
        rich_table.add_column(column.header, justify="right")
    for row in table.rows:
        cells = [row.summary.buyer] + ([row.condition] if table.condition_label else []) + [str(row.summary.episodes)]
        cells += [format_cell(column.value(row), column.percent, events=column.events) for column in COLUMNS]
        rich_table.add_row(*cells, style="dim" if row.is_oracle else None)
    return rich_table


def phase_table(analysis: PhaseAnalysis) -> Group:
    """Each GRPO step's signals and phase (with the signal behind it), then each phase's trend test; markers count
    the sampled episodes using each argument type."""
    settings = analysis.settings
    shuffled = f" (steps shuffled, seed {analysis.shuffled})" if analysis.shuffled is not None else ""
    steps = Table(
        title="training phases" + shuffled,
        title_justify="left",
        caption="raw per-step values; deadlock: every episode (not tested), MI deadlock: mutual-interest episodes",
    )
    for name in ("step", "1st offer", "deal", "bargained", "deadlock", "MI deadlock", "persuasion", "markers", "phase"):
        steps.add_column(name, justify="left" if name in ("markers", "phase") else "right")
    for step in analysis.steps:
        used = ", ".join(f"{kind} {step.markers[kind]}" for kind in PERSUASION_LEXICON if step.markers.get(kind))
        steps.add_row(
            str(step.step),
            format_cell(step.first_offer_ratio),
            format_cell(step.deal_rate, percent=True),
            format_cell(step.bargained_ratio),
            format_cell(step.deadlock_rate, percent=True),
            format_cell(step.mutual_interest_deadlock_rate, percent=True),
            format_cell(step.persuasion_rate, percent=True),
            f"{used or '–'} (of {step.samples})",
            f"{step.phase} ({step.phase_signal})" if step.phase else "–",
        )
    tests = Table(
        title="phase tests",
        title_justify="left",
        caption=f"epidemic change-point statistic against {settings.permutations} permutations of the step order "
        f"(seed {settings.seed}), Holm-adjusted over the tested phases; labelled where adjusted p < {settings.alpha}",
    )
    for name in ("phase", "signal", "source", "segment", "start → segment mean", "rest mean", "p", "adjusted p"):
        right = name in ("rest mean", "p", "adjusted p")
        tests.add_column(name, justify="right" if right else "left", no_wrap=name in ("signal", "segment"))
    tests.add_column("labelled")
    for test in analysis.tests:
        arrow = "↑" if test.direction > 0 else "↓"
        if test.first_step is None:
            segment, means = "–", "–"
        else:
            segment = f"steps {test.first_step}–{test.last_step}"
            means = format_cell(test.segment_mean)
            if test.start_mean is not None:  # naive bargaining is the start itself
                means = f"{format_cell(test.start_mean)} → {means}"
        labelled = "yes" if test.labelled else (test.reason or "no: adjusted p ≥ alpha")
        tests.add_row(
            str(test.phase),
            f"{test.signal} {arrow}",
            test.source or "–",
            segment,
            means,
            format_cell(test.rest_mean),
            format_cell(test.p_value),
            format_cell(test.p_adjusted),
            labelled,
        )
    return Group(steps, tests)


def baselines_table(result, top: int) -> Table:  # noqa: ANN001 - an evaluate.baselines.BaselineResult
    search = result.search
    labels = [choice.label for choice in search.sellers]
    table = Table(
        title=f"scripted buyers on {search.catalog}/{search.split}, {search.max_turns}-turn games, "
        f"{len(result.rows)} ranked",
        caption=INTERVAL_CAPTION,
        title_justify="left",
    )
    table.add_column("buyer", overflow="fold")
    table.add_column("mixture", justify="right")
    for label in labels:
        table.add_column(label, justify="right")
    for row in result.rows[:top]:
        mixture = row.interval.format() if row.interval else f"{row.reward:.3f}"
        table.add_row(row.buyer, mixture, *(f"{row.by_seller[label]:.3f}" for label in labels))
    return table
