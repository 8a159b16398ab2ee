"""``counteroffer web``: browsing runs and playing in the browser.

The browser test drives the real app (uvicorn on loopback) in headless Chromium (Debian's ``chromium`` through
Playwright, ``--no-sandbox`` as CI runs as root): it plays a game to a deal as the buyer against a scripted seller,
then checks the stored episode against the page's reward and saves a screenshot of the episode page. The other
tests use FastAPI's test client against the same app.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from counteroffer.catalog import load_scenarios
from counteroffer.game import ActionKind, EpisodeStatus, EventKind, Outcome, Role, buyer_reward
from counteroffer.rollout.store import EpisodeStore
from counteroffer.web.app import create_app

CHROMIUM = os.environ.get("COUNTEROFFER_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(shared_data: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "runs"
    port = free_port()
    config = uvicorn.Config(create_app(root, str(shared_data)), host="127.0.0.1", port=port, log_level="warning")
    app_server = uvicorn.Server(config)
    thread = threading.Thread(target=app_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not app_server.started:
        assert time.monotonic() < deadline, "the web app did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", root
    app_server.should_exit = True
    thread.join(timeout=10)


def test_browser_plays_a_game_to_a_deal_as_the_buyer(server: tuple[str, Path], shared_data: Path,
                                                      tmp_path: Path) -> None:  # fmt: skip
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("no chromium here (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    url, root = server
    scenario = load_scenarios("amazon", "test", data_root=shared_data).scenarios[3]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(f"{url}/play")
        page.select_option("select[name=role]", "buyer")
        page.fill("input[name=opponent]", "scripted:linear")
        page.fill("input[name=index]", "3")
        page.click("#start")
        assert page.inner_text("#private-value") == f"${scenario.budget:,.2f}"
        # Turn 1: an opening offer at 60% of the budget; a typo first, which the form refuses without playing it.
        page.select_option("select[name=action]", "BUY")
        page.fill("input[name=price]", "sixty")
        page.click("#send")
        assert "needs a positive price" in page.inner_text(".notes")
        page.fill("textarea[name=talk]", "Hello! Would you take this?")
        page.fill("textarea[name=thought]", "Start low.")
        page.select_option("select[name=action]", "BUY")
        page.fill("input[name=price]", f"{scenario.budget * 0.6:.2f}")
        page.click("#send")
        # Turn 2: accept the seller's counter-offer as shown on the page.
        seller_action = page.locator("li.seller .action").last.inner_text()
        assert seller_action.startswith("[SELL] $")
        asked = float(seller_action.removeprefix("[SELL] $").replace(",", ""))
        page.select_option("select[name=action]", "DEAL")
        page.fill("input[name=price]", f"{asked:.2f}")
        page.click("#send")
        assert page.inner_text("#result") == "Game over: deal"
        shown_reward = float(page.get_attribute("#reward", "data-reward"))

        with EpisodeStore(root / "play" / "episodes.jsonl") as store:
            [record] = store.records()
        assert record.buyer == "human:browser" and record.seller == "scripted:linear"
        assert record.outcome is Outcome.DEAL and record.price == pytest.approx(asked)
        assert record.scenario.scenario_id == scenario.scenario_id
        expected = buyer_reward(Outcome.DEAL, asked, scenario.budget, scenario.cost)
        assert record.reward == pytest.approx(expected) and shown_reward == pytest.approx(expected, abs=1e-4)
        assert [m.thought for m in record.messages if m.role is Role.BUYER][0] == "Start low."

        page.click("#stored")  # the stored episode's page, as any run's episode
        assert float(page.get_attribute(".reward", "data-reward")) == pytest.approx(expected, abs=1e-4)
        thought = page.locator(".buyer .thought").first
        assert not thought.is_visible()
        page.check("#thoughts")
        assert thought.is_visible() and "Start low." in thought.inner_text()
        screenshot = tmp_path / "episode-page.png"
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000
    artifacts = os.environ.get("COUNTEROFFER_TEST_ARTIFACTS")
    if artifacts:
        shutil.copy(screenshot, Path(artifacts) / screenshot.name)


def test_browser_reads_a_run_summary_pages_it_and_compares_two_runs(
    server: tuple[str, Path], shared_data: Path, tmp_path: Path
) -> None:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("no chromium here (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    url, root = server
    summaries = _two_benches(root, shared_data)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(url)
        page.click("text=boulware")
        assert page.locator("#summary table.paper tbody tr").count() == 3
        assert page.locator("#reward-chart").is_visible()
        assert "page 1 of 3" in page.inner_text("#counts")
        page.click("#next")
        assert "page 2 of 3" in page.inner_text("#counts")
        page.click("a.sort[data-sort=reward]")  # ascending, back to page 1
        page.click("a.sort[data-sort=reward]")  # then descending
        shown = [float(t) for t in page.locator("#episodes td.reward").all_inner_texts()]
        assert shown == sorted(shown, reverse=True) and "page 1 of 3" in page.inner_text("#counts")
        page.goto(url)
        page.check("input[value=boulware]")
        page.check("input[value=linear]")
        page.click("#compare-form button")
        row = page.locator("#comparison tr", has=page.locator('td[title="scripted:oracle"]'))
        first, second = summaries["boulware"]["scripted:oracle"], summaries["linear"]["scripted:oracle"]
        assert float(row.locator("td.difference").inner_text()) == pytest.approx(
            second["mean"] - first["mean"], abs=1e-3
        )
        screenshot = tmp_path / "compare-page.png"
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    artifacts = os.environ.get("COUNTEROFFER_TEST_ARTIFACTS")
    if artifacts:
        shutil.copy(screenshot, Path(artifacts) / screenshot.name)


class Browser:
    """FastAPI's test client with the app's form token added to every form post, as the app's own pages do."""

    def __init__(self, http: TestClient) -> None:
        self.http = http
        self.token = re.search(r'name="token" value="([^"]+)"', http.get("/play").text).group(1)

    def get(self, *args: object, **kwargs: object):  # noqa: ANN201
        return self.http.get(*args, **kwargs)

    def post(self, url: str, data: dict) -> object:
        return self.http.post(url, data={**data, "token": self.token})


