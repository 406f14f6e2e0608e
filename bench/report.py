"""Medians over runs, ratios to Node, the "load-generator bound" mark, the summary and the plot."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

__all__ = ["LG_BOUND_FRACTION", "plot", "summarize", "summary_lines"]

Result = dict[str, Any]

LG_BOUND_FRACTION = 0.8  # a result within 20% of the load generator's ceiling is marked


def _median(values: list[float | None] | list[float]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(statistics.median(vals)) if vals else None


def _us_per_delivery(run: Result) -> float | None:
    """Server CPU per delivery (µs) at the busiest passing step: robust to a shared machine."""
    passing = [s for s in run.get("steps", []) if s.get("ok") and s.get("server_cpu_util", -1) > 0]
    if not passing:
        return None
    s = max(passing, key=lambda x: float(x.get("deliveries_per_s", 0)))
    return round(1e6 * float(s["server_cpu_util"]) / max(float(s["deliveries_per_s"]), 1.0), 2)


def _probe_ratios(mine: list[Result], node: list[Result]) -> list[float]:
    """Per run: p99 of the step at Node's max rate over Node's p99 at its max, same run."""
    node_by_run = {r.get("run"): r for r in node if r.get("status") == "ok"}
    out: list[float] = []
    for r in mine:
        ref = node_by_run.get(r.get("run"))
        if r.get("status") != "ok" or not ref or not ref.get("p99_at_max_ms"):
            continue
        for p in r.get("probes", {}).values():
            if p.get("p99_ms", -1) >= 0:
                out.append(float(p["p99_ms"]) / float(ref["p99_at_max_ms"]))
    return out


MAX_RATE = {"fanout": 8e6, "chat": 4e6}  # for results written before runs recorded theirs


def _complete(run: Result, scen: str) -> bool:
    """A sweep that ended at a failing step (or at its top rate), not cut short by the budget."""
    if run.get("status") != "ok":
        return False
    steps = run.get("steps", [])
    top = max((float(s.get("offered", 0)) for s in steps), default=0.0)
    cap = float(run.get("max_rate") or MAX_RATE.get(scen, 0))
    return bool(steps) and (any(not s.get("ok") for s in steps) or top >= 0.99 * cap)


def _median_run(runs: list[Result], key: str) -> Result | None:
    ok = [r for r in runs if r.get("status") == "ok"]
    if not ok:
        return None
    ok.sort(key=lambda r: float(r.get(key) or 0))
    return ok[(len(ok) - 1) // 2]


def summarize(results: Result) -> Result:
    """Fill ``results["summary"]``: medians per server and scenario, ratios to Node."""
    ceiling = results.get("loadgen_ceiling", {})
    summary: Result = {}
    for name, srv in results["servers"].items():
        s: Result = {"label": srv.get("label", name)}
        for scen in ("fanout", "chat"):
            runs: list[Result] = srv.get(scen, [])
            if not runs:
                continue
            ok = [r for r in runs if _complete(r, scen)]
            if not ok:
                why = runs[0].get("error") or "the time budget ran out before the sweep's limit"
                s[scen] = {"status": runs[0].get("status"), "error": why}
                continue
            med: Result = {
                "status": "ok",
                "runs": len(ok),
                "max_sustained": _median([r["max_sustained"] for r in ok]),
                "p50_at_max_ms": _median([r["p50_at_max_ms"] for r in ok]),
                "p99_at_max_ms": _median([r["p99_at_max_ms"] for r in ok]),
                "peak_deliveries_per_s": _median([r["peak_deliveries_per_s"] for r in ok]),
                "server_cpu_at_max": _median([r["server_cpu_at_max"] for r in ok]),
                "server_cpu_us_per_delivery": _median([_us_per_delivery(r) for r in ok]),
                "other_cpu_median": _median(
                    [st.get("other_cpu_util") for r in ok for st in r.get("steps", [])]
                ),
            }
            probe_p99 = [
                p.get("p99_ms") for r in ok for p in r.get("probes", {}).values() if p.get("p99_ms")
            ]
            if probe_p99:
                # each run's probe is at that run's Node max rate
                med["p99_at_node_max_ms"] = _median(probe_p99)
            ceil = (ceiling.get(scen) or {}).get("max_sustained")
            if ceil and med["max_sustained"]:
                med["loadgen_ceiling"] = ceil
                med["loadgen_bound"] = med["max_sustained"] >= LG_BOUND_FRACTION * ceil
            s[scen] = med
        for scen in ("idle", "maxclients", "persistence"):
            if scen not in srv:
                continue
            if scen == "idle":
                runs = srv["idle"]
                ok = [r for r in runs if r.get("status") == "ok"]
                if ok:
                    s["idle"] = {
                        "status": "ok",
                        "runs": len(ok),
                        "marginal_kib_per_client": _median(
                            [r["marginal_kib_per_client"] for r in ok]
                        ),
                    }
                else:
                    s["idle"] = {"status": runs[0].get("status"), "error": runs[0].get("error")}
            else:
                s[scen] = srv[scen]
        summary[name] = s
    node = summary.get("node", {})
    for name, s in summary.items():
        if name == "node":
            continue
        ratios: Result = {}
        for scen in ("fanout", "chat"):
            mine, ref = s.get(scen, {}), node.get(scen, {})
            if mine.get("max_sustained") and ref.get("max_sustained"):
                ratios[f"{scen}_max_sustained"] = round(
                    mine["max_sustained"] / ref["max_sustained"], 2
                )
            per_run = _probe_ratios(
                results["servers"][name].get(scen, []),
                results["servers"].get("node", {}).get(scen, []),
            )
            if per_run:
                ratios[f"{scen}_p99_at_node_max"] = round(_median(per_run) or 0, 2)
        mi, ri = s.get("idle", {}), node.get("idle", {})
        if mi.get("marginal_kib_per_client") and ri.get("marginal_kib_per_client"):
            ratios["idle_kib_per_client"] = round(
                mi["marginal_kib_per_client"] / ri["marginal_kib_per_client"], 2
            )
        if ratios:
            s["ratio_to_node"] = ratios
    results["summary"] = summary
    return summary


def _fmt_rate(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.0f}k"


def summary_lines(results: Result) -> list[str]:
    """The human-readable summary printed at the end of a run."""
    out: list[str] = []
    ceiling = results.get("loadgen_ceiling", {})
    for scen in ("fanout", "chat"):
        c = ceiling.get(scen)
        if c:
            out.append(
                f"load generator ceiling ({scen}, against blast): "
                f"{_fmt_rate(c.get('max_sustained'))} deliveries/s sustained, "
                f"peak {_fmt_rate(c.get('peak_deliveries_per_s'))}/s"
            )
    for s in results.get("summary", {}).values():
        out.append(f"{s['label']}:")
        for scen, title in (("fanout", "fan-out 1x1000"), ("chat", "chat 100x10")):
            m = s.get(scen)
            if not m:
                continue
            if m.get("status") != "ok":
                out.append(f"  {title}: {m.get('status')} — {str(m.get('error'))[:200]}")
                continue
            bound = "  [load-generator bound]" if m.get("loadgen_bound") else ""
            if m["max_sustained"]:
                sustained = (
                    f"max sustained {_fmt_rate(m['max_sustained'])} deliveries/s"
                    f" (p50 {m['p50_at_max_ms'] or 0:.1f} ms, p99 {m['p99_at_max_ms'] or 0:.1f} ms,"
                    f" server CPU {m['server_cpu_at_max'] or 0:.2f})"
                )
            else:
                sustained = "max sustained: none (no step met the criteria)"
            out.append(
                f"  {title}: {sustained}, peak {_fmt_rate(m['peak_deliveries_per_s'])}/s,"
                f" median of {m['runs']}{bound}"
            )
            if m.get("server_cpu_us_per_delivery"):
                out.append(
                    f"    server CPU per delivery: {m['server_cpu_us_per_delivery']:.2f} µs"
                    " (busiest passing step)"
                )
            if (m.get("other_cpu_median") or 0) > 0.2:
                out.append(
                    f"    (noisy: other processes used {m['other_cpu_median']:.2f} cores during"
                    " the median step)"
                )
            if m.get("p99_at_node_max_ms") is not None:
                out.append(
                    f"    p99 at Node's max sustained rate (each run's): "
                    f"{m['p99_at_node_max_ms']:.1f} ms"
                )
        i = s.get("idle")
        if i:
            if i.get("status") == "ok":
                out.append(f"  idle: {i['marginal_kib_per_client']:.1f} KiB per connection")
            else:
                out.append(f"  idle: {i.get('status')} — {str(i.get('error'))[:200]}")
        mc = s.get("maxclients")
        if mc:
            if mc.get("status") == "ok":
                out.append(
                    f"  most clients: {mc['held']:,} held through heartbeats"
                    f" ({mc['connected']:,} connected in {mc['ramp_s']} s; {mc['stopped']})"
                )
            else:
                out.append(f"  most clients: {mc.get('status')} — {str(mc.get('error'))[:200]}")
        pe = s.get("persistence")
        if pe:
            for backend, r in pe.items():
                if r.get("status") == "ok":
                    bound = " [offered-rate bound]" if r.get("offered_bound") else ""
                    offered = r.get("offered_per_s", -1)
                    of = f" of {offered:,.0f} offered" if offered > 0 else ", closed loop"
                    out.append(
                        f"  persistence {backend}: {r['acked_per_s']:,.0f} acked messages/s{of}"
                        f" (ack p50 {r.get('ack_p50_ms', -1):.1f} ms,"
                        f" p99 {r.get('ack_p99_ms', -1):.1f} ms){bound}"
                    )
                else:
                    out.append(
                        f"  persistence {backend}: {r.get('status')} — {str(r.get('error'))[:200]}"
                    )
        for k, v in (s.get("ratio_to_node") or {}).items():
            out.append(f"  ratio to Node, {k}: {v}")
    return out


def plot(results: Result, path: Path) -> bool:
    """Throughput and p99 against offered rate, one line per server (its median run)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    series: list[tuple[str, str, list[Result]]] = []
    for name, srv in results["servers"].items():
        for scen in ("fanout", "chat"):
            complete = [r for r in srv.get(scen, []) if _complete(r, scen)]
            run = _median_run(complete, "max_sustained")
            if run:
                series.append((srv.get("label", name), scen, run["steps"]))
    for scen in ("fanout", "chat"):
        c = results.get("loadgen_ceiling", {}).get(scen)
        if c and c.get("steps"):
            series.append(("load generator ceiling (blast)", scen, c["steps"]))
    if not series:
        return False
    scens = [s for s in ("fanout", "chat") if any(x[1] == s for x in series)]
    fig, axes = plt.subplots(2, len(scens), figsize=(6.5 * len(scens), 9), squeeze=False)
    titles = {"fanout": "fan-out: 1 room x 1000 clients", "chat": "chat-like: 100 rooms x 10"}
    crit = results.get("config", {}).get("criteria", {})
    for col, scen in enumerate(scens):
        ax_t, ax_l = axes[0][col], axes[1][col]
        top = 1.0
        for label, sc, steps in series:
            if sc != scen:
                continue
            pts = sorted(steps, key=lambda s: float(s.get("offered", 0)))
            xs = [float(s["offered"]) for s in pts if "offered" in s]
            ys = [float(s.get("deliveries_per_s", 0)) for s in pts if "offered" in s]
            lat = [
                (float(s["offered"]), float(s["p99_ms"]))
                for s in pts
                if "offered" in s and s.get("p99_ms", -1) > 0
            ]
            style = {"color": "0.5", "linestyle": "--"} if "blast" in label else {}
            ax_t.plot(xs, ys, marker="o", markersize=3, label=label, **style)
            ax_l.plot(
                [x for x, _ in lat], [y for _, y in lat], marker="o", markersize=3, label=label,
                **style,
            )  # fmt: skip
            top = max([top, *xs])
        ax_t.plot([1e3, top], [1e3, top], color="0.85", linewidth=1, zorder=0)
        ax_t.set(xscale="log", yscale="log", title=titles[scen])
        ax_t.set_ylabel("delivered messages/s (measured window)")
        ax_l.axhline(crit.get("max_p99_ms", 50), color="red", linewidth=0.8, linestyle=":")
        ax_l.set(xscale="log", yscale="log", xlabel="offered deliveries/s")
        ax_l.set_ylabel("p99 latency, ms")
        for ax in (ax_t, ax_l):
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(f"salas bench — {results.get('date', '')}  (server CPU 0, load generator CPU 1)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
