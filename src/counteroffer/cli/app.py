"""The ``counteroffer`` command line: thin commands over the library API."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from counteroffer.agents.scripted import Persona
from counteroffer.analysis.paired import PAIRED_FILE, check_reference, paired_differences
from counteroffer.analysis.phases import PhaseSettings, analyse_run
from counteroffer.analysis.tables import suite_records, suite_tables, write_tables
from counteroffer.catalog.download import download_data, resolve_base_url, verify_data
from counteroffer.catalog.locate import resolve_data_root, user_cache_dir
from counteroffer.catalog.recipes import load_scenarios
from counteroffer.cli.render import (
    bench_table,
    paired_table,
    paper_table,
    phase_table,
    seller_play_table,
    talk_swap_table,
    transcript,
)
from counteroffer.config_file import parse_overrides, validate_settings
from counteroffer.defaults import (
    BASELINE_MAX_TURNS,
    BASELINE_SELLERS,
    DEFAULT_BUYER,
    DEFAULT_MAX_TURNS,
    DEFAULT_PERSONA,
    DEFAULT_SELLER,
)
from counteroffer.errors import ConfigError, CounterofferError
from counteroffer.evaluate.bench import BenchConfig, find_episode_files, run_bench
from counteroffer.evaluate.play import play_episode
from counteroffer.evaluate.seller_play import summarize_seller_play
from counteroffer.evaluate.suite import Cell, load_suite, run_suite
from counteroffer.evaluate.talk_swap import RESULT_FILE, TalkSwapConfig, run_talk_swap
from counteroffer.experiment.config import DEFAULT_LEDGER, DEFAULT_RESULTS
from counteroffer.files import write_text_atomic
from counteroffer.rollout.store import read_episodes

app = typer.Typer(
    help="Train and evaluate LLM negotiators with reinforcement learning from verifiable rewards.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Get and check the product catalogues.", no_args_is_help=True)
app.add_typer(data_app, name="data")
# Wide enough for the bench table when output goes to a file or CI log rather than a terminal.
console = Console(width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True)

DataOption = Annotated[
    str | None, typer.Option("--data", help="catalogue folder (default: $COUNTEROFFER_DATA, ../shared/data, cache)")
]
CatalogOption = Annotated[str, typer.Option("--catalog", help="amazon | craigslist")]
SplitOption = Annotated[
    str, typer.Option("--split", help="amazon: train | test | all; craigslist: test | validation | all")
]
PersonaOption = Annotated[str, typer.Option("--persona", help=f"seller persona: {' | '.join(Persona)}")]
SellerOption = Annotated[str, typer.Option("--seller", help="seller agent spec, e.g. scripted:boulware")]
TurnsOption = Annotated[int, typer.Option("--max-turns", min=1, help="turn limit (a turn = buyer message + reply)")]
PROGRESS_COLUMNS = (
    TextColumn("[progress.description]{task.description}"),
    BarColumn(),
    MofNCompleteColumn(),
    TimeElapsedColumn(),
    TimeRemainingColumn(),
)


def _fail(problem: CounterofferError | str) -> None:
    """A user error (the project's own errors, see counteroffer.errors): its message as one line, exit status 2.

    Commands catch only :class:`CounterofferError`; any other exception (a bug, or a library failing deep inside a
    training run) propagates, so its traceback is printed and the exit status is 1.
    """
    # soft_wrap: no hard line breaks inside the message, so a path or FILE:LINE in it stays whole in a log.
    errors.print(f"[bold red]error:[/] {escape(str(problem))}", soft_wrap=True)
    raise typer.Exit(code=2)


def _report_problems(problems: list) -> None:
    if problems:
        errors.print(f"[yellow]skipped {len(problems)} malformed catalogue record(s):[/]")
        for problem in problems[:10]:
            errors.print(f"  {problem}")
        if len(problems) > 10:
            errors.print(f"  … and {len(problems) - 10} more")


@app.command()
def bench(
    out: Annotated[Path, typer.Option("--out", help="run folder: episodes.jsonl and summary.json go here")],
    buyer: Annotated[list[str], typer.Option("--buyer", help="buyer agent spec; repeat for one row each")] = None,  # type: ignore[assignment]
    seller: SellerOption = DEFAULT_SELLER,
    persona: PersonaOption = DEFAULT_PERSONA,
    catalog: CatalogOption = "amazon",
    split: SplitOption = "test",
    rollouts: Annotated[int, typer.Option("--rollouts", min=1, help="episodes per scenario and buyer")] = 4,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="first K scenarios of the split")] = None,
    max_turns: TurnsOption = DEFAULT_MAX_TURNS,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="episodes in flight")] = 256,
    data: DataOption = None,
) -> None:
    """Run every buyer against the regulated seller on a catalogue split; print the paper's Table 1 columns.

    Resumable: re-running with the same --out skips finished episodes and re-runs errored ones.
    """
    try:
        config = validate_settings(
            BenchConfig,
            dict(
                buyers=buyer or [DEFAULT_BUYER],
                seller=seller,
                persona=persona,
                catalog=catalog,
                split=split,
                rollouts=rollouts,
                limit=limit,
                max_turns=max_turns,
                seed=seed,
                concurrency=concurrency,
                data_root=data,
                out=out,
            ),
        )
        with Progress(*PROGRESS_COLUMNS, console=errors, transient=True) as progress:
            task = progress.add_task("episodes", total=None)
            result = run_bench(
                config,
                on_episode=lambda _: progress.advance(task),
                on_start=lambda pending: progress.update(task, total=pending),
            )
    except CounterofferError as exc:
        _fail(exc)
    _report_problems(result.problems)
    products = max((row.overall.reward.clusters or 0 for row in result.rows), default=0)
    title = f"{catalog}/{split} vs {seller} ({persona}): {products} products × {rollouts} rollout(s)"
    console.print(bench_table(result.rows, title))
    console.print(
        f"[dim]{result.played} played, {result.skipped} already finished · "
        f"{result.episodes_path} · {result.summary_path}[/]"
    )


@app.command()
def baselines(
    seller: Annotated[
        list[str], typer.Option("--seller", help="a seller of the mixture: SPEC or 'SPEC (PERSONA)'; repeat")
    ] = None,  # type: ignore[assignment]
    buyer: Annotated[
        list[str] | None,
        typer.Option("--buyer", help="scripted buyer spec to rank; repeat (default: every registered family's grid)"),
    ] = None,
    catalog: CatalogOption = "amazon",
    split: Annotated[
        str, typer.Option("--split", help="where the search runs (train: the test split stays unseen)")
    ] = "train",
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="first K scenarios of the split")] = None,
    max_turns: TurnsOption = BASELINE_MAX_TURNS,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    top: Annotated[int, typer.Option("--top", min=1, help="rows to print")] = 10,
    out: Annotated[Path | None, typer.Option("--out", help="write baselines.json here")] = None,
    data: DataOption = None,
) -> None:
    """Grid-search every registered scripted buyer family (anchor-and-concede, patient, reader, ...) against a
    seller mixture; the winner is the "best scripted buyer" of the tables."""
    from counteroffer.agents.registry import scripted_buyer_grid
    from counteroffer.cli.render import baselines_table
    from counteroffer.evaluate.baselines import BaselineSearch, run_baselines

    try:
        search = validate_settings(
            BaselineSearch,
            dict(
                sellers=seller or list(BASELINE_SELLERS),
                buyers=buyer or scripted_buyer_grid(),
                catalog=catalog,
                split=split,
                limit=limit,
                max_turns=max_turns,
                seed=seed,
                data_root=data,
            ),
        )
        result = run_baselines(search, out)
    except CounterofferError as exc:
        _fail(exc)
    console.print(baselines_table(result, top))
    for name, row in result.family_best().items():
        console.print(f"best {name}: {row.buyer} ({row.interval.format() if row.interval else f'{row.reward:.3f}'})")
    console.print(f"best scripted buyer: [bold]{result.best.buyer}[/]")
    if result.best_talk_blind is not None and result.best_talk_blind is not result.best:
        console.print(f"best talk-blind buyer (its words argue nothing): [bold]{result.best_talk_blind.buyer}[/]")


@app.command()
def play(
    buyer: Annotated[str, typer.Option("--buyer", help="buyer agent spec")] = DEFAULT_BUYER,
    seller: SellerOption = DEFAULT_SELLER,
    persona: PersonaOption = DEFAULT_PERSONA,
    catalog: CatalogOption = "amazon",
    split: SplitOption = "test",
    index: Annotated[int, typer.Option("--index", min=0, help="scenario position in the split")] = 0,
    scenario_id: Annotated[str | None, typer.Option("--scenario", help="scenario id (overrides --index)")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    max_turns: TurnsOption = DEFAULT_MAX_TURNS,
    thoughts: Annotated[bool, typer.Option("--thoughts/--no-thoughts", help="show private thoughts")] = False,
    save: Annotated[Path | None, typer.Option("--save", help="write the episode record (JSON) here")] = None,
    data: DataOption = None,
) -> None:
    """Play one episode and show it as a transcript with its offer trajectory."""
    try:
        scenarios = load_scenarios(catalog, split, data_root=data).scenarios  # type: ignore[arg-type]
        if scenario_id is not None:
            matches = [s for s in scenarios if s.scenario_id == scenario_id]
            if not matches:
                raise ConfigError(f"no scenario {scenario_id!r} in {catalog}/{split}")
            scenario = matches[0]
        elif index < len(scenarios):
            scenario = scenarios[index]
        else:
            raise ConfigError(f"--index {index} is past the {len(scenarios)} scenarios of {catalog}/{split}")
        record = play_episode(scenario, buyer, seller, persona=persona, seed=seed, max_turns=max_turns)
    except CounterofferError as exc:
        _fail(exc)
    console.print(transcript(record, show_thoughts=thoughts))
    if save is not None:
        import msgspec

        save.write_bytes(msgspec.json.format(msgspec.json.encode(record)))


@data_app.command("download")
def data_download(
    dest: Annotated[Path | None, typer.Option("--dest", help="target folder (default: the user cache)")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="mirror (default: $COUNTEROFFER_DATA_URL)")] = None,
    force: Annotated[bool, typer.Option("--force", help="download again even if present and valid")] = False,
) -> None:
    """Download the catalogues from upstream at the pinned commits and verify their sha256 checksums."""
    target = dest or user_cache_dir()
    try:
        report = download_data(
            target,
            base_url=resolve_base_url(base_url),
            force=force,
            progress=lambda file, state: errors.print(f"[dim]{state:>11}[/] {file.local_path}"),
        )
    except CounterofferError as exc:
        _fail(exc)
    console.print(
        f"{len(report.downloaded)} downloaded, {len(report.skipped)} already present and valid, in {report.dest}"
    )


@data_app.command("verify")
def data_verify(data: DataOption = None) -> None:
    """Check a catalogue folder against the recorded checksums."""
    try:
        root = resolve_data_root(data)
    except CounterofferError as exc:
        _fail(exc)
    problems = verify_data(root)
    for problem in problems:
        errors.print(f"[red]✗[/] {problem}")
    if problems:
        raise typer.Exit(code=1)
    console.print(f"[green]✓[/] every file in {root} matches its checksum")


@data_app.command("info")
def data_info(
    catalog: CatalogOption = "amazon",
    split: SplitOption = "all",
    data: DataOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Where the data is, and the scenario counts of a split (mutual / conflicting interest)."""
    try:
        scenario_set = load_scenarios(catalog, split, data_root=data)  # type: ignore[arg-type]
        root = resolve_data_root(data)
    except CounterofferError as exc:
        _fail(exc)
    info = {
        "data": str(root),
        "catalog": catalog,
        "split": split,
        "scenarios": len(scenario_set.scenarios),
        "mutual_interest": scenario_set.mutual_interest_count,
        "conflicting_interest": len(scenario_set.scenarios) - scenario_set.mutual_interest_count,
        "skipped_records": len(scenario_set.problems),
    }
    _report_problems(scenario_set.problems)
    console.print_json(json.dumps(info)) if as_json else console.print(info)


@app.command()
def serve(
    model: Annotated[str, typer.Argument(help="smollm2-135m (bundled), a checkpoint folder or a Hugging Face id")],
    host: Annotated[str, typer.Option("--host", help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8000,
    dtype: Annotated[str, typer.Option("--dtype", help="auto | float32 | bfloat16 | float16")] = "auto",
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1, mps, ...")] = "cpu",
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, help="requests answered per generate call")] = 16,
    name: Annotated[str | None, typer.Option("--name", help="model name clients use (default: MODEL)")] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="require Authorization: Bearer KEY (default: $COUNTEROFFER_API_KEY)")
    ] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="allow a non-loopback --host without a key")] = False,
    max_body_bytes: Annotated[int, typer.Option("--max-body-bytes", min=1, help="larger bodies get 413")] = 1 << 20,
    max_messages: Annotated[int, typer.Option("--max-messages", min=1, help="messages per request")] = 256,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="new tokens a request may ask for")] = 4096,
) -> None:
    """Serve a local model or trained checkpoint as an OpenAI-compatible chat-completions endpoint.

    Any OpenAI client can then use it, e.g. a buyer spec openai:MODEL@http://HOST:PORT/v1. Concurrent requests
    are batched into one generate call. Listening beyond loopback needs --api-key (or --insecure).
    """
    try:
        from counteroffer.serve.guard import API_KEY_ENV, ServerLimits, check_exposure

        api_key = api_key or os.environ.get(API_KEY_ENV) or None
        check_exposure(host, api_key, insecure)  # before torch and the model load: a refusal is immediate
        from counteroffer.serve.app import serve as run_server  # FastAPI and torch load only for this command
    except ImportError as exc:
        _fail(f"serving needs the serve and llm extras: pip install 'counteroffer[llm,serve]' ({exc})")
    except CounterofferError as exc:
        _fail(exc)
    try:
        run_server(
            model,
            host=host,
            port=port,
            dtype=dtype,
            device=device,
            max_batch=max_batch,
            served_name=name,
            api_key=api_key,
            insecure=insecure,
            limits=ServerLimits(max_body_bytes, max_messages, max_tokens),
        )
    except CounterofferError as exc:
        _fail(exc)