@pytest.fixture
def client(shared_data: Path, tmp_path: Path) -> Iterator[tuple[Browser, Path]]:
    root = tmp_path / "runs"
    with TestClient(create_app(root, str(shared_data))) as test_client:
        yield Browser(test_client), root


def test_play_as_the_regulated_seller(client: tuple[Browser, Path], shared_data: Path) -> None:
    http, root = client
    scenario = load_scenarios("amazon", "test", data_root=shared_data).scenarios[0]
    started = http.post("/play", data={"role": "seller", "opponent": "scripted:anchor", "index": 0, "max_turns": 3})
    assert started.status_code == 200 and "You are the seller" in started.text
    assert f"${scenario.cost:,.2f}" in started.text  # the seller sees its cost; the buyer has already opened
    assert 'class="buyer"' in started.text
    game = str(started.url)
    # Selling below cost is not possible for a person either: the regulator turns it into a [REJECT].
    http.post(game, data={"action": "SELL", "price": f"{scenario.cost / 2:.2f}", "talk": "Cheap!"})
    http.post(game, data={"action": "QUIT", "talk": "Bye."})
    with EpisodeStore(root / "play" / "episodes.jsonl") as store:
        [record] = store.records()
    assert record.seller == "human:browser" and record.buyer == "scripted:anchor"
    seller_first = next(m for m in record.messages if m.role is Role.SELLER)
    assert EventKind.REGULATOR_SELL_BELOW_COST in {e.kind for e in seller_first.events}
    assert seller_first.shown_action.kind is ActionKind.REJECT and record.outcome is Outcome.SELLER_QUIT


def test_browse_runs_and_filter_episodes(client: tuple[Browser, Path], shared_data: Path) -> None:
    http, root = client
    from conftest import run_cli

    args = ["--buyer", "scripted:anchor", "--buyer", "scripted:naive", "--seller", "scripted:boulware"]
    assert run_cli("bench", *args, "--limit", "4", "--rollouts", "1", "--data", shared_data,
                   "--out", root / "bench1").returncode == 0  # fmt: skip
    assert 'href="/run?path=bench1"' in http.get("/").text
    everything = http.get("/run", params={"path": "bench1"})
    assert "8 of 8 episodes" in everything.text
    naive = http.get("/run", params={"path": "bench1", "buyer": "scripted:naive"})
    listed = naive.text.split('id="episodes"')[1]
    assert "4 of 8 episodes" in naive.text and "scripted:anchor</code></td>" not in listed
    with EpisodeStore(root / "bench1" / "episodes.jsonl") as store:
        record = sorted(store.records(), key=lambda r: r.key)[0]
    page = http.get("/episode", params={"path": "bench1", "key": record.key})
    assert page.status_code == 200 and "data:image/png;base64," in page.text
    assert record.messages[0].shown_talk.replace("'", "&#39;") in page.text
    assert http.get("/run", params={"path": "../.."}).status_code == 404  # nothing outside the root
    assert http.get("/episode", params={"path": "bench1", "key": "nope"}).status_code == 404
    bad = http.post("/play", data={"role": "buyer", "opponent": "nonsense", "index": 0})
    assert "must look like BACKEND:NAME" in bad.text


