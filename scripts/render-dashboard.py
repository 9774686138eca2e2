#!/usr/bin/env python3
"""Render the evnas Grafana dashboard's panels as a grid of plots, straight from Prometheus.

    scripts/render-dashboard.py --prometheus http://127.0.0.1:9090 --out dash.png
        [--start UNIX_S] [--end UNIX_S] [--dashboard config/grafana/evnas.json]
        [--instance REGEX] [--step S] [--cols N]

One subplot per panel (rows skipped), titled as the panel, with one line per series from
Prometheus' /api/v1/query_range over [start, end] (default: the last 10 minutes), each labelled
by its non-trivial labels (those whose values differ between the panel's series; prefixed with
the target's legend text when a panel has several targets) and its last value. Grafana's
variables are substituted as Grafana would for that range: $instance -> --instance (default .*),
$__range -> end - start, $__interval/$__rate_interval -> 1m (more for long ranges).

Needs matplotlib (Agg backend, no display): scripts/render-dashboard.sh installs it into a venv
and runs this script with the same arguments.
"""

import argparse
import importlib.util
import json
import math
import os
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DASHBOARD = os.path.join(HERE, "..", "config", "grafana", "evnas.json")


def load_queries_module():
    sys.dont_write_bytecode = True  # no __pycache__ in scripts/
    spec = importlib.util.spec_from_file_location("dashboard_queries",
                                                  os.path.join(HERE, "dashboard-queries.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def query_range(base, expr, start, end, step, timeout):
    qs = urllib.parse.urlencode({"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                 "step": f"{step:g}"})
    url = base.rstrip("/") + "/api/v1/query_range?" + qs
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:  # 400/422: a bad expression; the body says why
        try:
            body = json.load(e)
        except Exception:
            raise RuntimeError(f"HTTP {e.code} {e.reason}") from None
    if body.get("status") != "success":
        raise RuntimeError(f"{body.get('errorType', 'error')}: {body.get('error', body)}")
    data = body["data"]
    if data.get("resultType") != "matrix":
        raise RuntimeError(f"unexpected result type {data.get('resultType')}")
    out = []
    for s in data["result"]:
        ts = [float(t) for t, _ in s["values"]]
        vs = [float(v) for _, v in s["values"]]  # "NaN", "+Inf" parse too
        out.append((s["metric"], ts, vs))
    return out


def static_legend(fmt):
    """A legend format's fixed text ("p90 {{instance}}" -> "p90")."""
    import re
    return " ".join(re.sub(r"\{\{\s*[^}]*\}\}", " ", fmt or "").split())


def series_labels(series):
    """[(target, labels, ts, vs)] -> a label per series: its non-trivial labels (those whose values
    differ between the panel's series; for a lone series, its labels but job and instance),
    prefixed with the target's legend text when the panel has several targets."""
    keys = set()
    for _, m, _, _ in series:
        keys |= {k for k in m if k != "__name__"}
    varying = sorted(k for k in keys if len({m.get(k) for _, m, _, _ in series}) > 1)
    multi_target = len({id(t) for t, _, _, _ in series}) > 1
    names = []
    for t, m, _, _ in series:
        shown = varying or sorted(k for k in m if k not in ("__name__", "job", "instance"))
        text = ", ".join(f"{k}={m[k]}" for k in shown if k in m)
        legend = static_legend(t.get("legendFormat"))
        if multi_target and legend:
            text = f"{legend} {text}".strip()
        names.append(text or legend or m.get("__name__") or "value")
    return names


def fmt_value(v, unit):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    unit = unit or ""
    if unit == "percentunit":
        return f"{v * 100:.3g}%"
    if unit == "percent":
        return f"{v:.3g}%"
    if unit == "bytes":
        for suffix in ("B", "KiB", "MiB", "GiB", "TiB"):
            if abs(v) < 1024 or suffix == "TiB":
                return f"{v:.3g} {suffix}"
            v /= 1024
    if unit == "s":
        if v != 0 and abs(v) < 1:
            return f"{v * 1000:.3g} ms"
        if abs(v) >= 120:
            return f"{v / 60:.3g} min"
        return f"{v:.3g} s"
    if unit.startswith("suffix:"):
        return f"{v:.4g} {unit[len('suffix:'):].strip()}"
    if abs(v) >= 1e6 or (v != 0 and abs(v) < 1e-3):
        return f"{v:.3g}"
    return f"{v:.4g}"


def last_finite(vs):
    for v in reversed(vs):
        if not math.isnan(v):
            return v
    return float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("--prometheus", default="http://127.0.0.1:9090",
                    help="Prometheus base URL (default http://127.0.0.1:9090)")
    ap.add_argument("--start", type=float, help="unix seconds (default: end - 600)")
    ap.add_argument("--end", type=float, help="unix seconds (default: now)")
    ap.add_argument("--out", default="evnas-dashboard.png", help="PNG to write")
    ap.add_argument("--dashboard", default=DEFAULT_DASHBOARD, help="dashboard JSON")
    ap.add_argument("--instance", default=".*", help="regex for $instance (default .*)")
    ap.add_argument("--step", type=float, help="query step in seconds (default: range/300, >= 1)")
    ap.add_argument("--cols", type=int, default=4, help="subplots per row (default 4)")
    ap.add_argument("--timeout", type=float, default=30, help="seconds per query (default 30)")
    args = ap.parse_args()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet under `| head`

    end = args.end if args.end is not None else time.time()
    start = args.start if args.start is not None else end - 600
    if start >= end:
        ap.error(f"--start ({start}) must be before --end ({end})")
    step = args.step or max(1.0, round((end - start) / 300))
    window = f"{int(max(60, 4 * step))}s"
    rng = end - start

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.dates as mdates
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        print("render-dashboard: matplotlib is not installed for " + sys.executable + ".\n"
              "  Run scripts/render-dashboard.sh with the same arguments (it creates a venv in\n"
              "  ${EVNAS_CACHE:-$HOME/.cache/evnas}/render-venv with matplotlib), or install it:\n"
              "  python3 -m pip install matplotlib", file=sys.stderr)
        return 2
    from datetime import datetime

    dq = load_queries_module()
    with open(args.dashboard, encoding="utf-8") as f:
        dashboard = json.load(f)
    overrides = {
        "instance": args.instance,
        "__range": f"{int(rng)}s", "__range_s": str(int(rng)), "__range_ms": str(int(rng * 1000)),
        "__interval": window, "__rate_interval": window,
        "__interval_ms": str(int(window[:-1]) * 1000),
        "__rate_interval_ms": str(int(window[:-1]) * 1000),
    }
    values = dq.variable_values(dashboard, overrides)

    panels = [p for p in dq.walk_panels(dashboard.get("panels")) if p.get("type") != "row"]
    if not panels:
        print(f"render-dashboard: no panels in {args.dashboard}", file=sys.stderr)
        return 1

    results = []  # (panel, [(target, labels, ts, vs)], [errors])
    reachable = False
    for p in panels:
        series, errors = [], []
        for t in p.get("targets") or []:
            expr = (t.get("expr") or "").strip()
            if not expr or t.get("hide"):
                continue
            expr = dq.substitute(" ".join(expr.split()), values)
            try:
                for m, ts, vs in query_range(args.prometheus, expr, start, end, step,
                                             args.timeout):
                    series.append((t, m, ts, vs))
                reachable = True
            except (urllib.error.URLError, OSError) as e:
                if not reachable:
                    print(f"render-dashboard: cannot query {args.prometheus}: "
                          f"{getattr(e, 'reason', e)}", file=sys.stderr)
                    return 1
                errors.append(f"{t.get('refId')}: {getattr(e, 'reason', e)}")
            except RuntimeError as e:
                reachable = True
                errors.append(f"{t.get('refId')}: {e}")
        results.append((p, series, errors))

    cols = max(1, min(args.cols, len(results)))
    rows = math.ceil(len(results) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 5.2, rows * 3.3), squeeze=False)
    t0, t1 = datetime.fromtimestamp(start), datetime.fromtimestamp(end)
    fig.suptitle(f"{dashboard.get('title', 'dashboard')} — {args.prometheus} — "
                 f"{t0:%Y-%m-%d %H:%M:%S} to {t1:%H:%M:%S} (step {step:g}s, "
                 f"instance=~\"{args.instance}\")", fontsize=12)
    empty = []
    for ax, (p, series, errors) in zip(axes.flat, results):
        unit = ((p.get("fieldConfig") or {}).get("defaults") or {}).get("unit")
        custom = ((p.get("fieldConfig") or {}).get("defaults") or {}).get("custom") or {}
        steps = custom.get("lineInterpolation") == "stepAfter" or p.get("type") == "state-timeline"
        ax.set_title(p.get("title", ""), fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlim(t0, t1)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
        ax.xaxis.set_major_locator(mdates.AutoDateLocator(maxticks=5))
        ax.grid(True, alpha=0.3)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos, u=unit: fmt_value(v, u)))
        finite = [s for s in series if any(not math.isnan(v) for v in s[3])]
        if not finite:
            why = "; ".join(errors) if errors else ("only NaN" if series else "no data")
            short = "\n".join(why[i:i + 60] for i in range(0, min(len(why), 240), 60))
            ax.text(0.5, 0.5, short, ha="center", va="center", transform=ax.transAxes,
                    fontsize=7, color="red" if errors else "grey")
            empty.append(f"{p.get('title')}: {why}")
            continue
        names = series_labels(series)
        if p.get("type") == "state-timeline":  # one band per series, filled while non-zero
            span = max(step, 1.0) / 86400
            for row_i, ((t, m, ts, vs), name) in enumerate(zip(series, names)):
                bars = [(mdates.date2num(datetime.fromtimestamp(x)), span)
                        for x, v in zip(ts, vs) if not math.isnan(v) and v != 0]
                ax.broken_barh(bars, (row_i + 0.1, 0.8), color=f"C{row_i % 10}")
            ax.set_yticks([i + 0.5 for i in range(len(names))])
            ax.set_yticklabels(names, fontsize=6)
            ax.set_ylim(0, len(names))
            ax.grid(False)
            continue
        for (t, m, ts, vs), name in zip(series, names):
            xs = [datetime.fromtimestamp(x) for x in ts]
            label = f"{name} ({fmt_value(last_finite(vs), unit)})"
            ax.plot(xs, vs, label=label, linewidth=1.2,
                    drawstyle="steps-post" if steps else "default")
        handles, labels = ax.get_legend_handles_labels()
        if len(handles) > 12:
            handles, labels = handles[:12], labels[:11] + [f"... {len(labels) - 11} more"]
        ax.legend(handles, labels, fontsize=6, loc="best", framealpha=0.6)
        if errors:
            ax.text(0.01, 0.01, "; ".join(errors)[:80], transform=ax.transAxes, fontsize=6,
                    color="red")
    for ax in list(axes.flat)[len(results):]:
        ax.set_visible(False)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}: {len(results)} panels, {len(results) - len(empty)} with data")
    for e in empty:
        print(f"  no data: {e}")
    return 0 if len(empty) < len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
