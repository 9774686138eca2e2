#!/usr/bin/env python3
"""The PromQL expressions of a Grafana dashboard, ready to run against Prometheus directly.

    scripts/dashboard-queries.py [DASHBOARD.json]            one expression a line
    scripts/dashboard-queries.py --titles [DASHBOARD.json]   "panel title<TAB>expression" a line
    scripts/dashboard-queries.py --check [DASHBOARD.json]    verify the dashboard's structure

DASHBOARD.json defaults to config/grafana/evnas.json of this checkout. Grafana's variables are
substituted: $instance (and any other query/custom variable with an "All" value) -> its allValue
(.*), $__range -> 1h, $__interval and $__rate_interval -> 1m (their _s/_ms forms as numbers).
Each distinct expression is printed once, in panel order (rows' collapsed panels included).

--check verifies: valid JSON; no __inputs; a datasource template variable of type prometheus;
every datasource (panels, targets, template variables) is the variable ${datasource}, never a
literal uid; every panel but rows has at least one target with an expr; panel ids are unique;
no expression is left with an unknown $variable after substitution; and, when promtool is on
PATH (or given with --promtool), that every expression parses as PromQL. It prints the problems,
one a line, and exits 1 when there is any (0 and "ok: ..." otherwise). Standard library only.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

DEFAULT_DASHBOARD = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "config", "grafana", "evnas.json"))

# Built-in Grafana variables, as a query against Prometheus over the last hour would see them.
BUILTINS = {
    "__range": "1h", "__range_s": "3600", "__range_ms": "3600000",
    "__interval": "1m", "__interval_ms": "60000", "__rate_interval": "1m",
    "__rate_interval_ms": "60000",
}
DATASOURCE_REFS = ("${datasource}", "$datasource", "[[datasource]]")
# $name, ${name}, ${name:format}, [[name]]
VAR_RE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")


def walk_panels(panels):
    """Every panel in order, rows' nested (collapsed) panels included."""
    for p in panels or []:
        if not isinstance(p, dict):
            continue
        yield p
        yield from walk_panels(p.get("panels"))


def variable_values(dashboard, overrides=None):
    """name -> the value substituted for it: builtins, then the dashboard's own variables (their
    allValue when they have an All option, else their current value), then overrides."""
    values = dict(BUILTINS)
    for v in (dashboard.get("templating") or {}).get("list") or []:
        name = v.get("name")
        if not name or v.get("type") == "datasource":
            continue
        if v.get("includeAll"):
            values[name] = v.get("allValue") or ".*"
        else:
            cur = (v.get("current") or {}).get("value")
            if isinstance(cur, list):
                cur = cur[0] if len(cur) == 1 else "(" + "|".join(map(str, cur)) + ")"
            if cur not in (None, "", "$__all"):
                values[name] = str(cur)
    values.update(overrides or {})
    return values


def substitute(expr, values):
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        return values.get(name, m.group(0))
    return VAR_RE.sub(repl, expr)


def unresolved(expr):
    """$variables left in an expression (a regex anchor such as "foo$" is no variable)."""
    return [m.group(0) for m in VAR_RE.finditer(expr)]


def panel_queries(dashboard, overrides=None):
    """[(panel, target, substituted expr)] of every target with an expr, in panel order."""
    values = variable_values(dashboard, overrides)
    out = []
    for p in walk_panels(dashboard.get("panels")):
        for t in p.get("targets") or []:
            if isinstance(t, dict) and isinstance(t.get("expr"), str) and t["expr"].strip():
                if t.get("hide"):
                    continue
                expr = re.sub(r"\s*\n\s*", " ", t["expr"].strip())  # one line each
                out.append((p, t, substitute(expr, values)))
    return out


def datasource_problem(where, ds):
    if ds is None:
        return None
    if isinstance(ds, str):
        return None if ds in DATASOURCE_REFS else f"{where}: datasource {ds!r} is not ${{datasource}}"
    if isinstance(ds, dict):
        uid = ds.get("uid")
        if uid is None or uid in DATASOURCE_REFS:
            if ds.get("type") not in (None, "prometheus"):
                return f"{where}: datasource type {ds.get('type')!r} is not prometheus"
            return None
        if isinstance(uid, str) and uid.startswith("-- ") and where.startswith("annotation"):
            return None  # Grafana's own built-in annotation source ("-- Grafana --")
        return f"{where}: datasource uid {uid!r} is a literal uid, not ${{datasource}}"
    return f"{where}: datasource {ds!r} is neither a string nor an object"