def _two_benches(root: Path, shared_data: Path) -> dict[str, dict]:
    """Two benches of the same three buyers against different sellers (enough episodes for three pages)."""
    from conftest import run_cli

    buyers = ["--buyer", "scripted:anchor", "--buyer", "scripted:naive", "--buyer", "scripted:oracle"]
    summaries = {}
    for name, seller in (("boulware", "scripted:boulware"), ("linear", "scripted:linear")):
        result = run_cli("bench", *buyers, "--seller", seller, "--limit", "20", "--rollouts", "2",
                         "--data", shared_data, "--out", root / name)  # fmt: skip
        assert result.returncode == 0, result.stderr
        summary = json.loads((root / name / "summary.json").read_text())
        summaries[name] = {row["buyer"]: row["overall"]["reward"] for row in summary["rows"]}
    return summaries


def test_a_run_page_summarises_then_pages_and_sorts_and_runs_compare(
    client: tuple[Browser, Path], shared_data: Path
) -> None:
    http, root = client
    summaries = _two_benches(root, shared_data)
    page = http.get("/run", params={"path": "boulware"}).text
    summary = page.split('<section id="summary">')[1].split("</section>")[0]
    anchor = summaries["boulware"]["scripted:anchor"]
    assert f"{anchor['mean']:.3f} ±{(anchor['ci_high'] - anchor['ci_low']) / 2:.3f}" in summary
    assert "Share of oracle" in summary and 'id="reward-chart"' in summary
    assert "120 of 120 episodes · page 1 of 3" in page and page.count('<tr><td><a href="/episode') == 50
    last = http.get("/run", params={"path": "boulware", "page": 3}).text
    assert "page 3 of 3" in last and last.count('<tr><td><a href="/episode') == 20
    ranked = http.get("/run", params={"path": "boulware", "sort": "reward", "order": "desc"}).text
    rewards = [float(x) for x in re.findall(r'<td class="reward">([-+][\d.]+)</td>', ranked)]
    assert len(rewards) == 50 and rewards == sorted(rewards, reverse=True)
    assert http.get("/run", params={"path": "boulware", "sort": "nope"}).status_code == 400
    compared = http.get("/compare", params=[("path", "boulware"), ("path", "linear")]).text
    table = compared.split('id="comparison"')[1].split("</table>")[0]
    for buyer in ("scripted:anchor", "scripted:naive", "scripted:oracle"):
        row = table.split(f'title="{buyer}"')[1].split("</tr>")[0]
        difference = float(re.search(r'class="difference">([-+][\d.]+)<', row).group(1))
        first, second = summaries["boulware"][buyer], summaries["linear"][buyer]
        assert difference == pytest.approx(second["mean"] - first["mean"], abs=1e-3)
        disjoint = first["ci_high"] < second["ci_low"] or second["ci_high"] < first["ci_low"]
        assert f'class="overlap">{"no" if disjoint else "yes"}<' in row
    assert compared.count('<table class="paper">') == 2  # both runs' tables side by side
    assert http.get("/compare", params={"path": "boulware"}).status_code == 400


def test_play_against_a_real_llm_seller(client: tuple[Browser, Path], shared_data: Path) -> None:
    """The bundled SmolLM2-135M as the (regulated) seller: whatever it writes, the game stays scored; a second game
    against the same spec reuses the loaded model."""
    http, root = client
    spec = "hf:smollm2-135m?max_new_tokens=40"
    for index in (1, 2):
        started = http.post("/play", data={"role": "buyer", "opponent": spec, "index": index, "max_turns": 2})
        assert started.status_code == 200 and "You are the buyer" in started.text
        game = str(started.url)
        http.post(game, data={"action": "BUY", "price": "10", "talk": "Would you take ten dollars?"})
        finished = http.post(game, data={"action": "QUIT", "talk": "Never mind."})
        if "Game over" not in finished.text:  # the seller ended the game itself at its first reply
            finished = http.get(game)
        assert "Game over" in finished.text
    with EpisodeStore(root / "play" / "episodes.jsonl") as store:
        records = store.records()
    assert len(records) == 2 and {r.seller for r in records} == {spec}
    for record in records:
        seller = [m for m in record.messages if m.role is Role.SELLER]
        assert seller and all(m.raw.strip() for m in seller)  # the model's (or its fallback's) real text
        assert all(m.shown_action is None or m.shown_action.price is None or m.shown_action.price >
                   record.scenario.cost for m in seller)  # fmt: skip
        assert record.reward in (0.0, -1.0) or record.outcome is Outcome.DEAL


def test_the_oracle_cannot_play_a_person(client: tuple[Browser, Path]) -> None:
    http, _ = client
    refused = http.post("/play", data={"role": "seller", "opponent": "scripted:oracle", "index": 0})
    assert "cannot play against a person" in refused.text


