#!/usr/bin/env python3
"""bench/report.py WORKDIR RESULTS.md HISTORY.md|-

Turns the tsv files that bench/run's scenarios wrote into WORKDIR into bench/RESULTS.md
(overwritten) and, unless HISTORY is '-', appends a dated section with the raw numbers to
bench/history.md. Standard library only.
"""
import math
import os
import statistics
import sys
from collections import OrderedDict, defaultdict


def read_tsv(work, name, width):
    path = os.path.join(work, name)
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            parts = line.split("\t")
            parts += [""] * (width - len(parts))
            rows.append(parts[:width])
    return rows


def fmt_rate(r):
    return "—" if r is None else f"{r:,.0f}"


def fmt_s(s):
    return "—" if s is None else f"{s:.3f}"


def fmt_ratio(r):
    # Three decimals: with two, 0.975 and 0.985 would both read 0.98 beside a 0.98 target.
    return "—" if r is None else f"{r:.3f}×"


def fmt_ms(s):
    return "—" if s is None else f"{s * 1000:.1f}"


def p90(values):
    """Nearest-rank 90th percentile: the smallest value with >= 90% of the values <= it."""
    if not values:
        return None
    v = sorted(values)
    return v[max(1, math.ceil(0.9 * len(v))) - 1]


class Contender:
    def __init__(self, sc, key, label, how, ref):
        self.sc, self.key, self.label, self.how, self.ref = sc, key, label, how, ref == "ref"
        self.runs = []  # (rep, rows, seconds, status, note)

    def ok_times(self):
        return [s for (_, _, s, st, _) in self.runs if st == "ok" and s is not None]

    def statuses(self):
        return [st for (_, _, _, st, _) in self.runs]

    @property
    def rows(self):
        for (_, rows, _, _, _) in self.runs:
            if rows:
                return int(rows)
        return None

    @property
    def median(self):
        t = self.ok_times()
        return statistics.median(t) if t else None

    @property
    def rate(self):
        m = self.median
        return self.rows / m if m and self.rows else None

    def state(self):
        sts = self.statuses()
        if not sts:
            return "not run"
        if "n/a" in sts:
            note = next(n for (_, _, _, st, n) in self.runs if st == "n/a")
            return note or "not available"
        parts = []
        ok = sts.count("ok")
        if sts.count("wrong"):
            parts.append(f"WRONG RESULT in {sts.count('wrong')} of {len(sts)} runs")
        if sts.count("failed"):
            err = next(n for (_, _, _, st, n) in self.runs if st == "failed")
            parts.append(f"FAILED in {sts.count('failed')} of {len(sts)} runs: {err}")
        if not parts:
            parts.append(f"ok ({ok} runs, results verified)")
        return "; ".join(parts)