train_app = typer.Typer(help="Train the buyer: SFT warm start, then multi-turn GRPO.", no_args_is_help=True)
app.add_typer(train_app, name="train")
ConfigArgument = Annotated[Path, typer.Argument(help="training config (YAML), e.g. configs/cpu-smollm2.yaml")]
ResumeOption = Annotated[bool, typer.Option("--resume", help="continue from the stage's last checkpoint")]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="override a config field, e.g. --set grpo.steps=2 (YAML value); repeatable"),
]


def _train_config(config: Path, overrides: list[str] | None):  # noqa: ANN202
    from counteroffer.train import load_config

    return load_config(config, parse_overrides(overrides))


def _train(stage: str, config: Path, resume: bool, overrides: list[str] | None) -> None:
    try:
        from counteroffer.train import run_grpo, run_sft
    except ImportError as exc:
        _fail(f"training needs the train extra: pip install 'counteroffer[llm,train]' ({exc})")
    try:
        settings = _train_config(config, overrides)
        final = (run_sft if stage == "sft" else run_grpo)(settings, resume=resume)
    except CounterofferError as exc:
        _fail(exc)
    role = settings.role.value
    console.print(f"[green]✓[/] {stage} done: checkpoint {final} (use it as a {role}: --{role} hf:{final})")


