#!/usr/bin/env python3
"""Helpers of scripts/bench (python3 standard library only).

  report.py stats RAW START END [CS CE]   writer latencies of the writes overlapping [START, END] (epoch s), as JSON
                                          (with CS CE: also inside and outside the cut-over [CS, CE])
  report.py cutover OUT                   start and end (epoch s) of the cut-over in revenant's log
  report.py add RESULTS key=value ...     appends one run to RESULTS (JSON lines); key:=FILE reads a JSON file,
                                          key@=FILE reads a text file (its tail), numbers stay numbers
  report.py render RESULTS META DOC       rewrites the part of DOC between <!-- bench:start --> and
                                          <!-- bench:end --> (creating DOC, or appending the markers, if missing)
"""
import json
import math
import re
import os
import statistics
import sys

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def pct(sorted_vals, p):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_vals:
        return None
    k = max(0, math.ceil(p / 100.0 * len(sorted_vals)) - 1)
    return sorted_vals[k]


def cmd_cutover(out):
    """Epoch start and end of revenant's cut-over, from its log ('phase: cut-over' .. 'cut-over complete')."""
    import datetime
    text = ANSI.sub("", open(out, errors="replace").read())
    a = re.search(r"^(\S+)\s+\w+\s+phase: cut-over", text, re.M)
    b = re.search(r"^(\S+)\s+\w+\s+cut-over complete", text, re.M) or re.search(r"^(\S+)\s+\w+\s+phase: cleanup", text, re.M)
    if not (a and b):
        return
    def ep(t):
        return datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
    try:
        print(f"{ep(a.group(1)):.6f} {ep(b.group(1)):.6f}")
    except ValueError:
        pass


def cmd_stats(raw, start, end, cut_start=None, cut_end=None):
    start, end = float(start), float(end)
    cut = (float(cut_start), float(cut_end)) if cut_start and cut_end else None
    in_cut, out_cut = [], []
    lat, lates, base, first, errors_win, summary = [], [], [], None, 0, {}
    with open(raw) as f:
        for line in f:
            if line.startswith("# summary "):
                summary = json.loads(line[len("# summary "):])
                continue
            parts = line.split()
            if len(parts) < 5:
                continue
            s, ms, ok = float(parts[0]), float(parts[1]), parts[2] == "1"
            late = float(parts[5]) if len(parts) > 5 else 0.0
            e = s + ms / 1000.0
            if e >= start and s <= end:   # the write overlaps the migration
                lat.append(ms)
                lates.append(late)
                if cut:
                    (in_cut if e >= cut[0] and s <= cut[1] else out_cut).append((ms, s - start))
                if not ok:
                    errors_win += 1
            elif e < start:               # before it: the baseline of this machine and server
                base.append(ms)
                first = s if first is None else min(first, s)
    lat.sort()
    lates.sort()
    base.sort()
    out = {
        "window_s": round(end - start, 3),
        "window_writes": len(lat),
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "max_ms": lat[-1] if lat else None,
        "errors_in_window": errors_win,
        "achieved_rate": round(len(lat) / (end - start), 1) if end > start else None,
        "max_late_ms": lates[-1] if lates else None,
        "base_p50_ms": pct(base, 50),
        "base_p99_ms": pct(base, 99),
        "base_rate": round(len(base) / (start - first), 1) if base and start > first else None,
        "connections": summary.get("connections"),
        "cutover_ms": round((cut[1] - cut[0]) * 1000, 1) if cut else None,
        "cutover_writes": len(in_cut) if cut else None,
        "cutover_max_ms": max(in_cut)[0] if in_cut else None,
        "outside_cutover_max_ms": max(out_cut)[0] if out_cut else None,
        "outside_cutover_max_at_s": round(max(out_cut)[1], 1) if out_cut else None,
        "errors": summary.get("errors"),
        "ops": summary.get("ops"),
        "elapsed_s": summary.get("elapsed_s"),
        "missed_slots": summary.get("missed_slots"),
        "inserted": summary.get("inserted"),
        "deleted_rows": summary.get("deleted_rows"),
        "reconnects": summary.get("reconnects"),
        "error_messages": summary.get("error_messages", []),
        "rate": summary.get("rate"),
        "complete": bool(summary),
    }
    print(json.dumps(out))