def test_moves_out_of_turn_or_after_the_end_are_refused(client: tuple[Browser, Path]) -> None:
    http, root = client
    started = http.post("/play", data={"role": "buyer", "opponent": "scripted:linear", "index": 0})
    game = str(started.url)
    http.post(game, data={"action": "BUY", "price": "1"})
    over = http.post(game, data={"action": "QUIT", "talk": "<script>alert(1)</script>"})
    assert "Game over" in over.text
    assert "<script>alert(1)</script>" not in over.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in over.text
    again = http.post(game, data={"action": "QUIT"})
    assert again.status_code == 409 and "this game is over" in again.text
    with EpisodeStore(root / "play" / "episodes.jsonl") as store:
        assert len(store.records()) == 1


def test_a_failing_opponent_ends_the_game_as_errored(client: tuple[Browser, Path]) -> None:
    """An endpoint seller that cannot be reached (nothing listens on port 9): its failure is recorded, the game is
    stored as errored, and no further move is played against it."""
    http, root = client
    spec = "openai:m@http://127.0.0.1:9/v1?retries=0&timeout=2"
    started = http.post("/play", data={"role": "buyer", "opponent": spec, "index": 0})
    game = str(started.url)
    failed = http.post(game, data={"action": "BUY", "price": "10"})
    assert "failed" in failed.text and "Game over: errored" in failed.text
    assert http.post(game, data={"action": "QUIT"}).status_code == 409
    with EpisodeStore(root / "play" / "episodes.jsonl") as store:
        [record] = store.records()
    assert record.status is EpisodeStatus.ERRORED and record.error


def test_forms_from_elsewhere_are_refused_and_errors_are_shown_whole(client: tuple[Browser, Path]) -> None:
    http, _ = client
    forged = http.http.post("/play", data={"role": "buyer", "opponent": "scripted:linear", "token": "guess"})
    assert forged.status_code == 403
    bad = http.post("/play", data={"role": "buyer", "opponent": "scripted:anchor?opening=2&x=#1", "index": 0})
    assert "unknown parameter(s) x" in bad.text or "opening" in bad.text
    assert "#1" in bad.text  # the message was URL-encoded, not cut at '&' or '#'


def test_two_open_games_on_one_scenario_get_different_keys(client: tuple[Browser, Path]) -> None:
    http, root = client
    games = [str(http.post("/play", data={"role": "buyer", "opponent": "scripted:linear", "index": 0}).url)
             for _ in range(2)]  # fmt: skip
    for game in games:
        http.post(game, data={"action": "QUIT"})
    with EpisodeStore(root / "play" / "episodes.jsonl") as store:
        assert sorted(r.rollout_index for r in store.records()) == [0, 1]


def test_an_opponent_that_fails_ends_the_game_as_errored(shared_data: Path, tmp_path: Path) -> None:
    """An agent failure (an injected AgentFailure, see conftest.FailsOnce) does not leave the game stuck on the
    agent's turn: the game is stored as errored, as a bench stores it, and the page says so."""
    from conftest import FailsOnce

    from counteroffer.agents import make_agent
    from counteroffer.web.play import human_move, start_session

    scenario = load_scenarios("amazon", "test", data_root=shared_data, limit=1).scenarios[0]
    opponent = FailsOnce(make_agent("scripted:linear", Role.SELLER), fail_on_call=1)
    with EpisodeStore(tmp_path / "play" / "episodes.jsonl") as store:
        session = start_session(scenario, Role.BUYER, opponent, store, persona="neutral", max_turns=2)
        human_move(session, store, ActionKind.BUY, 10.0, "hi", "")
        assert session.over and session.notes[-1] == (
            f"scripted:linear failed: {FailsOnce.CAUSE}; the game is stored as errored"
        )
        [record] = store.records()
    assert record.status is EpisodeStatus.ERRORED and record.error == f"scripted:linear: {FailsOnce.CAUSE}"
    assert [m.role for m in record.messages] == [Role.BUYER]  # the person's move, nothing of the agent's


def test_an_opponent_with_a_bug_raises_instead_of_storing_an_errored_game(shared_data: Path, tmp_path: Path) -> None:
    """An agent that raises anything but an AgentFailure has a bug: it propagates (a server error), it is not
    hidden in an errored record that a resume would re-run into the same bug."""
    from counteroffer.agents.base import Agent
    from counteroffer.web.play import human_move, start_session

    class Broken(Agent):
        def act(self, requests):  # noqa: ANN001, ANN201
            raise RuntimeError("boom")

    scenario = load_scenarios("amazon", "test", data_root=shared_data, limit=1).scenarios[0]
    with EpisodeStore(tmp_path / "play" / "episodes.jsonl") as store:
        session = start_session(scenario, Role.BUYER, Broken("broken:x", Role.SELLER), store, persona="neutral",
                                max_turns=2)  # fmt: skip
        with pytest.raises(RuntimeError, match="boom"):
            human_move(session, store, ActionKind.BUY, 10.0, "hi", "")
        assert not session.over and session.notes == []
        assert store.records() == []
