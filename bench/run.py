"""Run the benchmark: ``python -m bench.run [--servers ...] [--scenarios ...] [--quick]``.

Writes ``bench/results/<date>.json`` (``<date>-quick.json`` for ``--quick``), draws
``docs/bench.png`` (quick runs: ``bench/results/<date>-quick.png``) and prints medians and
ratios to Node.  See bench/README.md for what every figure means.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.driver import PRIORITY, BuildError, build
from bench.scenarios import (
    Budget,
    Criteria,
    QuietMachine,
    SweepPlan,
    idle_memory,
    max_clients,
    persistence,
    relay_sweep,
)
from bench.targets import ROOT, TARGETS, host_info

Result = dict[str, Any]

ALL_SERVERS = (
    "node",
    "salas",
    "salas-asgi",
    "salas-recovery",
    "salas-metrics",
    "salas-chat",
    "salas-chat-redis",
    "salas-chat-w1",
    "salas-chat-w2",
    "salas-chat-w2-hub",
    "pysio-uvicorn",
    "pysio-aiohttp",
)
ALL_SCENARIOS = ("fanout", "chat", "idle", "maxclients", "persistence")
QUICK_SCENARIOS = ("fanout", "chat", "idle", "persistence")
QUICK_SERVERS = ("node", "salas", "salas-chat")


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument(
        "--servers",
        default=None,
        help=f"comma-separated (default: all; with --quick: {','.join(QUICK_SERVERS)})",
    )
    p.add_argument(
        "--scenarios", default=None, help=f"comma-separated of {','.join(ALL_SCENARIOS)}"
    )
    p.add_argument("--quick", action="store_true", help="one short run (about 3 minutes)")
    p.add_argument("--runs", type=int, default=None, help="runs per sweep (default 3, quick 1)")
    p.add_argument("--budget", type=float, default=None, help="wall-clock seconds for everything")
    p.add_argument("--max-clients", type=int, default=100_000)
    p.add_argument("--no-ceiling", action="store_true", help="skip measuring loadgen's ceiling")
    p.add_argument(
        "--nice",
        type=int,
        default=-10,
        help="niceness of the servers and the load generator (default -10 where allowed: they"
        " win the CPU from other work on a shared machine; 0 = leave as is)",
    )
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        help="only summarize (and plot, with --plot) an existing results JSON",
    )
    p.add_argument("--out", type=Path, default=None, help="result JSON path")
    p.add_argument("--plot", type=Path, default=None, help="plot PNG path")
    return p.parse_args(argv)


def _plans(quick: bool, senders: str, start: float, max_rate: float) -> SweepPlan:
    if quick:
        return SweepPlan(
            start=start, factor=2.0, refine=1, max_rate=max_rate, floor=2000,
            warmup=0.5, measure=1.5, senders=senders,
        )  # fmt: skip
    return SweepPlan(
        start=start, factor=1.6, refine=2, max_rate=max_rate, floor=2000,
        warmup=1.0, measure=2.5, senders=senders,
    )  # fmt: skip


SCEN_SHAPE = {"fanout": (1000, 1, "room"), "chat": (1000, 100, "all")}


def _report_only(path: Path, plot_path: Path | None) -> int:
    """Recompute the summary of an existing results file (rewritten in place) and print it."""
    results: Result = json.loads(path.read_text())
    report.summarize(results)
    if plot_path is not None and report.plot(results, plot_path):
        print(f"plot: {plot_path}")
    path.write_text(json.dumps(results, indent=1) + "\n")
    for text in report.summary_lines(results):
        print(text)
    return 0


def _nice_allowed(nice: int) -> bool:
    """Can children lower their niceness to ``nice``? (root, or CAP_SYS_NICE)"""
    if nice >= 0:
        return True
    cur = os.getpriority(os.PRIO_PROCESS, 0)
    pid = os.fork()
    if pid == 0:  # try in a throwaway child
        try:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
            os._exit(0)
        except OSError:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.WEXITSTATUS(status) == 0 and cur >= nice


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    if a.report:
        return _report_only(a.report, a.plot)
    quick = a.quick
    runs = a.runs or (1 if quick else 3)
    total = a.budget or (170.0 if quick else 1620.0)
    budget = Budget(total)
    wanted = a.servers or ",".join(QUICK_SERVERS if quick else ALL_SERVERS)
    servers = [s.strip() for s in wanted.split(",") if s.strip()]
    unknown = [s for s in servers if s not in TARGETS or s == "blast"]
    if unknown:
        print(f"unknown servers: {', '.join(unknown)} (known: {', '.join(ALL_SERVERS)})")
        return 2
    servers.sort(key=lambda s: s != "node")  # Node first: the others are probed at its max rate
    scenarios = (
        [s.strip() for s in a.scenarios.split(",") if s.strip()]
        if a.scenarios
        else list(QUICK_SCENARIOS if quick else ALL_SCENARIOS)
    )
    bad = [s for s in scenarios if s not in ALL_SCENARIOS]
    if bad:
        print(f"unknown scenarios: {', '.join(bad)} (known: {', '.join(ALL_SCENARIOS)})")
        return 2
    PRIORITY["nice"] = a.nice if _nice_allowed(a.nice) else 0
    try:
        build()
    except BuildError as exc:
        print(f"cannot build the load generator: {exc}")
        return 1

    now = dt.datetime.now()
    stamp = now.strftime("%Y-%m-%d_%H%M%S") + ("-quick" if quick else "")
    results_dir = ROOT / "bench" / "results"
    log_dir = results_dir / "tmp" / stamp
    out_path = a.out or results_dir / f"{stamp}.json"
    plot_path = a.plot or (results_dir / f"{stamp}.png" if quick else ROOT / "docs" / "bench.png")
    crit = Criteria()
    results: Result = {
        "date": now.isoformat(timespec="seconds"),
        "host": host_info(),
        "config": {
            "quick": quick,
            "runs": runs,
            "servers": servers,
            "scenarios": scenarios,
            "criteria": {"min_delivered_ratio": crit.min_ratio, "max_p99_ms": crit.max_p99_ms},
            "pinning": {"server_cpu": 0, "loadgen_cpu": 1},
            "nice": PRIORITY["nice"],
            "message_text_bytes": 48,
            "fanout": "1 room x 1000 clients, 1 sender",
            "chat": "100 rooms x 10 clients, every client sends",
            "plans": {
                k: _plans(quick, SCEN_SHAPE[k][2], 0, 0).__dict__ for k in ("fanout", "chat")
            },
        },
        "versions": {},
        "loadgen_ceiling": {},
        "servers": {},
    }
    t_start = time.monotonic()
    quiet = QuietMachine(total_wait=20.0 if quick else 180.0)

    def save() -> None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        results["elapsed_s"] = round(time.monotonic() - t_start, 1)
        out_path.write_text(json.dumps(results, indent=1) + "\n")

    for name in servers:
        t = TARGETS[name]
        results["versions"][name] = t.versions()
        results["servers"][name] = {"label": t.label, "kind": t.kind}
    results["versions"]["loadgen"] = TARGETS["blast"].versions()

    # the sweeps and idle measures stop early enough to leave time for the last scenarios
    reserve = 0.0
    if "maxclients" in scenarios:
        reserve += 75.0 * len(servers)
    if "persistence" in scenarios and any(TARGETS[n].kind == "chat" for n in servers):
        reserve += 50.0
    sweep_budget = Budget(max(total - reserve, 0.5 * total))
    sweeps = [s for s in ("fanout", "chat") if s in scenarios]
    max_rate = {"fanout": 8e6, "chat": 4e6}
    if sweeps and not a.no_ceiling:
        for scen in sweeps:
            clients, rooms, senders = SCEN_SHAPE[scen]
            print(f"== load generator ceiling, {scen} (blast server)", flush=True)
            plan = _plans(quick, senders, 1e6 if quick else 200_000, max_rate[scen])
            plan.factor = 3.0 if quick else 2.0
            bg = quiet.wait()
            res = relay_sweep(
                TARGETS["blast"], clients=clients, rooms=rooms, plan=plan, crit=crit,
                budget=sweep_budget, log_dir=log_dir, quiet=quiet,
            )  # fmt: skip
            res["background_cpu_before"] = bg
            results["loadgen_ceiling"][scen] = res
            save()

    starts: dict[tuple[str, str], float] = {}
    for run in range(1, runs + 1):
        for scen in sweeps:
            clients, rooms, senders = SCEN_SHAPE[scen]
            node_max = 0.0
            for name in servers:
                t = TARGETS[name]
                srv = results["servers"][name]
                prev = srv.get(scen, [])
                if prev and prev[0].get("status") == "unavailable" and run > 1:
                    continue
                if sweep_budget.left() <= 0:
                    srv.setdefault(scen, []).append({"status": "skipped", "error": "time budget"})
                    continue
                start = starts.get((name, scen), 10_000.0)
                probes = (node_max,) if name != "node" and node_max else ()
                print(f"== {t.label}: {scen}, run {run}/{runs}", flush=True)
                plan = _plans(quick, senders, start, max_rate[scen])
                plan.probes = probes
                bg = quiet.wait()
                res = relay_sweep(
                    t, clients=clients, rooms=rooms, plan=plan, crit=crit,
                    budget=sweep_budget, log_dir=log_dir, quiet=quiet,
                )  # fmt: skip
                res["run"] = run
                res["background_cpu_before"] = bg
                srv.setdefault(scen, []).append(res)
                if res.get("status") != "ok":
                    print(f"    {res.get('status')}: {str(res.get('error'))[:400]}", flush=True)
                if res.get("max_sustained"):
                    starts[(name, scen)] = max(10_000.0, res["max_sustained"] / 2.5)
                    if name == "node":
                        node_max = float(res["max_sustained"])
                save()
        if "idle" in scenarios:
            counts = (1000, 5000) if quick else (1000, 10_000)
            for name in servers:
                t = TARGETS[name]
                srv = results["servers"][name]
                prev = srv.get("idle", [])
                if prev and prev[0].get("status") == "unavailable":
                    continue
                if sweep_budget.left() <= 20:
                    continue
                print(f"== {t.label}: idle memory, run {run}/{runs}", flush=True)
                quiet.wait()
                res = idle_memory(t, counts=counts, settle=2.0, log_dir=log_dir)
                res["run"] = run
                srv.setdefault("idle", []).append(res)
                if res.get("status") == "ok":
                    print(f"    {res['marginal_kib_per_client']} KiB per client", flush=True)
                else:
                    print(f"    {res.get('status')}: {str(res.get('error'))[:400]}", flush=True)
                save()

    if "maxclients" in scenarios:
        for name in servers:
            t = TARGETS[name]
            srv = results["servers"][name]
            if any(r.get("status") == "unavailable" for r in srv.get("fanout", [])[:1]):
                srv["maxclients"] = srv["fanout"][0]
                continue
            if budget.left() <= 90:
                srv["maxclients"] = {"status": "skipped", "error": "time budget"}
                continue
            print(f"== {t.label}: most clients (target {a.max_clients:,})", flush=True)
            srv["maxclients"] = max_clients(
                t, target_clients=a.max_clients, batch=max(a.max_clients // 10, 1000),
                hold=28.0, time_cap=150.0, budget=budget, log_dir=log_dir,
            )  # fmt: skip
            save()

    if "persistence" in scenarios:
        for name in servers:
            t = TARGETS[name]
            if t.kind != "chat":
                continue
            srv = results["servers"][name]
            print(f"== {t.label}: persistence", flush=True)
            srv["persistence"] = persistence(
                t, backends=("sqlite", "postgres"), clients=200, rooms=100, window=4,
                per_client_rate=0.0,
                seconds=3.0 if quick else 5.0, log_dir=log_dir,
            )  # fmt: skip
            save()

    results["background_waits"] = quiet.log
    report.summarize(results)
    drawn = report.plot(results, plot_path)
    if drawn:
        results["plot"] = str(
            plot_path.relative_to(ROOT) if plot_path.is_relative_to(ROOT) else plot_path
        )
    save()
    print()
    for text in report.summary_lines(results):
        print(text)
    print(f"\nresults: {out_path}" + (f"\nplot: {plot_path}" if drawn else ""))
    print(f"elapsed: {time.monotonic() - t_start:.0f} s")
    return 0


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds: every started server is stopped on the way out


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(main())