def main():
    work, results_path, history_path = sys.argv[1:4]
    meta = OrderedDict()
    settings = defaultdict(OrderedDict)  # cluster -> guc -> value
    for k, v in read_tsv(work, "meta.tsv", 2):
        if k.startswith("setting:"):
            _, cluster, guc = k.split(":", 2)
            settings[cluster][guc] = v
        else:
            meta[k] = v
    scenarios = OrderedDict((r[0], (r[1], r[2])) for r in read_tsv(work, "scenarios.tsv", 3))
    contenders = OrderedDict()
    for sc, key, label, how, ref in read_tsv(work, "contenders.tsv", 5):
        contenders[(sc, key)] = Contender(sc, key, label, how, ref)
    for sc, key, rep, rows, secs, status, note in read_tsv(work, "results.tsv", 7):
        c = contenders.setdefault((sc, key), Contender(sc, key, key, "", ""))
        c.runs.append((rep, rows, float(secs) if secs else None, status, note))
    targets = read_tsv(work, "targets.tsv", 5)
    # latencies: declared like contenders (no rows), samples in seconds
    latencies = OrderedDict()
    for sc, key, label, how in read_tsv(work, "latency_metrics.tsv", 4):
        latencies[(sc, key)] = Contender(sc, key, label, how, "")
    for sc, key, run, secs, status, note in read_tsv(work, "latency.tsv", 6):
        c = latencies.setdefault((sc, key), Contender(sc, key, key, "", ""))
        c.runs.append((run, None, float(secs) if secs else None, status, note))
    # other measured values (e.g. peak memory in MiB): declared with a unit, median per metric
    measures = OrderedDict()
    units = {}
    for sc, key, label, unit, how in read_tsv(work, "measure_metrics.tsv", 5):
        measures[(sc, key)] = Contender(sc, key, label, how, "")
        units[(sc, key)] = unit
    for sc, key, run, value, status, note in read_tsv(work, "measures.tsv", 6):
        c = measures.setdefault((sc, key), Contender(sc, key, key, "", ""))
        c.runs.append((run, None, float(value) if value else None, status, note))
    bounds = read_tsv(work, "bounds.tsv", 5)  # SC label NUM_KEY DEN_KEY MAX
    how_lines = read_tsv(work, "how.tsv", 2)  # SC text
    compares = read_tsv(work, "compare.tsv", 5)  # SC label NUM_KEY DEN_SC DEN_KEY
    notes = defaultdict(list)
    for sc, text in read_tsv(work, "notes.tsv", 2):
        notes[sc].append(text)

    def ratio(sc, num, den):
        a, b = contenders.get((sc, num)), contenders.get((sc, den))
        if not a or not b or a.rate is None or b.rate is None:
            return None
        return a.rate / b.rate

    def paired(sc, num, den):
        """Rate ratios of the two contenders' runs in the same round (rep), min and max: how
        much of the ratio of medians is the machine drifting between rounds."""
        a, b = contenders.get((sc, num)), contenders.get((sc, den))
        if not a or not b:
            return None

        def by_rep(c):
            return {rep: int(rows) / sec for (rep, rows, sec, st, _) in c.runs
                    if st == "ok" and sec and rows}
        ra, rb = by_rep(a), by_rep(b)
        rs = [ra[k] / rb[k] for k in ra if k in rb and rb[k]]
        return (min(rs), max(rs), len(rs)) if rs else None

    def fmt_paired(sc, num, den):
        p = paired(sc, num, den)
        if p is None:
            return "—"
        lo, hi, n = p
        return f"{lo:.3f} – {hi:.3f} ({n})"

    def target_rows():
        out = []
        for sc, label, num, den, mn in targets:
            r = ratio(sc, num, den)
            a, b = contenders.get((sc, num)), contenders.get((sc, den))
            bad = any(c and ("wrong" in c.statuses()) for c in (a, b))
            # A median over fewer runs than the others is not the same measurement.
            failed = any(c and ("failed" in c.statuses()) for c in (a, b))
            if r is None:
                why = [c.label for c in (a, b) if c and c.rate is None]
                verdict = "NOT MEASURED" + (f" ({', '.join(why)}: see below)" if why else "")
            elif bad:
                verdict = "INVALID (a contender produced a wrong end state)"
            elif failed and mn:
                verdict = "INCOMPLETE (a run of a contender failed: see below)"
            elif not mn:
                verdict = "(no target)"
            else:
                verdict = "PASS" if r >= float(mn) else "SHORT"
            out.append((sc, label, f"≥ {mn}×" if mn else "—", r, verdict, fmt_paired(sc, num, den)))
        # upper bounds on a ratio of two measured values (e.g. peak memory at two sizes)
        for sc, label, num, den, mx in bounds:
            a, b = measures.get((sc, num)), measures.get((sc, den))
            r = a.median / b.median if a and b and a.median and b.median else None
            if r is None:
                why = [c.label for c in (a, b) if c and c.median is None]
                verdict = "NOT MEASURED" + (f" ({', '.join(why)}: see below)" if why else "")
            elif any("wrong" in c.statuses() for c in (a, b)):
                verdict = "INVALID (a run produced a wrong end state)"
            else:
                verdict = "PASS" if r <= float(mx) else "SHORT"
            out.append((sc, label, f"≤ {mx}×", r, verdict, "—"))
        order = {sc: i for i, sc in enumerate(scenarios)}
        return sorted(out, key=lambda t: order.get(t[0], len(order)))  # stable: declared order

    status = meta.get("run_status", "?")
    L = []
    L.append("# pg_ingest benchmark results")
    L.append("")
    L.append("Written by `bench/run` (`make bench`); the previous runs' raw numbers are in "
             "[history.md](history.md).")
    L.append("")
    if status != "complete":
        L.append(f"**This run did not complete: {status}.** The numbers below are what was "
                 "measured before it stopped.")
        L.append("")
    L.append(f"- Date: {meta.get('date', '?')} ({meta.get('date_local', '')}); "
             f"run took {int(meta.get('run_seconds', '0')) // 60} min {int(meta.get('run_seconds', '0')) % 60} s")
    L.append(f"- Parameters: `{meta.get('params', '')}`; scenarios: {meta.get('scenarios', '')}")
    L.append(f"- Load average (1/5/15 min) before the run: {meta.get('loadavg_start', '?')}; at the end "
             f"(includes the benchmark itself): {meta.get('loadavg_end', '?')}. Anything else running on "
             "the machine adds noise.")
    L.append(f"- Code: git {meta.get('git', '?')}; pg_ingest library {meta.get('pg_ingest_so', '?')}; "
             f"extension {meta.get('pg_ingest_extension', '?')}")
    if "pg_ingest_so_changed" in meta:
        L.append(f"- **Warning: pg_ingest.so was reinstalled during the run** (now {meta['pg_ingest_so_changed']}); "
                 "clusters started after that (scenario C) may run a different build than A and B.")
    try:
        busy = float(meta.get("loadavg_start", "0").split()[0])
        if busy > 0.5 * int(meta.get("nproc", "1")):
            L.append(f"- **Warning: the machine was busy with other work** (1-min load average {busy:.2f} "
                     f"on {meta.get('nproc')} CPUs before the benchmark started); expect noisy numbers — "
                     "compare the min – max columns.")
    except ValueError:
        pass
    if "probe" in meta:
        L.append(f"- COPY ON CONFLICT probe: {meta['probe']}")
    L.append("")
    L.append("## Machine")
    L.append("")
    L.append("| | |")
    L.append("|---|---|")
    for k, name in (("cpu", "CPU"), ("nproc", "nproc"), ("memory", "memory"), ("kernel", "kernel"),
                    ("os", "OS"), ("disk", "disk"), ("host", "host")):
        L.append(f"| {name} | {meta.get(k, '?')} |")
    L.append("")
    L.append("## PostgreSQL")
    L.append("")
    clusters = list(settings.keys())
    if clusters:
        gucs = list(OrderedDict.fromkeys(g for c in clusters for g in settings[c]))
        names = {"main": "scenarios A, B, D, E, F", "c_ext": "C, with pg_ingest", "c_noext": "C, without"}
        L.append("Read with `SHOW` from the running servers (all started by `scripts/pg-tmp --durable`).")
        L.append("")
        L.append("| setting | " + " | ".join(names.get(c, c) for c in clusters) + " |")
        L.append("|---|" + "---|" * len(clusters))
        for g in gucs:
            L.append(f"| {g} | " + " | ".join(f"`{settings[c].get(g, '')}`" for c in clusters) + " |")
        L.append("")
    L.append(f"Client: {meta.get('psql', '?')}, on the same machine (Unix socket).")
    for k, v in meta.items():
        if k.startswith("program:"):
            L.append(f"Program `{k.split(':', 1)[1]}`: {v}.")
    L.append("")

    L.append("## Targets")
    L.append("")
    L.append("| scenario | ratio of medians (rows/s ÷ rows/s; for ≤ targets the measured values) | target | measured | result | same-round ratios, min – max (rounds) |")
    L.append("|---|---|---|---|---|---|")
    trows = target_rows()
    for sc, label, tgt, r, verdict, pr in trows:
        L.append(f"| {sc} | {label} | {tgt} | {fmt_ratio(r)} | **{verdict}** | {pr} |" if verdict in ("SHORT",) or verdict.startswith(("INVALID", "NOT", "INCOMPLETE")) else
                 f"| {sc} | {label} | {tgt} | {fmt_ratio(r)} | {verdict} | {pr} |")
    L.append("")
    L.append("Same-round ratios pair each run of one contender with the other's run in the same "
             "round (in scenarios A and B each round starts at a different contender), so drift "
             "of the machine between rounds shows as their spread.")
    L.append("")
    short = [t for t in trows if t[4] == "SHORT"]
    unmeasured = [t for t in trows if t[4].startswith(("NOT", "INVALID"))]
    if short:
        L.append("Fell short: " + "; ".join(f"{sc} {label} ({fmt_ratio(r)}, target {tgt})" for sc, label, tgt, r, _, _ in short) + ".")
        L.append("")
    if unmeasured:
        reasons = OrderedDict()
        for c in list(contenders.values()) + list(measures.values()):
            if c.median is None or "wrong" in c.statuses():
                reasons.setdefault(c.state(), []).append(f"{c.sc} {c.label}")
        L.append("Not measured or not valid:")
        L.append("")
        for why, who in reasons.items():
            L.append(f"- {', '.join(who)}: {why}")
        L.append("")

    for sc, (title, desc) in scenarios.items():
        L.append(f"## Scenario {sc}: {title}")
        L.append("")
        if desc:
            L.append(desc)
            L.append("")
        ref = next((c for c in contenders.values() if c.sc == sc and c.ref), None)
        L.append("| contender | rows timed | median s | rows/s | vs reference | min – max s | status |")
        L.append("|---|---:|---:|---:|---:|---:|---|")
        for c in contenders.values():
            if c.sc != sc:
                continue
            t = c.ok_times()
            rng = f"{min(t):.3f} – {max(t):.3f}" if t else "—"
            vs = (c.rate / ref.rate) if (ref and ref.rate and c.rate) else None
            rows = f"{c.rows:,}" if c.rows and c.rate else "—"
            L.append(f"| {c.label} | {rows} | {fmt_s(c.median)} | {fmt_rate(c.rate)} | "
                     f"{'reference' if c.ref else fmt_ratio(vs)} | {rng} | {c.state()} |")
        L.append("")
        lats = [c for c in latencies.values() if c.sc == sc]
        if lats:
            L.append("Latency (milliseconds; median and p90 = nearest rank, over the verified runs):")
            L.append("")
            L.append("| measure | runs | median ms | p90 ms | min – max ms | status |")
            L.append("|---|---:|---:|---:|---:|---|")
            for c in lats:
                t = c.ok_times()
                rng = f"{min(t) * 1000:.1f} – {max(t) * 1000:.1f}" if t else "—"
                L.append(f"| {c.label} | {len(t)} | {fmt_ms(c.median)} | {fmt_ms(p90(t))} | {rng} | {c.state()} |")
            L.append("")
        meas = [c for c in measures.values() if c.sc == sc]
        if meas:
            L.append("| measure | runs | median | min – max | status |")
            L.append("|---|---:|---:|---:|---|")
            for c in meas:
                t = c.ok_times()
                u = units.get((c.sc, c.key), "")
                rng = f"{min(t):,.1f} – {max(t):,.1f} {u}" if t else "—"
                med = f"{c.median:,.1f} {u}" if c.median is not None else "—"
                L.append(f"| {c.label} | {len(t)} | {med} | {rng} | {c.state()} |")
            L.append("")
        L.append("How each contender ran:")
        L.append("")
        for c in contenders.values():
            if c.sc == sc and c.how:
                L.append(f"- *{c.label}*: {c.how}")
        for c in lats:
            if c.how:
                L.append(f"- *{c.label}* (latency): {c.how}")
        for c in meas:
            if c.how:
                L.append(f"- *{c.label}*: {c.how}")
        for csc, label, num, dsc, den in compares:
            if csc != sc:
                continue
            a, b = contenders.get((csc, num)), contenders.get((dsc, den))
            if a and b and a.rate and b.rate:
                L.append(f"- {label}: {fmt_ratio(a.rate / b.rate)} ({fmt_rate(a.rate)} vs {fmt_rate(b.rate)} rows/s, medians)")
            else:
                why = [f"{c.sc} {c.label}: {c.state()}" for c in (a, b) if c and not c.rate]
                if not b:
                    why.append(f"scenario {dsc} did not run")
                L.append(f"- {label}: not measured in this run ({'; '.join(why)})")
        for n in notes.get(sc, []):
            L.append(f"- {n}")
        L.append("")

    L.append("## How measured")
    L.append("")
    L.append(
        "Unless a scenario's line below says otherwise, every number is the wall-clock time (bash `$EPOCHREALTIME`, µs resolution) of one `psql -X -f script` "
        "process run on the same machine over the Unix socket, so it includes psql start-up and connecting "
        "(a few ms) and, for COPY, reading and sending the CSV file from the client side (`\\copy`, i.e. "
        "`COPY ... FROM STDIN`). Before each timed load, untimed: a fresh copy of the pre-filled table "
        "(`CREATE TABLE target (LIKE base INCLUDING ALL)`, `INSERT ... SELECT`, autovacuum off for it, "
        "`VACUUM ANALYZE`) and a `CHECKPOINT` (in C on both clusters), so no checkpoint I/O is left over; "
        "the clusters are durable (fsync and synchronous_commit on). All contenders of a scenario use the "
        "same generated data (deterministic, from `generate_series` and md5 of the id) in the same row "
        "order; the psql contenders of A, B, C and F commit once (the client programs of E and the "
        "async jobs of D commit as their scenario says). Each round runs every contender once, rounds repeat "
        "(BENCH_REPEAT, in C BENCH_REPEAT_C with the two clusters alternating), after one untimed warm-up "
        "load; the table reports the median, and rows/s = rows timed / median seconds. After every "
        "timed load the end state is checked, untimed: row count and an order-independent checksum "
        "(sum of `hashtextextended(row::text, 0)`) must equal the expected state computed in SQL from the "
        "base and load tables, which is the same for every upsert contender (1.5N rows); the per-row "
        "contender loads only the first BENCH_PERROW_ROWS rows of the load (per-row is slow; rows/s "
        "is comparable, the rows are a random sample of the shuffled load) and is checked against base "
        "plus those rows; the plain COPY reference against base plus the N new rows (2N rows). In A, B, "
        "D and E the target's primary key index is checked against the table too (amcheck "
        "`bt_index_check(index, heapallindexed => true)`), since the direct apply path maintains it "
        "itself. A run with a wrong end state is excluded from the median and flagged; a target whose "
        "contender had a failed run is INCOMPLETE, not PASS or SHORT.")
    L.append("")
    for sc, text in how_lines:
        L.append(f"- Scenario {sc}: {text}")
    if how_lines:
        L.append("")
    if latencies:
        L.append("Contenders made of several client processes (the async load jobs of D) are timed by the "
                 "harness from before the first to after the last, as described under the scenario. "
                 "Latencies are taken per run as described under their scenario; a run counts only "
                 "when its job was verified, and the table gives the median and the nearest-rank p90.")
        L.append("")

    with open(results_path, "w", encoding="utf-8") as f:
        f.write("\n".join(L))

    if history_path != "-":
        H = []
        H.append(f"## {meta.get('date', '?')} — N={meta.get('params', '').split()[0].split('=')[-1]}, "
                 f"git {meta.get('git', '?')}, run {status}")
        H.append("")
        H.append(f"Machine: {meta.get('cpu', '?')}, nproc {meta.get('nproc', '?')}, {meta.get('memory', '?')}, "
                 f"{meta.get('kernel', '?')}; {settings.get('main', {}).get('server_version', '')}. "
                 f"`{meta.get('params', '')}`. Library: {meta.get('pg_ingest_so', '?')}.")
        H.append("")
        H.append("| scenario | contender | rows | seconds per run (status) | median s | rows/s |")
        H.append("|---|---|---:|---|---:|---:|")
        for c in contenders.values():
            runs = ", ".join(
                (f"{s:.3f}" if s is not None else "—") + ("" if st == "ok" else f" ({st})")
                for (_, _, s, st, _) in c.runs)
            H.append(f"| {c.sc} | {c.label} | {c.rows or '—'} | {runs or '—'} | {fmt_s(c.median)} | {fmt_rate(c.rate)} |")
        H.append("")
        for sc, label, tgt, r, verdict, pr in trows:
            H.append(f"- {sc} {label}: {fmt_ratio(r)} (target {tgt}) {verdict}; same-round {pr}")
        for c in measures.values():
            vals = ", ".join((f"{v:,.1f}" if v is not None else "—") + ("" if st == "ok" else f" ({st})")
                             for (_, _, v, st, _) in c.runs)
            H.append(f"- {c.sc} {c.label}: {vals or '—'} {units.get((c.sc, c.key), '')}")
        for c in latencies.values():
            t = c.ok_times()
            H.append(f"- {c.sc} latency, {c.label}: median {fmt_ms(c.median)} ms, p90 {fmt_ms(p90(t))} ms "
                     f"({len(t)} verified of {len(c.runs)} runs)")
        H.append("")
        new = not os.path.exists(history_path) or os.path.getsize(history_path) == 0
        with open(history_path, "a", encoding="utf-8") as f:
            if new:
                f.write("# pg_ingest benchmark history\n\nOne section per `bench/run`, appended; "
                        "the latest full report is RESULTS.md.\n\n")
            f.write("\n".join(H) + "\n")


if __name__ == "__main__":
    main()
