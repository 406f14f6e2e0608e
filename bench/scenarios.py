"""The benchmark scenarios: fan-out and chat-like sweeps, idle memory, most clients, persistence.

Each function starts its own fresh server (pinned to CPU 0) and its own load generator (CPU 1),
returns a JSON-able dict, and never raises for a server that fails: the failure is reported in
the result (``"status": "unavailable"`` or ``"error"``).
"""

from __future__ import annotations

import math
import os
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.driver import LoadGen, LoadGenError
from bench.targets import Running, Target, Unavailable, start

__all__ = [
    "Budget",
    "Criteria",
    "QuietMachine",
    "SweepPlan",
    "idle_memory",
    "max_clients",
    "persistence",
    "relay_sweep",
    "step_ok",
]

Result = dict[str, Any]


@dataclass(frozen=True)
class Criteria:
    """What a step must show to count as sustained."""

    min_ratio: float = 0.99
    max_p99_ms: float = 50.0


@dataclass
class SweepPlan:
    """How an offered-rate sweep proceeds."""

    start: float  # first offered rate, deliveries/s
    factor: float  # geometric step while steps pass
    refine: int  # bisection steps between the last pass and the first failure
    max_rate: float  # never offer more than this
    floor: float  # never offer less than this when stepping down
    warmup: float
    measure: float
    senders: str  # "room" (one sender per room) or "all" (every client sends)
    probes: tuple[float, ...] = ()  # extra rates measured after the sweep (e.g. Node's max)


