"""The FastAPI app of ``counteroffer web``: server-rendered pages (jinja2), no JavaScript framework.

- ``/``: every run folder under the root that holds an episodes file (benches, suite cells, played games);
- ``/run?path=RUN``: its episodes, filtered by outcome, buyer, persona and category;
- ``/episode?path=RUN&key=KEY``: the transcript with its offer-trajectory chart; private thoughts can be toggled;
- ``/play``: start a game as the buyer or the seller against any agent spec; ``/play/ID``: play it. Finished
  games go to ``ROOT/play/episodes.jsonl`` and are browsed like any run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import jinja2
from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from counteroffer.agents.base import AgentSpecError
from counteroffer.analysis.tables import COLUMNS, format_cell
from counteroffer.catalog.recipes import load_scenarios
from counteroffer.evaluate.bench import EPISODES_FILE
from counteroffer.game.messages import ActionKind, Role
from counteroffer.game.records import EpisodeRecord
from counteroffer.report.html import data_uri
from counteroffer.report.plots import offer_trajectory_plot, short_spec
from counteroffer.rollout.store import EpisodeStore
from counteroffer.web.play import ACTIONS, PlaySession, human_move, start_session

PLAY_FOLDER = "play"
FILTERS = ("outcome", "buyer", "persona", "category")


def _templates() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [
                jinja2.PackageLoader("counteroffer.web", "templates"),
                jinja2.PackageLoader("counteroffer.report", "templates"),
            ]
        ),
        autoescape=True,
    )
    environment.filters["money"] = lambda value: "–" if value is None else f"${value:,.2f}"
    environment.filters["cell"] = format_cell
    environment.filters["short"] = short_spec
    environment.globals["COLUMNS"] = COLUMNS
    return environment


def _facet(record: EpisodeRecord, name: str) -> str:
    if name == "category":
        return record.scenario.product.category
    if name == "outcome":
        return str(record.outcome or record.status)
    return getattr(record, name)


def create_app(root: Path, data_root: str | None = None) -> FastAPI:
    """The app over the run folders under ``root``; ``data_root`` is the catalogue folder for play."""
    root = root.resolve()
    app = FastAPI(title="counteroffer")
    templates = _templates()
    sessions: dict[str, PlaySession] = {}
    play_store = EpisodeStore(root / PLAY_FOLDER / EPISODES_FILE)
    app.router.on_shutdown.append(play_store.close)

    def page(name: str, **context: object) -> HTMLResponse:
        return HTMLResponse(templates.get_template(name).render(**context))

    def run_folder(path: str) -> Path:
        folder = (root / path).resolve()
        if not folder.is_relative_to(root) or not (folder / EPISODES_FILE).is_file():
            raise HTTPException(404, f"no run {path!r} under {root}")
        return folder

    def records(folder: Path) -> list[EpisodeRecord]:
        if folder == root / PLAY_FOLDER:
            return sorted(play_store.records(), key=lambda r: r.key)
        with EpisodeStore(folder / EPISODES_FILE) as store:
            return sorted(store.records(), key=lambda r: r.key)

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        runs = sorted(
            str(p.parent.relative_to(root))
            for p in root.glob(f"**/{EPISODES_FILE}")
            if not any(part.startswith("checkpoint-") for part in p.parts)
        )
        return page("index.html.j2", root=root, runs=runs)

    @app.get("/run", response_class=HTMLResponse)
    def run(request: Request, path: str) -> HTMLResponse:
        folder = run_folder(path)
        everything = records(folder)
        chosen = {name: request.query_params.get(name, "") for name in FILTERS}
        shown = [r for r in everything if all(not v or _facet(r, n) == v for n, v in chosen.items())]
        options = {name: sorted({_facet(r, name) for r in everything}) for name in FILTERS}
        return page("run.html.j2", path=path, episodes=shown, total=len(everything), options=options, chosen=chosen)

    @app.get("/episode", response_class=HTMLResponse)
    def episode(path: str, key: str) -> HTMLResponse:
        found = [r for r in records(run_folder(path)) if r.key == key]
        if not found:
            raise HTTPException(404, f"no episode {key!r} in {path}")
        return page("episode.html.j2", path=path, record=found[0], chart=data_uri(offer_trajectory_plot(found[0])))

    @app.get("/play", response_class=HTMLResponse)
    def play_form(error: str = "") -> HTMLResponse:
        return page("play_new.html.j2", error=error)

    @app.post("/play")
    def play_start(
        role: Annotated[Role, Form()],
        opponent: Annotated[str, Form()],
        persona: Annotated[str, Form()] = "neutral",
        catalog: Annotated[str, Form()] = "amazon",
        split: Annotated[str, Form()] = "test",
        index: Annotated[int, Form(ge=0)] = 0,
        max_turns: Annotated[int, Form(ge=1, le=50)] = 6,
    ) -> RedirectResponse:
        try:
            scenarios = load_scenarios(catalog, split, data_root=data_root).scenarios  # type: ignore[arg-type]
            if index >= len(scenarios):
                raise ValueError(f"scenario {index} is past the {len(scenarios)} scenarios of {catalog}/{split}")
            session = start_session(scenarios[index], role, opponent, play_store, persona=persona, max_turns=max_turns)
        except (AgentSpecError, ValueError, FileNotFoundError) as exc:
            return RedirectResponse(f"/play?error={exc}", status_code=303)
        sessions[session.session_id] = session
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
    ) -> RedirectResponse:
        session = session_of(session_id)
        if session.game.done:
            raise HTTPException(409, "this game is over")
        # The form catches a person's typo before it reaches the game (where a bad price is a format error and
        # ends the game at -1, as for a model): nothing is played and the page says why.
        try:
            amount = float(price.replace("$", "").replace(",", "")) if price.strip() else None
        except ValueError:
            amount = None
        if action.takes_price and (amount is None or not math.isfinite(amount) or amount <= 0):
            session.notes.append(f"[{action}] needs a positive price; {price!r} is not one. Nothing was played.")
        else:
            human_move(session, play_store, action, amount, talk, thought)
        return RedirectResponse(f"/play/{session_id}", status_code=303)

    return app


def serve_web(root: Path, host: str = "127.0.0.1", port: int = 8050, data_root: str | None = None) -> None:
    import uvicorn

    uvicorn.run(create_app(root, data_root), host=host, port=port, log_level="info")