def check(dashboard, promtool=None):
    problems = []
    if not isinstance(dashboard, dict):
        return ["the dashboard is not a JSON object"]
    if "__inputs" in dashboard:
        problems.append("__inputs present: the dashboard must import as is (no ${DS_...} inputs)")
    if not isinstance(dashboard.get("panels"), list) or not dashboard["panels"]:
        problems.append("no panels")
    if not dashboard.get("title"):
        problems.append("no title")

    variables = (dashboard.get("templating") or {}).get("list") or []
    ds_vars = [v for v in variables if isinstance(v, dict) and v.get("type") == "datasource"
               and v.get("name") == "datasource"]
    if not ds_vars:
        problems.append('no template variable {"type": "datasource", "name": "datasource"}')
    elif ds_vars[0].get("query") != "prometheus":
        problems.append(f"the datasource variable's query is {ds_vars[0].get('query')!r}, "
                        "not 'prometheus'")
    for v in variables:
        if isinstance(v, dict) and v.get("type") != "datasource":
            p = datasource_problem(f"variable {v.get('name')!r}", v.get("datasource"))
            if p:
                problems.append(p)
    for i, a in enumerate((dashboard.get("annotations") or {}).get("list") or []):
        if isinstance(a, dict) and not a.get("builtIn"):
            p = datasource_problem(f"annotation {a.get('name', i)!r}", a.get("datasource"))
            if p:
                problems.append(p)

    ids = {}
    for p in walk_panels(dashboard.get("panels")):
        label = f"panel {p.get('id')!r} {p.get('title', '')!r}"
        pid = p.get("id")
        if not isinstance(pid, int):
            problems.append(f"{label}: id is not an integer")
        elif pid in ids:
            problems.append(f"{label}: id {pid} already used by panel {ids[pid]!r}")
        else:
            ids[pid] = p.get("title", "")
        if not isinstance(p.get("gridPos"), dict):
            problems.append(f"{label}: no gridPos")
        if p.get("type") == "row":
            continue
        dp = datasource_problem(label, p.get("datasource"))
        if dp:
            problems.append(dp)
        if p.get("datasource") is None:
            problems.append(f"{label}: no datasource (want {{\"type\": \"prometheus\", "
                            "\"uid\": \"${datasource}\"})")
        tgts = [t for t in p.get("targets") or [] if isinstance(t, dict)]
        if not any(isinstance(t.get("expr"), str) and t["expr"].strip() for t in tgts):
            problems.append(f"{label}: no target with an expr")
        refs = [t.get("refId") for t in tgts]
        if len(set(refs)) != len(refs):
            problems.append(f"{label}: duplicate target refIds {refs}")
        for t in tgts:
            where = f"{label} target {t.get('refId')!r}"
            dp = datasource_problem(where, t.get("datasource"))
            if dp:
                problems.append(dp)
            expr = t.get("expr") or ""
            if any(r in expr for r in DATASOURCE_REFS):
                problems.append(f"{where}: ${{datasource}} inside an expression")

    queries = panel_queries(dashboard)
    for p, t, expr in queries:
        left = unresolved(expr)
        if left:
            problems.append(f"panel {p.get('id')!r} {p.get('title', '')!r} target "
                            f"{t.get('refId')!r}: unknown variables {left} in {expr}")
    if promtool and queries:
        problems += promtool_problems(promtool, queries)
    return problems


def promtool_problems(promtool, queries):
    """Parse every expression with `promtool check rules` (one recording rule per expression)."""
    exprs = list(dict.fromkeys(q[2] for q in queries))
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for i, e in enumerate(exprs):
        lines += [f"      - record: dashboard_expr_{i}", f"        expr: {json.dumps(e)}"]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write("\n".join(lines) + "\n")
        path = f.name
    try:
        r = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
    finally:
        os.unlink(path)
    if r.returncode == 0:
        return []
    problems = []
    for line in (r.stdout + r.stderr).splitlines():
        m = re.search(r"dashboard_expr_(\d+)", line)
        if m or "error" in line.lower() or "parse" in line.lower():
            if m and int(m.group(1)) < len(exprs):
                line = f"{line.strip()}  [{exprs[int(m.group(1))]}]"
            problems.append(f"promtool: {line.replace(path + ':', '').strip()}")
    return problems or [f"promtool check rules failed: {(r.stdout + r.stderr).strip()}"]


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dashboard", nargs="?", default=DEFAULT_DASHBOARD,
                    help="dashboard JSON (default: config/grafana/evnas.json)")
    ap.add_argument("--check", action="store_true", help="verify the dashboard's structure")
    ap.add_argument("--titles", action="store_true",
                    help="print 'panel title<TAB>expression' (every target, duplicates kept)")
    ap.add_argument("--promtool", default=None,
                    help="promtool to parse expressions with in --check (default: on PATH)")
    ap.add_argument("--no-promtool", action="store_true", help="--check without promtool")
    ap.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                    help="substitute VALUE for $NAME (e.g. --var instance=127.0.0.1:9464)")
    args = ap.parse_args()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet under `| head`

    try:
        dashboard = load(args.dashboard)
    except OSError as e:
        print(f"{args.dashboard}: {e.strerror}", file=sys.stdout if args.check else sys.stderr)
        return 1
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        print(f"{args.dashboard}: not valid JSON: {e}", file=sys.stdout if args.check else sys.stderr)
        return 1

    if args.check:
        promtool = None
        if not args.no_promtool:
            promtool = args.promtool or shutil.which("promtool")
        problems = check(dashboard, promtool)
        if problems:
            for p in problems:
                print(p)
            print(f"{args.dashboard}: {len(problems)} problem(s)", file=sys.stderr)
            return 1
        n = sum(1 for p in walk_panels(dashboard.get("panels")) if p.get("type") != "row")
        parsed = "parsed by promtool" if promtool else "not parsed (no promtool)"
        print(f"ok: {args.dashboard}: {n} panels, "
              f"{len(set(q[2] for q in panel_queries(dashboard)))} expressions ({parsed})")
        return 0

    overrides = {}
    for kv in args.var:
        name, sep, value = kv.partition("=")
        if not sep:
            ap.error(f"--var {kv!r}: want NAME=VALUE")
        overrides[name.lstrip("$")] = value
    queries = panel_queries(dashboard, overrides)
    if args.titles:
        for p, _t, expr in queries:
            print(f"{p.get('title', '')}\t{expr}")
    else:
        for expr in dict.fromkeys(q[2] for q in queries):
            print(expr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