class Budget:
    """A wall-clock deadline shared by the whole run."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()


def _busy_s() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat)."""
    f = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    v = [int(x) for x in f[:8]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")


class QuietMachine:
    """Before a measurement, wait (boundedly) until other processes leave the CPUs alone.

    The figures are only as good as the machine is idle: on a shared machine, other work on
    the two cores competes with the server and the load generator. Each ``wait`` samples the
    busy CPU for 1 s at a time until it is below ``threshold`` cores, or its share of
    ``total_wait`` seconds is spent; it returns the last background reading (cores).
    """

    def __init__(self, total_wait: float, threshold: float = 0.25, per_call: float = 45.0):
        self.left = total_wait
        self.threshold = threshold
        self.per_call = per_call
        self.log: list[dict[str, float]] = []

    def wait(self) -> float:
        t0 = time.monotonic()
        while True:
            b0, w0 = _busy_s(), time.monotonic()
            time.sleep(1.0)
            busy = (_busy_s() - b0) / (time.monotonic() - w0)
            waited = time.monotonic() - t0
            if busy < self.threshold or waited >= min(self.per_call, self.left):
                break
        self.left = max(0.0, self.left - waited)
        self.log.append({"background_cores": round(busy, 2), "waited_s": round(waited, 1)})
        if busy >= self.threshold:
            _log(f"    (machine busy: {busy:.2f} cores used by other processes)")
        return round(busy, 2)


def step_ok(step: Result, crit: Criteria) -> bool:
    """Did this step deliver ≥ 99% with p99 ≤ 50 ms and no connection lost?"""
    return (
        "error" not in step
        and step.get("delivered_ratio", 0.0) >= crit.min_ratio
        and 0 <= step.get("p99_ms", -1) <= crit.max_p99_ms
        and step.get("step_closed", 0) == 0
    )


def _brief(step: Result) -> str:
    return (
        f"offered {step.get('offered', 0):>10,.0f}/s"
        f"  got {step.get('deliveries_per_s', 0):>10,.0f}/s"
        f"  {100 * step.get('delivered_ratio', 0):6.2f}%  p50 {step.get('p50_ms', -1):8.2f}"
        f"  p90 {step.get('p90_ms', -1):8.2f}  p99 {step.get('p99_ms', -1):8.2f}"
        f"  max {step.get('max_ms', -1):8.2f} ms  cpu srv "
        f"{step.get('server_tree_cpu_util', step.get('server_cpu_util', -1)):.2f}"
        f" lg {step.get('loadgen_cpu_util', -1):.2f} other {step.get('other_cpu_util', -1):.2f}"
    )


def _log(msg: str) -> None:
    print(msg, flush=True)


@contextmanager
def _server(
    target: Target, log_dir: Path, env_extra: dict[str, str] | None = None
) -> Iterator[Running]:
    srv = start(target, log_dir, env_extra=env_extra)
    try:
        yield srv
    finally:
        srv.stop()


def _step(lg: LoadGen, rate: float, plan: SweepPlan) -> Result:
    timeout = plan.warmup + plan.measure + 30
    res = lg.command(f"step {rate:.1f} {plan.warmup} {plan.measure} {plan.senders}", timeout)
    return res


NOISY_CORES = 0.3  # a failed step during which other processes used more is measured again


def _sweep(
    lg: LoadGen,
    srv: Running,
    plan: SweepPlan,
    crit: Criteria,
    budget: Budget,
    quiet: QuietMachine | None,
) -> Result:
    steps: list[Result] = []
    noisy: list[Result] = []
    best: Result | None = None
    fail_rate: float | None = None
    rate = plan.start

    def measured(r: float) -> Result:
        # The load generator reads the CPU of the server's own pid; a server of several
        # processes (--workers) is measured here too, over its whole process tree.
        cpu0, wall0 = srv.tree_cpu_s(), time.monotonic()
        s = _step(lg, r, plan)
        s["server_tree_cpu_util"] = round(
            (srv.tree_cpu_s() - cpu0) / max(time.monotonic() - wall0, 1e-3), 3
        )
        return s

    def run(r: float) -> Result:
        s = measured(r)
        s["ok"] = step_ok(s, crit)
        if (
            not s["ok"]
            and quiet is not None
            and s.get("other_cpu_util", 0) > NOISY_CORES
            and len(noisy) < 3
            and budget.left() > 0
        ):
            noisy.append(s)
            _log(f"    noisy {_brief(s)}: again, once the machine is quieter")
            lg.command("quiet 20", 40)
            quiet.wait()
            s = measured(r)
            s["ok"] = step_ok(s, crit)
            s["repeated_after_noise"] = True
        steps.append(s)
        _log(f"    {'pass' if s['ok'] else 'FAIL'}  {_brief(s)}")
        if not s["ok"]:
            lg.command("quiet 30", 50)  # let a backlog drain before the next step
        return s

    probes: dict[str, Result] = {}

    def top_offered() -> float:
        return max(float(x.get("offered", 0)) for x in steps)

    for _round in range(3):
        # upward (or downward, if the first step fails and nothing passed yet)
        going_down = False
        fail_rate = None
        while budget.left() > 0 and srv.alive():
            s = run(rate)
            if s["ok"]:
                if best is None or float(s["offered"]) > float(best["offered"]):
                    best = s
                if going_down or rate >= plan.max_rate:
                    break
                rate = min(rate * plan.factor, plan.max_rate)
            else:
                fail_rate = rate if fail_rate is None else min(fail_rate, rate)
                if best is not None:
                    break
                going_down = True
                rate = rate / plan.factor
                if rate < plan.floor:
                    break
        # refine between the best pass and the first failure above it
        if best is not None and fail_rate is not None and fail_rate > float(best["offered"]):
            lo, hi = float(best["offered"]), fail_rate
            for _ in range(plan.refine):
                if budget.left() <= 0 or not srv.alive() or hi / lo < 1.04:
                    break
                mid = math.sqrt(lo * hi)
                s = run(mid)
                if s["ok"]:
                    lo, best = mid, s
                else:
                    hi = mid
        if _round == 0:  # measured before any overload, which can leave a backlog behind
            for p in plan.probes:
                if p > 0 and srv.alive() and budget.left() > 0:
                    _log(f"    probe at {p:,.0f}/s:")
                    probes[f"{p:.0f}"] = run(p)
        # an overload point, so that the peak delivered rate is on the record; if it passes
        # (the failures below it were noise), the sweep goes on upward from there
        if not (
            srv.alive()
            and budget.left() > 0
            and steps
            and all(x.get("deliveries_per_s", 0) >= 0.9 * x.get("offered", 0) for x in steps)
            and top_offered() < plan.max_rate
        ):
            break
        s = run(min(plan.max_rate, 1.5 * top_offered()))
        if not s["ok"]:
            break
        best = s
        rate = min(float(s["offered"]) * plan.factor, plan.max_rate)
    peak = max((float(s.get("deliveries_per_s", 0)) for s in steps), default=0.0)
    if srv.alive() and not steps:
        return {"status": "skipped", "error": "time budget"}
    status = "ok" if srv.alive() else "error"
    if status == "ok" and all(x["ok"] for x in steps) and top_offered() < plan.max_rate:
        status = "truncated"  # the budget ran out before the sweep found the limit
    return {
        "status": status,
        "max_rate": plan.max_rate,
        "error": None if srv.alive() else f"server died:\n{srv.log_tail()}",
        "max_sustained": float(best["offered"]) if best else 0.0,
        "p50_at_max_ms": best.get("p50_ms") if best else None,
        "p99_at_max_ms": best.get("p99_ms") if best else None,
        "server_cpu_at_max": best.get("server_cpu_util") if best else None,
        "server_tree_cpu_at_max": best.get("server_tree_cpu_util") if best else None,
        "loadgen_cpu_at_max": best.get("loadgen_cpu_util") if best else None,
        "peak_deliveries_per_s": peak,
        "steps": steps,
        "probes": probes,
        "noisy_steps_repeated": noisy,
    }


def relay_sweep(
    target: Target,
    *,
    clients: int,
    rooms: int,
    plan: SweepPlan,
    crit: Criteria,
    budget: Budget,
    log_dir: Path,
    quiet: QuietMachine | None = None,
) -> Result:
    """Connect ``clients`` in ``rooms`` rooms, prove the joins, then sweep the offered rate."""
    try:
        with _server(target, log_dir) as srv, LoadGen(srv.port, server_pid=srv.pid) as lg:
            conn = lg.command(f"connect {clients} {rooms} 120", 150)
            if conn.get("ready", 0) < clients:
                return {"status": "error", "error": f"only {conn.get('ready')} connected", **conn}
            sync = lg.command("sync 20", 60)
            if not sync.get("ok"):
                return {"status": "error", "error": "joins never took effect", "sync": sync}
            _log(f"    {clients} clients in {rooms} room(s) connected in {conn['seconds']:.1f} s")
            res = _sweep(lg, srv, plan, crit, budget, quiet)
            res["connect_s"] = conn["seconds"]
            return res
    except Unavailable as exc:
        return {"status": "unavailable", "error": str(exc)}
    except LoadGenError as exc:
        return {"status": "error", "error": f"load generator: {exc}"}


def idle_memory(target: Target, *, counts: tuple[int, int], settle: float, log_dir: Path) -> Result:
    """RSS of the server with counts[0] and counts[1] idle clients; marginal KiB per client."""
    small, large = counts
    try:
        with (
            _server(target, log_dir) as srv,
            LoadGen(srv.port, server_pid=srv.pid, src_addrs=4) as lg,
        ):
            time.sleep(1.0)
            rss0 = srv.rss_kb()
            points: dict[str, int] = {"0": rss0}
            for n in (small, large):
                c = lg.command(f"connect {n} 0 240", 300)
                if c.get("ready", 0) < n:
                    return {"status": "error", "error": f"only {c.get('ready')} of {n} connected"}
                lg.command(f"hold {settle}", settle + 30)
                points[str(n)] = srv.rss_kb()
                _log(f"    {n:>6} idle clients: RSS {points[str(n)] / 1024:8.1f} MiB")
            marginal = (points[str(large)] - points[str(small)]) / (large - small)
            return {
                "status": "ok",
                "rss_kib": points,
                "marginal_kib_per_client": round(marginal, 2),
                "first_kib_per_client": round((points[str(small)] - rss0) / small, 2),
            }
    except Unavailable as exc:
        return {"status": "unavailable", "error": str(exc)}
    except LoadGenError as exc:
        return {"status": "error", "error": f"load generator: {exc}"}


def max_clients(
    target: Target,
    *,
    target_clients: int,
    batch: int,
    hold: float,
    time_cap: float,
    budget: Budget,
    log_dir: Path,
) -> Result:
    """Ramp idle clients up in batches to ``target_clients``; then hold them through heartbeats.

    "held" is how many were still connected after ``hold`` seconds (longer than the servers'
    25 s ping interval) and received at least one Engine.IO ping meanwhile.
    """
    fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    capped = fd_limit != resource.RLIM_INFINITY and target_clients > fd_limit - 150
    if capped:  # neither the server nor the load generator may open more descriptors
        target_clients = int(fd_limit) - 150
    src_addrs = max(1, math.ceil(target_clients / 20000))
    try:
        with (
            _server(target, log_dir) as srv,
            LoadGen(srv.port, server_pid=srv.pid, src_addrs=src_addrs, inflight=512) as lg,
        ):
            t0 = time.monotonic()
            reached = 0
            stopped = "target reached"
            ramp: list[dict[str, float]] = []
            if capped:
                stopped = f"target reached (capped by the RLIMIT_NOFILE hard limit {fd_limit})"
            while reached < target_clients:
                left = min(time_cap - (time.monotonic() - t0), budget.left() - hold - 20)
                if left <= 5:
                    stopped = "time cap"
                    break
                n = min(target_clients, reached + batch)
                c = lg.command(f"connect {n} 0 {left:.0f}", left + 30)
                reached = int(c.get("ready", 0))
                ramp.append({"clients": reached, "seconds": round(time.monotonic() - t0, 1)})
                _log(
                    f"    {reached:>7} connected ({time.monotonic() - t0:5.1f} s,"
                    f" RSS {srv.rss_kb() / 1024:.0f} MiB)"
                )
                if not srv.alive():
                    stopped = "server died"
                    break
                if reached < n * 0.99:
                    stopped = f"connects failing: {c.get('first_error', '?')}"
                    break
            ramp_s = time.monotonic() - t0
            rss = srv.rss_kb() if srv.alive() else -1
            h = lg.command(f"hold {hold}", hold + 60) if srv.alive() else {}
            alive = int(h.get("alive", 0))
            pinged = int(h.get("pinged", 0))
            held = min(alive, pinged)
            _log(f"    held {held} after {hold:.0f} s ({alive} alive, {pinged} pinged); {stopped}")
            return {
                "status": "ok" if srv.alive() else "error",
                "target": target_clients,
                "fd_limit": fd_limit,
                "capped_by_fd_limit": capped,
                "connected": reached,
                "held": held,
                "alive_after_hold": alive,
                "pinged_during_hold": pinged,
                "hold_s": hold,
                "ramp_s": round(ramp_s, 1),
                "stopped": stopped,
                "rss_kib": rss,
                "kib_per_client": round(rss / reached, 2) if reached and rss > 0 else None,
                "ramp": ramp,
            }
    except Unavailable as exc:
        return {"status": "unavailable", "error": str(exc)}
    except LoadGenError as exc:
        return {"status": "error", "error": f"load generator: {exc}"}


def _postgres_url() -> str | None:
    """A PostgreSQL database for the chat: $SALAS_BENCH_PG, or salas_bench on 127.0.0.1."""
    url = os.environ.get("SALAS_BENCH_PG")
    if url:
        return url
    try:
        import asyncio

        import asyncpg  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None

    async def ensure() -> str | None:
        base = "postgresql://postgres@127.0.0.1:5432/postgres"
        try:
            conn = await asyncio.wait_for(asyncpg.connect(base), 5)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return None
        try:
            found = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname='salas_bench'")
            if not found:
                await conn.execute("CREATE DATABASE salas_bench")
        finally:
            await conn.close()
        return "postgresql://postgres@127.0.0.1:5432/salas_bench"

    try:
        return asyncio.run(ensure())
    except Exception:
        return None


def persistence(
    target: Target,
    *,
    backends: tuple[str, ...],
    clients: int,
    rooms: int,
    window: int,
    per_client_rate: float,
    seconds: float,
    log_dir: Path,
) -> Result:
    """Acknowledged ``message`` sends per second that the chat stores, per storage backend.

    Each client keeps at most ``window`` sends in flight and, if ``per_client_rate`` is not 0,
    sends at most that many a second (offered rate ``clients * per_client_rate``; a result
    close to it is marked ``offered_bound``); 0 is a closed loop: the next send goes as soon
    as an acknowledgement comes back, so the figure is what the chat and its store sustain.
    """
    out: Result = {}
    for backend in backends:
        if backend == "sqlite":
            db_file = log_dir / "persist.db"
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{db_file}{suffix}").unlink(missing_ok=True)
            url: str | None = f"sqlite:///{db_file}"
        else:
            url = _postgres_url()
            if url is None:
                out[backend] = {"status": "unavailable", "error": "no PostgreSQL reachable"}
                continue
        try:
            with (
                _server(target, log_dir, {"SALAS_BENCH_DB": url or ""}) as srv,
                LoadGen(srv.port, server_pid=srv.pid) as lg,
            ):
                c = lg.command(f"connect {clients} {rooms} 60", 90)
                if c.get("ready", 0) < clients:
                    out[backend] = {"status": "error", "error": f"only {c.get('ready')} connected"}
                    continue
                lg.command("sync 20", 60)
                lg.command(f"acks 1 {window} {per_client_rate}", 30)  # warm-up
                r = lg.command(f"acks {seconds} {window} {per_client_rate}", seconds + 30)
                acked, errors = r.get("acked", 0), r.get("errors", 0)
                r["status"] = "ok" if acked > 0 and errors <= 0.01 * acked else "error"
                if r["status"] == "error":
                    r["error"] = r.get("first_error") or "no acknowledgement came back"
                offered = r.get("offered_per_s", -1)
                r["offered_bound"] = offered > 0 and r.get("acked_per_s", 0) >= 0.97 * offered
                r["db"] = url
                out[backend] = r
                _log(
                    f"    {backend}: {r.get('acked_per_s', 0):,.0f} acked messages/s,"
                    f" ack p99 {r.get('ack_p99_ms', -1):.1f} ms, errors {r.get('errors')}"
                )
        except Unavailable as exc:
            out[backend] = {"status": "unavailable", "error": str(exc)}
        except LoadGenError as exc:
            out[backend] = {"status": "error", "error": f"load generator: {exc}"}
    return out