@train_app.command("sft")
def train_sft(config: ConfigArgument, resume: ResumeOption = False, overrides: SetOption = None) -> None:
    """Play scripted demonstrations on the train split and fine-tune on the buyer's turns (OUT/sft/final)."""
    _train("sft", config, resume, overrides)


@train_app.command("grpo")
def train_grpo(config: ConfigArgument, resume: ResumeOption = False, overrides: SetOption = None) -> None:
    """Multi-turn GRPO against the configured seller, from the SFT checkpoint by default (OUT/grpo/final)."""
    _train("grpo", config, resume, overrides)


@train_app.command("show-config")
def train_show_config(config: ConfigArgument, overrides: SetOption = None) -> None:
    """Validate a config and print it with every default filled in."""
    try:
        settings = _train_config(config, overrides)
    except CounterofferError as exc:
        _fail(exc)
    console.print_json(settings.model_dump_json())


@app.command()
def evaluate(
    suite: Annotated[Path, typer.Argument(help="suite file (YAML), e.g. configs/suite-cpu.yaml")],
    overrides: SetOption = None,
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            help="a buyer of the suite: also print every other buyer's paired reward difference from it (same "
            "products, sellers, personas and rollouts) and write OUT/paired.json",
        ),
    ] = None,
) -> None:
    """Run an evaluation suite (every buyer against each table's sellers, personas and catalogues) and print and
    write the paper's tables: OUT/tables.md and OUT/tables.json.

    Resumable: a re-run skips finished episodes, so buyers or tables can be added to a suite and run again.
    """
    try:
        config = load_suite(suite, parse_overrides(overrides))
        if against is not None:  # before hours of play, not after
            check_reference(config, against)
        with Progress(*PROGRESS_COLUMNS, console=errors, transient=True) as progress:
            task = progress.add_task("cell", total=None)

            def cell_started(cell: Cell, pending: int) -> None:
                progress.update(task, description=f"{cell.folder.relative_to('cells')}", total=pending, completed=0)

            run_suite(config, on_cell=cell_started, on_episode=lambda _: progress.advance(task))
    except CounterofferError as exc:
        _fail(exc)
    records = suite_records(config)  # read once for the tables and the paired differences
    tables = suite_tables(config, records)
    for table in tables:
        console.print(paper_table(table))
    markdown, data = write_tables(config.out, tables)
    console.print(f"[dim]{markdown} · {data} · episodes under {config.out / 'cells'}[/]")
    if against is not None:
        differences = paired_differences(config, against, records)
        console.print(paired_table(differences))
        path = config.out / PAIRED_FILE
        write_text_atomic(path, json.dumps([row.model_dump(mode="json") for row in differences], indent=2) + "\n")
        console.print(f"[dim]{path}[/]")


