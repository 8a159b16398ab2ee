"""The FastAPI app of ``counteroffer web``: server-rendered pages (jinja2), no JavaScript framework.

- ``/``: every run folder under the root that holds an episodes file (benches, suite cells, played games);
- ``/run?path=RUN``: its summary first (the paper's columns per buyer with 95% intervals, the oracle's share where
  the run has the oracle, and a reward chart), then its episodes, filtered by outcome, buyer, persona and
  category, sorted by any column and paged;
- ``/compare?path=A&path=B...``: two or more runs' tables side by side, each row's difference from the first run
  and whether the intervals overlap;
- ``/episode?path=RUN&key=KEY``: the transcript with its offer-trajectory chart; private thoughts can be toggled;
- ``/play``: start a game as the buyer or the seller against any agent spec; ``/play/ID``: play it. Finished
  games go to ``ROOT/play/episodes.jsonl`` and are browsed like any run.
"""

from __future__ import annotations

import math
import secrets
import threading
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, get_args
from urllib.parse import urlencode

from fastapi import FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from counteroffer.agents.base import Agent, AgentSpecError
from counteroffer.analysis.compare import compare_tables
from counteroffer.analysis.tables import PaperTable
from counteroffer.catalog.recipes import CatalogName, load_scenarios
from counteroffer.defaults import DEFAULT_MAX_TURNS, DEFAULT_PERSONA
from counteroffer.errors import ConfigError
from counteroffer.evaluate.bench import EPISODES_FILE, find_episode_files
from counteroffer.game.messages import ActionKind, Role
from counteroffer.game.records import EpisodeRecord
from counteroffer.prompts.personas import Persona
from counteroffer.report.html import data_uri, episodes_table, template_environment
from counteroffer.report.plots import offer_trajectory_plot, reward_bars
from counteroffer.rollout.store import EpisodeStore, read_episodes
from counteroffer.web.play import ACTIONS, GameStateError, PlaySession, human_move, make_opponent, start_session

PLAY_FOLDER = "play"
FILTERS = ("outcome", "buyer", "persona", "category")
PAGE_SIZE = 50
SORTS: dict[str, Callable[[EpisodeRecord], object]] = {
    "key": lambda r: r.key,
    "reward": lambda r: r.reward,
    "price": lambda r: (r.price is None, r.price or 0.0),
    "turns": lambda r: r.metrics.turns if r.metrics else 0,
    "buyer": lambda r: (r.buyer, r.key),
    "outcome": lambda r: (str(r.outcome or r.status), r.key),
    "category": lambda r: (r.scenario.product.category, r.key),
}


def _facet(record: EpisodeRecord, name: str) -> str:
    if name == "category":
        return record.scenario.product.category
    if name == "outcome":
        return str(record.outcome or record.status)
    return getattr(record, name)


