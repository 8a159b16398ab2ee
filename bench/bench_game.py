"""Scripted-vs-scripted episodes per second on one core: the game's own cost.

Measures, in one process and one run (so the ratios are robust to a noisy machine):

- ``engine``: the rollout engine playing scripted buyer vs scripted seller on the AmazonHistoryPrice test split,
  records kept in memory (parse, rules, regulator, reward, metrics, record building);
- ``engine+jsonl``: the same, appending every record to an episodes file as ``counteroffer bench`` does;
- ``agents only``: the scripted agents writing the same number of messages with no game (the floor any engine
  pays), so ``engine / agents only`` is the game's overhead factor.

Usage: python bench/bench_game.py [--rollouts 8] [--repeats 5] [--buyer scripted:anchor] [--seller scripted:boulware]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from counteroffer.agents import TurnRequest, make_agent
from counteroffer.catalog import load_scenarios
from counteroffer.game import Role
from counteroffer.game.negotiation import Negotiation
from counteroffer.rollout.runner import plan_jobs, run_episodes
from counteroffer.rollout.store import EpisodeStore


def _timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--buyer", default="scripted:anchor")
    parser.add_argument("--seller", default="scripted:boulware")
    parser.add_argument("--rollouts", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    scenarios = load_scenarios("amazon", "test").scenarios
    seller = make_agent(args.seller, Role.SELLER)
    buyer = make_agent(args.buyer, Role.BUYER)
    buyer.bind_opponent(seller)
    jobs = plan_jobs(scenarios, [args.buyer], args.seller, "neutral", args.rollouts)
    collected: list = []

    def engine() -> None:
        collected.clear()
        run_episodes(jobs, lambda _: (buyer, seller), collected.append, concurrency=256)

    engine()  # warm-up; also gives the message count for the agents-only baseline
    messages_per_episode = statistics.mean(len(r.messages) for r in collected)

    # The same views the engine hands the agents, captured once so the baseline times only the agents.
    captured: list[tuple[Role, TurnRequest]] = []
    for job in jobs:
        game = Negotiation(job.scenario)
        while not game.done:
            request = TurnRequest(game.view(game.next_role), job.seed, job.scenario)
            agent = buyer if game.next_role is Role.BUYER else seller
            captured.append((game.next_role, request))
            game.step(agent.act([request])[0])
    buyer_requests = [r for role, r in captured if role is Role.BUYER]
    seller_requests = [r for role, r in captured if role is Role.SELLER]

    def agents_only() -> None:
        buyer.act(buyer_requests)
        seller.act(seller_requests)

    with tempfile.TemporaryDirectory() as folder:

        def engine_jsonl() -> None:
            path = Path(folder) / "episodes.jsonl"
            path.unlink(missing_ok=True)
            with EpisodeStore(path) as store:
                run_episodes(jobs, lambda _: (buyer, seller), store.append, concurrency=256)

        results = {}
        for name, fn in (("engine", engine), ("engine+jsonl", engine_jsonl), ("agents only", agents_only)):
            times = _timed(fn, args.repeats)
            results[name] = {"best_s": min(times), "median_s": statistics.median(times)}
    episodes = len(jobs)
    for value in results.values():
        value["episodes_per_s"] = episodes / value["best_s"]
    overhead = results["engine"]["best_s"] / results["agents only"]["best_s"]
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "buyer": args.buyer,
        "seller": args.seller,
        "episodes": episodes,
        "messages_per_episode": messages_per_episode,
        "results": results,
        "engine_over_agents_only": overhead,
    }
    print(
        f"{episodes} episodes ({args.buyer} vs {args.seller}, test split × {args.rollouts}), "
        f"{messages_per_episode:.1f} messages each, best of {args.repeats}:"
    )
    for name, value in results.items():
        print(f"  {name:<13} {value['episodes_per_s']:>9,.0f} episodes/s  (median {episodes / value['median_s']:,.0f})")
    print(f"  engine time / agents-only time = {overhead:.2f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