def parse_value(v):
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    if v in ("true", "false"):
        return v == "true"
    return v


def cmd_add(results, pairs):
    rec = {}
    for p in pairs:
        if ":=" in p:
            k, path = p.split(":=", 1)
            try:
                with open(path) as f:
                    rec[k] = json.load(f)
            except (OSError, ValueError):
                rec[k] = None
        elif "@=" in p:
            k, path = p.split("@=", 1)
            try:
                with open(path, errors="replace") as f:
                    lines = ANSI.sub("", f.read()).splitlines()
                rec[k] = "\n".join(lines[-40:])
            except OSError:
                rec[k] = ""
        else:
            k, v = p.split("=", 1)
            rec[k] = parse_value(v)
    with open(results, "a") as f:
        f.write(json.dumps(rec) + "\n")


# ---------------------------------------------------------------------------------------------- rendering

METHODS = [
    ("copy", "`ALTER TABLE ... ADD COLUMN f INT, ALGORITHM=COPY`"),
    ("insert-select", "`CREATE TABLE t2 LIKE t` + `ALTER TABLE t2 ADD COLUMN f INT` + `INSERT INTO t2 SELECT *, NULL FROM t`"),
    ("inplace", "`ALTER TABLE ... ADD COLUMN f INT, FORCE, ALGORITHM=INPLACE` (the server's in-place rebuild)"),
    ("pt-osc", "`pt-online-schema-change --alter \"ADD COLUMN f INT\" --execute`"),
    ("gh-ost", "`gh-ost --alter \"ADD COLUMN f INT\" --allow-on-master --assume-rbr --skip-metadata-lock-check --execute` (145799ee)"),
    ("revenant", "`revenant migrate --alter \"ADD COLUMN f INT\" --execute --headless --ok-to-drop-table`"),
    ("revenant-all-indexes", "the same with `--defer-secondary-indexes=false` (the ghost keeps `KEY (a)` during the copy; idle only)"),
    ("revenant-one-thread", "the same with `--copy-threads 1` (one copy worker instead of this machine's cores; idle only)"),
]