def create_app(root: Path, data_root: str | None = None) -> FastAPI:
    """The app over the run folders under ``root``; ``data_root`` is the catalogue folder for play."""
    root = root.resolve()
    templates = template_environment("counteroffer.web")
    sessions: dict[str, PlaySession] = {}
    opponents: dict[tuple[str, Role, str], Agent] = {}
    # One game move at a time: agents (a local model above all) are not made for concurrent calls, and a person
    # waits for the reply anyway.
    moves = threading.Lock()
    play_store = EpisodeStore(root / PLAY_FOLDER / EPISODES_FILE)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        play_store.close()
        for agent in opponents.values():
            agent.close()

    app = FastAPI(title="counteroffer", lifespan=lifespan)

    # Every form carries this token: a page on another site can make the browser POST to localhost, and a game
    # start makes the server load models and call endpoints, so only this app's own pages may post.
    form_token = secrets.token_urlsafe(16)

    def check_token(token: str) -> None:
        if not secrets.compare_digest(token, form_token):
            raise HTTPException(403, "this form did not come from this app (reload the page)")

    def page(name: str, **context: object) -> HTMLResponse:
        return HTMLResponse(templates.get_template(name).render(token=form_token, **context))

    def run_folder(path: str) -> Path:
        folder = (root / path).resolve()
        if not folder.is_relative_to(root) or not (folder / EPISODES_FILE).is_file():
            raise HTTPException(404, f"no run {path!r} under {root}")
        return folder

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        runs = [str(path.parent.relative_to(root)) for path in find_episode_files(root)]
        return page("index.html.j2", root=root, runs=runs)

    def summary_of(path: str) -> tuple[list[EpisodeRecord], PaperTable]:
        everything = sorted(read_episodes(run_folder(path) / EPISODES_FILE), key=lambda r: r.key)
        return everything, episodes_table(path, everything)

    @app.get("/run", response_class=HTMLResponse)
    def run(
        request: Request, path: str, sort: str = "key", order: str = "asc", page_number: int = Query(1, alias="page")
    ) -> HTMLResponse:
        if sort not in SORTS or order not in ("asc", "desc"):
            raise HTTPException(400, f"sort must be one of {', '.join(SORTS)} and order asc or desc")
        everything, table = summary_of(path)
        chosen = {name: request.query_params.get(name, "") for name in FILTERS}
        shown = [r for r in everything if all(not v or _facet(r, n) == v for n, v in chosen.items())]
        shown.sort(key=SORTS[sort], reverse=order == "desc")
        pages = max(1, math.ceil(len(shown) / PAGE_SIZE))
        page_number = min(max(1, page_number), pages)
        options = {name: sorted({_facet(r, name) for r in everything}) for name in FILTERS}
        query = {"path": path, **{n: v for n, v in chosen.items() if v}}
        return page(
            "run.html.j2",
            path=path,
            table=table,
            chart=data_uri(reward_bars(table)) if table.rows else None,
            episodes=shown[(page_number - 1) * PAGE_SIZE : page_number * PAGE_SIZE],
            matching=len(shown),
            total=len(everything),
            options=options,
            chosen=chosen,
            sort=sort,
            order=order,
            page_number=page_number,
            pages=pages,
            sorts=list(SORTS),
            link=lambda **changes: "/run?" + urlencode({**query, "sort": sort, "order": order, **changes}),
        )

    @app.get("/compare", response_class=HTMLResponse)
    def compare(path: Annotated[list[str], Query()]) -> HTMLResponse:
        if len(path) < 2:
            raise HTTPException(400, "compare needs two or more runs: /compare?path=A&path=B")
        tables = [summary_of(p)[1] for p in path]
        return page("compare.html.j2", paths=path, tables=tables, rows=compare_tables(tables))

    @app.get("/episode", response_class=HTMLResponse)
    def episode(path: str, key: str) -> HTMLResponse:
        record = next((r for r in read_episodes(run_folder(path) / EPISODES_FILE) if r.key == key), None)
        if record is None:
            raise HTTPException(404, f"no episode {key!r} in {path}")
        return page("episode.html.j2", path=path, record=record, chart=data_uri(offer_trajectory_plot(record)))

    @app.get("/play", response_class=HTMLResponse)
    def play_form(error: str = "") -> HTMLResponse:
        return page(
            "play_new.html.j2", error=error, personas=[p.value for p in Persona], catalogs=get_args(CatalogName)
        )

    @app.post("/play")
    def play_start(
        role: Annotated[Role, Form()],
        opponent: Annotated[str, Form()],
        persona: Annotated[str, Form()] = DEFAULT_PERSONA,
        catalog: Annotated[str, Form()] = "amazon",
        split: Annotated[str, Form()] = "test",
        index: Annotated[int, Form(ge=0)] = 0,
        max_turns: Annotated[int, Form(ge=1, le=50)] = DEFAULT_MAX_TURNS,
        token: Annotated[str, Form()] = "",
    ) -> RedirectResponse:
        check_token(token)
        try:
            scenarios = load_scenarios(catalog, split, data_root=data_root).scenarios  # type: ignore[arg-type]
            if index >= len(scenarios):
                raise ConfigError(f"scenario {index} is past the {len(scenarios)} scenarios of {catalog}/{split}")
            with moves:
                key = (opponent, role, persona)
                if key not in opponents:
                    opponents[key] = make_opponent(opponent, role, persona)
                in_progress = [s.job.key for s in sessions.values() if not s.over]
                session = start_session(
                    scenarios[index],
                    role,
                    opponents[key],
                    play_store,
                    persona=persona,
                    max_turns=max_turns,
                    in_progress=in_progress,
                )
                sessions[session.session_id] = session
        except (AgentSpecError, ValueError, FileNotFoundError) as exc:
            return RedirectResponse(f"/play?{urlencode({'error': str(exc)})}", status_code=303)
        return RedirectResponse(f"/play/{session.session_id}", status_code=303)

    def session_of(session_id: str) -> PlaySession:
        if session_id not in sessions:
            raise HTTPException(404, "no such game (games in progress are lost when the server restarts)")
        return sessions[session_id]

    @app.get("/play/{session_id}", response_class=HTMLResponse)
    def play_page(session_id: str) -> HTMLResponse:
        session = session_of(session_id)
        view = session.game.view(session.human)
        chart = data_uri(offer_trajectory_plot(session.record)) if session.record else None
        return page("play.html.j2", session=session, view=view, actions=ACTIONS[session.human], chart=chart,
                    play_path=PLAY_FOLDER)  # fmt: skip

    @app.post("/play/{session_id}")
    def play_move(
        session_id: str,
        action: Annotated[ActionKind, Form()],
        price: Annotated[str, Form()] = "",
        talk: Annotated[str, Form()] = "",
        thought: Annotated[str, Form()] = "",
        token: Annotated[str, Form()] = "",
    ) -> RedirectResponse:
        check_token(token)
        session = session_of(session_id)
        # The form catches a person's typo before it reaches the game (where a bad price is a format error and
        # ends the game at -1, as for a model): nothing is played and the page says why.
        try:
            amount = float(price.replace("$", "").replace(",", "")) if price.strip() else None
        except ValueError:
            amount = None
        if action.takes_price and (amount is None or not math.isfinite(amount) or amount <= 0):
            session.notes.append(f"[{action}] needs a positive price; {price!r} is not one. Nothing was played.")
        else:
            with moves:
                try:
                    human_move(session, play_store, action, amount, talk, thought)
                except GameStateError as exc:
                    raise HTTPException(409, str(exc)) from None
        return RedirectResponse(f"/play/{session_id}", status_code=303)

    return app


def serve_web(root: Path, host: str = "127.0.0.1", port: int = 8050, data_root: str | None = None) -> None:
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        warnings.warn(
            f"serving on {host}: anyone who can reach it can browse the runs and start games that load any model "
            "spec they name",
            stacklevel=2,
        )
    uvicorn.run(create_app(root, data_root), host=host, port=port, log_level="info")