@app.command()
def sellers(
    runs: Annotated[list[Path], typer.Argument(help="run folders (a bench, a suite, a training run) or episode files")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """How the sellers of these runs played, per persona: re-asked and fallback turns (how much of the play was
    the model's own), regulator interventions, deal rate and seller reward."""
    files = [file for run in runs for file in ([run] if run.is_file() else find_episode_files(run))]
    if not files:
        _fail(f"no episodes.jsonl under {', '.join(map(str, runs))}")
    try:
        rows = summarize_seller_play(record for file in files for record in read_episodes(file))
    except CounterofferError as exc:  # a corrupt line in an episodes file: which line, and what to do
        _fail(exc)
    if as_json:
        console.print_json(json.dumps([row.model_dump(mode="json") for row in rows]))
        return
    console.print(seller_play_table(rows))


@app.command("talk-swap")
def talk_swap(
    seller: SellerOption,
    out: Annotated[Path, typer.Option("--out", help="folder for talk_swap.json")],
    persona: PersonaOption = DEFAULT_PERSONA,
    catalog: CatalogOption = "amazon",
    split: SplitOption = "test",
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="first K products of the split")] = None,
    rollouts: Annotated[int, typer.Option("--rollouts", min=1, help="games per product")] = 1,
    max_turns: TurnsOption = DEFAULT_MAX_TURNS,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    data: DataOption = None,
) -> None:
    """Does the seller's price answer the buyer's words? The buyer's second offer is held fixed and its Talk
    swapped (the argument the seller hinted at, another true one, none, a false claim); the seller's concession
    and deals under each, and each one's paired difference from none (intervals resample products)."""
    try:
        config = validate_settings(
            TalkSwapConfig,
            dict(seller=seller, persona=persona, catalog=catalog, split=split, limit=limit, rollouts=rollouts,
                 max_turns=max_turns, seed=seed, data_root=data),
        )  # fmt: skip
        result = run_talk_swap(config, out)
    except CounterofferError as exc:
        _fail(exc)
    console.print(talk_swap_table(result))
    console.print(f"[dim]{out / RESULT_FILE}[/]")