def median(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt_s(v):
    return "—" if v is None else f"{v:.2f} s"


def fmt_ms(v):
    return "—" if v is None else f"{v:.1f} ms"


def fmt_x(v):
    return "—" if v is None else f"{v:.2f}x"


def group(results, method, load):
    return [r for r in results if r.get("method") == method and r.get("load") == load]


def summarize(runs):
    """Median over the repetitions; None when there is no successful run."""
    ok = [r for r in runs if r.get("ok")]
    s = {"runs": len(runs), "ok_runs": len(ok), "failed": len(runs) - len(ok)}
    s["seconds"] = median([r.get("seconds") for r in ok])
    s["all_seconds"] = [r.get("seconds") for r in runs]
    w = [r.get("writer") for r in ok if isinstance(r.get("writer"), dict)]
    if w:
        for k in ("p50_ms", "p99_ms", "max_ms", "errors", "window_writes", "missed_slots", "achieved_rate",
                  "max_late_ms", "base_p50_ms", "base_p99_ms", "base_rate"):
            s[k] = median([x.get(k) for x in w])
        s["worst_max_ms"] = max((x.get("max_ms") or 0) for x in w)
        s["total_errors"] = sum((x.get("errors") or 0) for x in w)
        msgs = []
        for x in w:
            msgs.extend(x.get("error_messages") or [])
        s["error_messages"] = sorted(set(msgs))
    rss = [r.get("rss_kb") for r in ok if r.get("rss_kb")]
    s["rss_kb"] = median(rss)
    s["max_rss_kb"] = max(rss) if rss else None
    return s


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def time_cell(s, m, load):
    if s["runs"] == 0:
        return "not run" if not (m == "insert-select" and load == "loaded") else "n/a (no way to keep writes)"
    if s["ok_runs"] == 0:
        return "**failed**"
    extra = f" ({s['failed']} of {s['runs']} failed)" if s["failed"] else ""
    return fmt_s(s["seconds"]) + extra


def _sec(S, m, l):
    return S[(m, l)]["seconds"]


RATIOS = [
    ("revenant idle / ALGORITHM=COPY idle", lambda S: ratio(_sec(S, "revenant", "idle"), _sec(S, "copy", "idle"))),
    ("revenant loaded / revenant idle", lambda S: ratio(_sec(S, "revenant", "loaded"), _sec(S, "revenant", "idle"))),
    ("pt-osc idle / revenant idle", lambda S: ratio(_sec(S, "pt-osc", "idle"), _sec(S, "revenant", "idle"))),
    ("pt-osc loaded / revenant loaded", lambda S: ratio(_sec(S, "pt-osc", "loaded"), _sec(S, "revenant", "loaded"))),
    ("revenant idle / INSERT ... SELECT", lambda S: ratio(_sec(S, "revenant", "idle"), _sec(S, "insert-select", "idle"))),
    ("revenant idle / FORCE, ALGORITHM=INPLACE", lambda S: ratio(_sec(S, "revenant", "idle"), _sec(S, "inplace", "idle"))),
    ("gh-ost idle / revenant idle", lambda S: ratio(_sec(S, "gh-ost", "idle"), _sec(S, "revenant", "idle"))),
    ("gh-ost loaded / revenant loaded", lambda S: ratio(_sec(S, "gh-ost", "loaded"), _sec(S, "revenant", "loaded"))),
    ("revenant idle / revenant --defer-secondary-indexes=false idle", lambda S: ratio(_sec(S, "revenant", "idle"), _sec(S, "revenant-all-indexes", "idle"))),
    ("revenant idle / revenant --copy-threads 1 idle", lambda S: ratio(_sec(S, "revenant", "idle"), _sec(S, "revenant-one-thread", "idle"))),
]


def render_server(a, L, meta, srv, results, S):
    """One server's tables: times, ratios, writer latency, revenant's memory, targets, checks, failures."""
    name = flavor_name(srv["flavor"])
    a("")
    a(f"## {name} {srv['server_version']}")
    a("")
    a(f"### Times ({name})")
    a("")
    a("| method | idle | under writer | loaded / idle |")
    a("| --- | --- | --- | --- |")
    for m, desc in METHODS:
        i, l = S[(m, "idle")], S[(m, "loaded")]
        a(f"| {desc} | {time_cell(i, m, 'idle')} | {time_cell(l, m, 'loaded')} | "
          f"{fmt_x(ratio(l['seconds'], i['seconds']))} |")
    if int(meta["repeat"]) > 1:
        a("")
        a("All repetitions (s): " + "; ".join(
            f"{m} {l}: {', '.join('fail' if v is None else f'{v:.2f}' for v in S[(m, l)]['all_seconds'])}"
            for m, _ in METHODS for l in ("idle", "loaded") if S[(m, l)]["runs"]))
    a("")
    a("`INSERT ... SELECT` only copies into a new table (no swap, no writes kept), so it is the floor of a copy "
      "on this server. `ALGORITHM=COPY` blocks writers for its whole duration (the server holds a shared lock: "
      "reads go on, writes wait), which the loaded run shows as the writer's stall.")
    if srv["flavor"] == "mysql":
        a("On MySQL a plain `ADD COLUMN` is INSTANT (metadata only, no copy); the statements above say "
          "`ALGORITHM=COPY` and `FORCE, ALGORITHM=INPLACE` so that the server copies or rebuilds the table as the "
          "online tools do. pt-online-schema-change runs with `--recursion-method=none` on both servers (3.2.1 "
          "looks for replicas with `SHOW SLAVE HOSTS`, which MySQL 9.7 no longer has).")
    a("")
    a(f"### Ratios ({name})")
    a("")
    a("| ratio | value |")
    a("| --- | --- |")
    for label, fn in RATIOS:
        a(f"| {label} | {fmt_x(fn(S))} |")
    a("")
    a(f"### Writer latency during the migration ({name})")
    a("")
    a("| method | writes during the migration | writes/s achieved | p50 | p99 | max (incl. cut-over) | errors | "
      "max start delay | before the migration: writes/s, p50, p99 |")
    a("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for m, desc in METHODS:
        s = S[(m, "loaded")]
        if s["runs"] == 0:
            continue
        if s["ok_runs"] == 0 or "p50_ms" not in s:
            a(f"| {m} | — | — | — | — | — | — | — | — |")
            continue
        mx = fmt_ms(s["max_ms"])
        if int(meta["repeat"]) > 1:
            mx += f" (worst {fmt_ms(s['worst_max_ms'])})"
        rate = "—" if s.get("achieved_rate") is None else f"{s['achieved_rate']:.0f}"
        a(f"| {m} | {s['window_writes']} | {rate} | {fmt_ms(s['p50_ms'])} | {fmt_ms(s['p99_ms'])} | {mx} | "
          f"{s['errors']} | {fmt_ms(s.get('max_late_ms'))} | "
          f"{'—' if s.get('base_rate') is None else format(s['base_rate'], '.0f')}, {fmt_ms(s.get('base_p50_ms'))}, "
          f"{fmt_ms(s.get('base_p99_ms'))} |")
    a("")
    a("p50/p99/max: each write's own latency (from sending it to its reply). Writes/s achieved: writes that "
      f"overlapped the migration / its duration (the target is {meta['rate']}/s); when it falls short, writes were "
      "slower than the schedule allows (a blocked connection does not fire the writes of the slots it missed "
      "afterwards). Max start delay: how far behind its slot a write started, the writer's own lag (a latency "
      "measured from the schedule would add it). Before the migration: the same writer during its "
      f"{meta['warmup']} s warm-up on the same table, the baseline of this machine at that moment.")
    cut_lines = []
    for r in results:
        w = r.get("writer")
        if r.get("method") == "revenant" and r.get("load") == "loaded" and isinstance(w, dict) and w.get("cutover_ms") is not None:
            cut_lines.append(
                f"- repetition {r.get('rep')}: the cut-over lasted {fmt_ms(w['cutover_ms'])} (from revenant's log); "
                f"{w['cutover_writes']} writes overlapped it, the slowest took {fmt_ms(w.get('cutover_max_ms'))}. "
                f"Outside the cut-over (during the copy) the slowest write took {fmt_ms(w.get('outside_cutover_max_ms'))}, "
                f"{w.get('outside_cutover_max_at_s')} s after the migration started.")
    if cut_lines:
        a("")
        a("Where revenant's loaded-run maximum happened:")
        a("")
        L.extend(cut_lines)
    msgs = []
    for m, _ in METHODS:
        for msg in S[(m, "loaded")].get("error_messages", []):
            msgs.append(f"- {m}: `{msg}`")
    if msgs:
        a("")
        a("Writer error messages:")
        a("")
        L.extend(msgs)
    a("")
    a(f"### revenant's memory ({name})")
    a("")
    ri, rl = S[("revenant", "idle")], S[("revenant", "loaded")]
    def mib(kb):
        return "—" if kb is None else f"{kb / 1024:.1f} MiB"
    a(f"Peak RSS (`/usr/bin/time -v`, maximum resident set size): idle {mib(ri['rss_kb'])}, under the writer "
      f"{mib(rl['rss_kb'])}.")
    own = [f"{r['load']}: {r['reported_stall_ms']} ms" for r in results
           if r.get("method") == "revenant" and r.get("reported_stall_ms") not in (None, "")]
    if own:
        a("")
        a("revenant's own report of the cut-over stall (its log line `cut-over complete: writes stalled for N ms`, "
          "for comparison with the writer's measured max): " + "; ".join(own) + ".")
    a("")
    a(f"### Targets ({name}; measured, not asserted)")
    a("")
    rev_i, rev_l = _sec(S, "revenant", "idle"), _sec(S, "revenant", "loaded")
    copy_i = _sec(S, "copy", "idle")
    rw = S[("revenant", "loaded")]
    def verdict(v, limit):
        if v is None:
            return "not measured"
        return "met" if v <= limit else "not met"
    ghost_i = _sec(S, "gh-ost", "idle")
    r1, r2, r3 = ratio(rev_i, copy_i), ratio(rev_l, rev_i), ratio(rev_i, ghost_i)
    stall = rw.get("worst_max_ms")
    errs = rw.get("total_errors")
    a("The goals of issue 17 (peak RSS under one large transaction and the kill -9 + resume total are measured by "
      "scripts/bench-memory and scripts/bench-resume, not here; their sections are below).")
    a("")
    a("| target | measured | verdict |")
    a("| --- | --- | --- |")
    a(f"| revenant idle <= 0.7x ALGORITHM=COPY | {fmt_x(r1)} ({fmt_s(rev_i)} vs {fmt_s(copy_i)}) | {verdict(r1, 0.7)} |")
    a(f"| revenant idle <= 0.4x gh-ost idle | {fmt_x(r3)} ({fmt_s(rev_i)} vs {fmt_s(ghost_i)}) | {verdict(r3, 0.4)} |")
    a(f"| revenant loaded <= 1.1x revenant idle | {fmt_x(r2)} ({fmt_s(rev_l)} vs {fmt_s(rev_i)}) | {verdict(r2, 1.1)} |")
    a(f"| writer's worst stall <= 250 ms, cut-over included | {fmt_ms(stall)} | {verdict(stall, 250)} |")
    a(f"| 0 writer errors | {'—' if errs is None else errs} | {verdict(errs, 0)} |")
    a("")
    a(f"### Checks ({name})")
    a("")
    a("After each run the script checks that column `f` exists and that `SELECT COUNT(*)` of the migrated table "
      "equals the original's (idle: the seeded rows; loaded: seeded + rows the writer inserted - rows it deleted).")
    a("")
    a("| method | load | rep | time | rows expected | rows found | column f | result |")
    a("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        a(f"| {r.get('method')} | {r.get('load')} | {r.get('rep')} | {fmt_s(r.get('seconds'))} | "
          f"{r.get('expected_rows', '—')} | {r.get('found_rows', '—')} | {r.get('has_f', '—')} | "
          f"{'ok' if r.get('ok') else 'FAILED: ' + str(r.get('why', ''))} |")
    fails = [r for r in results if not r.get("ok")]
    if fails:
        a("")
        a(f"### Failures ({name})")
        for r in fails:
            a("")
            a(f"{r.get('method')} ({r.get('load')}, repetition {r.get('rep')}): {r.get('why', '')}; exit status "
              f"{r.get('exit')}. Last lines of its output:")
            a("")
            a("```")
            L.extend((r.get("output") or "(no output)").splitlines())
            a("```")


FLAVOR_NAMES = {"mariadb": "MariaDB", "mysql": "MySQL"}


def flavor_name(f):
    return FLAVOR_NAMES.get(f, f)


def cmd_render(results_path, meta_path, doc):
    results = []
    if os.path.exists(results_path):
        with open(results_path) as f:
            results = [json.loads(l) for l in f if l.strip()]
    with open(meta_path) as f:
        meta = json.load(f)
    # Older meta files described one MariaDB server at the top level.
    servers = meta.get("servers") or [dict(flavor="mariadb", **{k: meta.get(k) for k in (
        "server_version", "server_args", "buffer_pool", "table_mib")})]
    for r in results:
        r.setdefault("flavor", servers[0]["flavor"])

    L = []
    a = L.append
    a(START)
    a("<!-- Generated by scripts/bench: everything between these markers is rewritten on each run. -->")
    a("")
    a("## Latest run")
    a("")
    a(f"- Date: {meta['date']} (took {meta.get('total_seconds', '?')} s in all)")
    a(f"- Machine: {meta['nproc']} CPUs ({meta['cpu']}), {meta['mem']} memory, {meta['kernel']}")
    a(f"- Load average at start / end: {meta['load_start']} / {meta.get('load_end', '?')}. Other work (builds, "
      "test suites of other engineers) may have been running on this machine at the same time: the figures are "
      "one noisy sample, not a controlled measurement.")
    a("- Servers, one after the other in this run, each started by the script with the test harness's options, "
      "defaults otherwise; binary logging is on (ROW, FULL images), as on a primary:")
    for srv in servers:
        took = f", its runs took {srv['total_seconds']} s" if srv.get("total_seconds") is not None else ""
        load = (f", load average {srv['load_start']} / {srv['load_end']}" if srv.get("load_start") else "")
        a(f"  - {flavor_name(srv['flavor'])} {srv['server_version']}: `{srv['server_args']}` "
          f"(innodb_buffer_pool_size {srv['buffer_pool']}{took}{load})")
    gv = meta.get("ghost_version") or ""
    ran_ghost = any(r.get("method") == "gh-ost" for r in results)
    ghost = ("" if not ran_ghost else "; gh-ost (a build of 145799ee" + (f", `{gv}`" if gv and "unversioned" not in gv
                                                                          else "") + ")")
    a(f"- Tools: pt-online-schema-change {meta['ptosc_version']}{ghost}; revenant {meta['revenant_version']} "
      f"(release build, commit {meta['revenant_commit']}{meta.get('revenant_dirty', '')})")
    sizes = ", ".join(f"{srv['table_mib']} MiB on {flavor_name(srv['flavor'])}" for srv in servers)
    a(f"- Table: `bench.t` with {meta['rows']:,} rows, {sizes} (data + index, from information_schema after "
      "ANALYZE)")
    sums = [srv.get("seed_checksum") for srv in servers if srv.get("seed_checksum")]
    if len(sums) > 1:
        same = len(set(sums)) == 1
        a("- Seed: the same formulas on every server (numbers from a 0..99,999 table, strings from SHA2); checksum "
          "`COUNT(*), SUM(CRC32(CONCAT_WS('|', all columns)))`: "
          + (f"{sums[0]} on every server, so they hold the same rows" if same else
             "**differs**: " + "; ".join(f"{flavor_name(s['flavor'])} {s['seed_checksum']}" for s in servers)))
    elif sums:
        a(f"- Seed checksum (`COUNT(*), SUM(CRC32(CONCAT_WS('|', all columns)))`): {sums[0]}")
    a(f"- Repetitions: {meta['repeat']} (`BENCH_REPEAT`); each figure is the median over them. "
      + ("With one repetition the figures are single runs." if int(meta['repeat']) == 1 else ""))
    conns = int(meta.get("connections", 1))
    on = "one connection" if conns == 1 else f"{conns} connections of {meta['rate'] / conns:g} writes/s each"
    a(f"- Loaded runs: a writer ({meta['rate']} single-row writes/s on {on}, autocommit: 40% INSERT, "
      "40% UPDATE and 20% DELETE by random primary key) starts "
      f"{meta['warmup']} s before the migration and stops {meta['cooldown']} s after it; the latencies below are "
      "those of the writes that overlapped the migration (each write timed on its own, so a write blocked by a "
      "lock or the cut-over shows the whole stall); errors count the writer's whole run"
      + ("" if conns == 1 else ". The rate is spread over several connections because one connection, one "
         "autocommit write after the other, could not reach it on this machine (a commit averaged about 3.6 ms, "
         "about 250-300 writes/s on one connection); `BENCH_WRITER_CONNECTIONS=1` runs the one-connection variant"))
    for n in meta.get("notes") or []:
        a(f"- {n}")

    per = {srv["flavor"]: {(m, l): summarize([r for r in group(results, m, l) if r.get("flavor") == srv["flavor"]])
                           for m, _ in METHODS for l in ("idle", "loaded")} for srv in servers}
    if len(servers) > 1:
        a("")
        a("### The servers side by side")
        a("")
        names = [flavor_name(s["flavor"]) for s in servers]
        a("| method | " + " | ".join(f"{n} idle | {n} under writer" for n in names)
          + f" | {names[1]} / {names[0]} idle | {names[1]} / {names[0]} under writer |")
        a("| --- |" + " --- |" * (2 * len(names) + 2))
        f0, f1 = servers[0]["flavor"], servers[1]["flavor"]
        for m, _ in METHODS:
            cells = []
            for srv in servers:
                for l in ("idle", "loaded"):
                    cells.append(time_cell(per[srv["flavor"]][(m, l)], m, l))
            r_i = ratio(per[f1][(m, "idle")]["seconds"], per[f0][(m, "idle")]["seconds"])
            r_l = ratio(per[f1][(m, "loaded")]["seconds"], per[f0][(m, "loaded")]["seconds"])
            a(f"| {m} | " + " | ".join(cells) + f" | {fmt_x(r_i)} | {fmt_x(r_l)} |")
        a("")
        a("| ratio | " + " | ".join(names) + " |")
        a("| --- |" + " --- |" * len(names))
        for label, fn in RATIOS:
            a(f"| {label} | " + " | ".join(fmt_x(fn(per[s['flavor']])) for s in servers) + " |")
    for srv in servers:
        render_server(a, L, meta, srv, [r for r in results if r.get("flavor") == srv["flavor"]], per[srv["flavor"]])
    a("")
    a(END)
    block = "\n".join(L) + "\n"

    if os.path.exists(doc):
        with open(doc) as f:
            text = f.read()
    else:
        text = ""
    if START in text and END in text:
        pre = text[: text.index(START)]
        post = text[text.index(END) + len(END):]
        post = post[1:] if post.startswith("\n") else post
        text = pre + block + post
    elif text:
        text = text.rstrip("\n") + "\n\n" + block
    else:
        text = DEFAULT_HEAD + block + DEFAULT_TAIL
    os.makedirs(os.path.dirname(os.path.abspath(doc)), exist_ok=True)
    with open(doc, "w") as f:
        f.write(text)


DEFAULT_HEAD = """# Benchmarks

How long `ADD COLUMN` takes on a 1M-row table with revenant and with the alternatives, idle and under a steady
writer, on MariaDB and on MySQL, and what the writer sees. This is measurement only: nothing here is asserted by
tests or CI.

"""

DEFAULT_TAIL = """
## How to reproduce

```
scripts/install-deps      # MariaDB, the MySQL 9.7 chroot, percona-toolkit (pt-online-schema-change, DBD::mysql)
scripts/bench             # builds revenant (release), runs everything on both servers, rewrites the section above
```

`scripts/bench` starts its own throwaway servers, one after the other: MariaDB (data directory in a temporary
directory) and MySQL 9.7 (`mysqld --initialize-insecure`, then `mysqld`, run with `chroot` in the Debian sid
chroot that `scripts/install-deps` builds, data directory in the chroot's `/var/tmp`), each on a free port of
127.0.0.1 with the test harness's options (ROW binary log, FULL images, GTIDs on MySQL), killed when its runs are
done and on exit. Every client (the mariadb client, the writer, pt-osc, gh-ost, revenant) connects over TCP from
outside the chroot as the password-less root. `--flavor mariadb`, `--flavor mysql` or `BENCH_FLAVOR` picks the
servers; by default both run when the chroot exists, else MariaDB alone (the section above says so).

On each server the script seeds `benchseed.t` once (binary log off for the seeding) with the same rows: the same
formulas over a table of the numbers 0..99,999 (MySQL has no Sequence engine) with strings from `SHA2` (MySQL 9.7
has no `MD5`), and a checksum of the seed shows both servers hold the same data. Before every run it re-creates
`bench.t` from the seed (`CREATE TABLE ... LIKE` + `INSERT ... SELECT` + `ANALYZE TABLE`, binary log off, then
purges the binary logs and waits for InnoDB's purge), so each method starts from an identical table. The methods
run in this order in every repetition: ALGORITHM=COPY, FORCE + ALGORITHM=INPLACE, INSERT ... SELECT,
pt-online-schema-change, gh-ost, revenant; each idle, then (except INSERT ... SELECT) under the writer
(`scripts/bench-helpers/writer.pl`).

Environment variables:

| variable | default | meaning |
| --- | --- | --- |
| `BENCH_FLAVOR` | mariadb,mysql (mariadb without the chroot) | servers to measure, in order; `--flavor` overrides it |
| `BENCH_ROWS` | 1000000 | rows in `bench.t` |
| `BENCH_REPEAT` | 1 | repetitions of every run; the doc shows medians |
| `BENCH_WRITE_RATE` | 500 | writer's writes per second (in all) |
| `BENCH_WRITER_CONNECTIONS` | 4 | writer's connections (processes), each doing its share of the rate |
| `BENCH_METHODS` | copy,inplace,insert-select,pt-osc,gh-ost,revenant | which methods to run |
| `BENCH_GHOST` | ../shared/tools/gh-ost | the gh-ost binary (left out when missing) |
| `BENCH_LOADS` | idle,loaded | which conditions to run |
| `BENCH_REVENANT` | (build) | a revenant binary to use instead of building `cargo build --release` |
| `CARGO_TARGET_DIR` | target | where the release build goes |
| `BENCH_TIMEOUT` | 7200 | seconds after which one migration is killed and recorded as failed |
| `BENCH_DOC` | docs/benchmarks.md | the file to rewrite |
| `BENCH_KEEP_LOGS` | (none) | a directory to copy every run's logs and the writer's raw latencies to (one subdirectory per server) |
| `BENCH_SERVER_ARGS` | (none) | extra `mariadbd` options (changes the comparison: say so when publishing) |
| `BENCH_MYSQL_SERVER_ARGS` | (none) | extra `mysqld` options (likewise) |
| `REVENANT_CACHE` | /var/cache/revenant | where `scripts/install-deps` put the MySQL chroot (`mysql-sid`) |

A run with 1,000,000 rows took about 4 minutes on MariaDB alone on this 2-core machine (plus the release build);
MySQL's copies were 1.2-2x slower than MariaDB's here, so expect roughly 10-12 minutes for both servers: start
it with `nohup scripts/bench > bench.log 2>&1 &`. For a quick check of the script use `BENCH_ROWS=20000` with
`BENCH_DOC=/tmp/bench-check.md` (about 2.5 minutes for both servers).
`BENCH_REPEAT` defaults to 1 because the machine is slow, so the published figures are single runs; the
machine is shared with other work (builds, test suites), which the load averages in the section above hint at.

Differences between the servers that the script handles:

- MySQL 9.7 makes a plain `ADD COLUMN` INSTANT, so the server's own methods say `ALGORITHM=COPY` and
  `FORCE, ALGORITHM=INPLACE` explicitly (the same statements run on MariaDB).
- MySQL 9.7 has no `SHOW MASTER STATUS` (the script uses `SHOW BINARY LOG STATUS` there) and no
  `innodb_max_purge_lag_wait` (it polls the InnoDB history list length instead, at most 60 s).
- pt-online-schema-change 3.2.1 looks for replicas with `SHOW SLAVE HOSTS`, which MySQL 9.7 no longer has: it
  runs with `--recursion-method=none` on both servers (these servers have no replicas).
- MySQL's root uses caching_sha2_password (9.7 has no mysql_native_password); with the empty password of
  `--initialize-insecure` the mariadb client and DBD::mysql (libmariadb) log in over TCP without TLS.
- The seed table says `DEFAULT CHARSET=utf8mb4` so that both servers store the same character set (MariaDB
  10.11's built-in default is latin1); the data is ASCII either way.

Notes on the method:

- Times are wall-clock times of the whole command (client start-up included): for pt-osc and revenant, from
  start to exit, dropping the old table included; for INSERT ... SELECT, the three statements together.
- The writer (`scripts/bench-helpers/writer.pl`, Perl DBI + DBD::mysql, which percona-toolkit already needs) times
  every write on its own with Time::HiRes. One connection doing one autocommit write after the other could not
  reach 500 writes/s here (about 250-300/s: commits average about 3.6 ms), so by default the rate is shared by
  4 connections; `BENCH_WRITER_CONNECTIONS=1` gives the single-connection variant.
- The `max` of the writer is the slowest write that overlapped the migration, whatever the phase: for revenant
  the section above also splits it into the cut-over (its times read from revenant's log) and the rest.
- Every run is checked (column `f` present; `COUNT(*)` of the migrated table equal to the original's, seeded
  rows plus the writer's inserts minus its deletes); a failing run is reported with its exit status and the end
  of its output, and the benchmark goes on with the next run.
- The targets are the issue's; they are measured and marked met / not met, never asserted.
"""


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    cmd = sys.argv[1]
    if cmd == "stats":
        cmd_stats(*sys.argv[2:7])
    elif cmd == "cutover":
        cmd_cutover(sys.argv[2])
    elif cmd == "add":
        cmd_add(sys.argv[2], sys.argv[3:])
    elif cmd == "render":
        cmd_render(*sys.argv[2:5])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