@app.command()
def phases(
    run: Annotated[Path, typer.Argument(help="training run folder (OUT of a train config), its grpo/ or a log file")],
    alpha: Annotated[
        float, typer.Option("--alpha", min=0, max=1, help="label a phase whose Holm-adjusted p is below this")
    ] = 0.05,
    permutations: Annotated[int, typer.Option("--permutations", min=1, help="random step orders per test")] = 1000,
    min_steps: Annotated[
        int, typer.Option("--min-steps", min=1, help="shortest segment, rest, and start before a segment")
    ] = 3,
    seed: Annotated[int, typer.Option("--seed", help="seeds the permutations")] = 0,
    shuffle: Annotated[
        int | None,
        typer.Option(
            "--shuffle",
            metavar="SEED",
            help="analyse a copy of the log with its steps' signals permuted by SEED (the null check)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Label GRPO steps with the phases (naive bargaining, aggressive anchoring, deadlock, persuasion) whose
    signal's trend is significant against a permutation of the step order; the method is described in
    counteroffer.analysis.phases."""
    settings = PhaseSettings(alpha=alpha, permutations=permutations, min_steps=min_steps, seed=seed)
    try:
        analysis = analyse_run(run, settings, shuffle=shuffle)
    except CounterofferError as exc:
        _fail(exc)
    if as_json:
        console.print_json(json.dumps(analysis.as_dict()))
        return
    if shuffle is not None:
        console.print(f"[yellow]null check:[/] the steps' signals shuffled with seed {shuffle}; no phase is expected")
    console.print(phase_table(analysis))
    for band in analysis.bands:
        console.print(f"steps {band.first_step}–{band.last_step}: [bold]{band.phase}[/]")
    if not analysis.bands:
        console.print("no phase: no signal's trend is significant")


@app.command()
def report(
    runs: Annotated[list[Path], typer.Argument(help="run folders: training runs, evaluation suites or benches")],
    out: Annotated[Path, typer.Option("--out", help="HTML file, or a folder that gets index.html")] = Path(
        "report.html"
    ),
    title: Annotated[str, typer.Option("--title")] = "counteroffer report",
    samples: Annotated[int, typer.Option("--samples", min=0, help="sample episodes per buyer")] = 2,
) -> None:
    """Write one self-contained HTML report: training curves with phase bands, the tables, per-category results,
    offer trajectories and transcripts of sample episodes."""
    from counteroffer.report.html import write_report  # matplotlib loads only for this command

    try:
        target = write_report(runs, out, title=title, samples_per_buyer=samples)
    except CounterofferError as exc:
        _fail(exc)
    console.print(f"[green]✓[/] {target} ({target.stat().st_size / 1024:.0f} kB)")


@app.command()
def experiment(
    config: ConfigArgument,
    results: Annotated[
        Path, typer.Option("--results", help="results folder: summary.json, summary.md and the files below")
    ] = DEFAULT_RESULTS,
    rollouts: Annotated[int, typer.Option("--rollouts", min=1, help="episodes per test product and buyer")] = 2,
    later_rollouts: Annotated[
        int | None,
        typer.Option(
            "--later-rollouts",
            min=1,
            help="fewer rollouts for the unseen opponents and the untrained model (a shorter run; rows say their n)",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="only the first K products in the baseline search and on test (smoke run)"),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="FIELD=VALUE",
            help="override a training config field as train --set does (a variant of the recipe: give it its own "
            "out and --results); repeatable",
        ),
    ] = None,
    summarize_only: Annotated[
        bool,
        typer.Option(
            "--summarize-only",
            help="write the results from the episodes played so far (needs both "
            "trained checkpoints); play and train nothing",
        ),
    ] = False,  # fmt: skip
    report_dir: Annotated[
        Path | None, typer.Option("--report", metavar="DIR", help="also write the run's HTML report here")
    ] = None,
    ledger: Annotated[
        Path,
        typer.Option(
            "--ledger",
            help="ledger of the configurations scored on the test products (JSONL, relative to the current "
            "folder); this run adds itself the first time it is summarised",
        ),
    ] = DEFAULT_LEDGER,
) -> None:
    """Run a training config's experiment: baselines, SFT, GRPO, the test evaluations, the summary.

    Stages, in order (wall seconds of each in RESULTS/timings.json):
      baselines          the scripted buyer families' grid on the train split
                         against the training mixture: the best scripted buyer
      sft                SFT on the demonstrations (OUT/sft/final)
      evaluate_sft       the SFT checkpoint against the training sellers
      grpo               GRPO against the training mixture (OUT/grpo/final)
      evaluate_scripted  on the test products (a suite in OUT/eval): scripted rows
      evaluate_training  the trained buyers: training mixture, each training seller
      evaluate_unseen    a Boulware seller, the unyielding persona, CraigslistBargain
      evaluate_base      the untrained model (this and the last: --later-rollouts)

    Writes into RESULTS: summary.json (a row per buyer and opponent, SFT + GRPO's
    paired differences from the best scripted buyer and from SFT, test_evaluations:
    this configuration's number in the ledger, machine, command, timings),
    summary.md (its table), paired.json, baselines.json, tables.md, phases.json,
    curves.png, timings.json and episodes.jsonl.gz (every evaluation episode the
    tables rest on, with its transcript). Checkpoints and working episodes: OUT.

    Resumable: a re-run keeps the baseline search, skips a stage whose final
    checkpoint exists (else continues from its last checkpoint) and skips finished
    evaluation episodes. --summarize-only writes the results of a run cut short
    (every row says its n).
    """
    try:
        from counteroffer.experiment import ExperimentConfig, run_experiment
        from counteroffer.experiment.summary import mixture_lines
    except ImportError as exc:
        _fail(f"the experiment needs the train extra: pip install 'counteroffer[llm,train]' ({exc})")
    try:
        settings = ExperimentConfig.load(
            config,
            overrides,
            results=results,
            rollouts=rollouts,
            later_rollouts=later_rollouts,
            limit=limit,
            summarize_only=summarize_only,
            report=report_dir,
            ledger=ledger,
        )
        summary = run_experiment(settings, log=lambda line: console.print(line, soft_wrap=True))
    except CounterofferError as exc:
        _fail(exc)
    for line in mixture_lines(summary):
        console.print(line, soft_wrap=True, highlight=False)
    console.print(f"[green]✓[/] results in {results}" + (f", report in {report_dir}" if report_dir else ""))


@app.command()
def web(
    root: Annotated[
        Path, typer.Option("--root", help="folder whose runs are browsed; played games go to ROOT/play")
    ] = Path("runs"),
    host: Annotated[str, typer.Option("--host", help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8050,
    data: DataOption = None,
) -> None:
    """Browse runs and episodes in the browser, and play a negotiation as the buyer or the seller."""
    try:
        from counteroffer.web.app import serve_web  # FastAPI loads only for this command
    except ImportError as exc:
        _fail(f"the web app needs the serve extra: pip install 'counteroffer[serve]' ({exc})")
    root.mkdir(parents=True, exist_ok=True)
    serve_web(root, host=host, port=port, data_root=data)


def main() -> None:
    app()
