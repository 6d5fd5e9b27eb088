#!/usr/bin/env python3
"""rate-trace.py: why a window of the rate was narrow.

    scripts/rate-trace.py SIM_LOG IMPORTER_LOG... [--rate R] [--show N]

SIM_LOG is kommo-sim's log with --verbose (one "request" line per arrival);
each IMPORTER_LOG is a kommo-import log with --log-level debug (one "request
written" line per request: its slot, when the slot was reserved, when the
request was written, its round trip). All on one machine, so one clock.

Each arrival is matched to the latest write before it not matched yet (within
0.5 s). Printed: how many matched; the way from write to arrival and the
lateness of writes after their slots (percentiles); the narrowest spans of
floor(R)+1 requests in a row as the simulator saw them, and for the N
narrowest under a second every request in it: its process, endpoint, status,
the gap to the one before, its write after its slot, its way, its round trip,
whether its slot was shared and how far ahead it was reserved. A narrow
window then shows which request came late, by how much, and where (before
the write or on the way). make soak TRACE=1 runs it.
"""
import argparse
import bisect
import math
import os
import re
from datetime import datetime


def parse_time(s):
    whole, _, frac = s.rstrip("Z").partition(".")
    return datetime.fromisoformat(whole + "+00:00").timestamp() + float("0." + (frac or "0"))


def arrivals(path):
    out = []
    for line in open(path, encoding="utf-8", errors="replace"):
        if "msg=request " not in line:
            continue
        kv = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))
        if "arrived" in kv:
            out.append((parse_time(kv["arrived"]), kv.get("endpoint", "?"), kv.get("status", "?").strip('"')))
    out.sort()
    return out


def writes(paths):
    out = []
    for path in paths:
        proc = os.path.basename(path).rsplit(".", 1)[0]
        for line in open(path, encoding="utf-8", errors="replace"):
            if 'msg="request written"' not in line:
                continue
            kv = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))
            reserved = int(kv["reserved_ns"]) / 1e9
            out.append(dict(proc=proc, slot=int(kv["slot_ns"]) / 1e9, reserved=reserved if reserved > 0 else None,
                            wrote=int(kv["wrote_ns"]) / 1e9, rtt=int(kv["round_trip_ns"]) / 1e9,
                            shared=kv["shared"] == "true"))
    out.sort(key=lambda w: w["wrote"])
    return out


def pct(xs, p):
    return xs[min(int(p * len(xs)), len(xs) - 1)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sim_log")
    ap.add_argument("importer_logs", nargs="+")
    ap.add_argument("--rate", type=float, default=7)
    ap.add_argument("--show", type=int, default=5)
    a = ap.parse_args()
    arr, wr = arrivals(a.sim_log), writes(a.importer_logs)
    if not arr or not wr:
        raise SystemExit(f"rate-trace: {len(arr)} arrivals (kommo-sim --verbose?), {len(wr)} writes "
                         "(kommo-import --log-level debug?): nothing to match")
    ws = [w["wrote"] for w in wr]
    used = [False] * len(wr)
    match = []
    for t, _, _ in arr:
        i = bisect.bisect_right(ws, t) - 1
        while i >= 0 and used[i] and t - ws[i] <= 0.5:
            i -= 1
        if i < 0 or used[i] or t - ws[i] > 0.5:
            match.append(None)
            continue
        used[i] = True
        match.append(i)
    unmatched = sum(m is None for m in match)
    print(f"{len(arr)} requests arrived at kommo-sim, {len(wr)} written by kommo-import, {unmatched} arrivals unmatched")
    ways = sorted(t - wr[m]["wrote"] for (t, _, _), m in zip(arr, match) if m is not None)
    late = sorted(wr[m]["wrote"] - wr[m]["slot"] for m in match if m is not None)
    for name, xs in (("way, write to arrival", ways), ("write after its slot", late)):
        print(f"{name:22} ms: p50 {pct(xs, .5) * 1e3:.2f}  p90 {pct(xs, .9) * 1e3:.2f}  p99 {pct(xs, .99) * 1e3:.2f}  "
              f"p99.9 {pct(xs, .999) * 1e3:.2f}  max {xs[-1] * 1e3:.2f}")
    k = math.floor(a.rate) + 1
    spans = sorted((arr[i][0] - arr[i - k + 1][0], i) for i in range(k - 1, len(arr)))
    print(f"narrowest {k} requests in a row, ms: " + ", ".join(f"{s * 1e3:.1f}" for s, _ in spans[:10]))
    for s, i in spans[:a.show]:
        if s >= 1.0:
            break
        print(f"-- {k} requests in {s * 1e3:.1f} ms")
        for j in range(i - k + 1, i + 1):
            t, endpoint, status = arr[j]
            m = match[j]
            when = datetime.utcfromtimestamp(t).strftime("%H:%M:%S.%f")[:-3]
            gap = (t - arr[j - 1][0]) * 1e3 if j > 0 else 0
            if m is None:
                print(f"   {when}  {'?':8} {endpoint:13} {status:5} +{gap:6.1f} ms  (no write matched)")
                continue
            w = wr[m]
            ahead = f"{(w['slot'] - w['reserved']) * 1e3:6.1f}" if w["reserved"] else "     -"
            print(f"   {when}  {w['proc']:8} {endpoint:13} {status:5} +{gap:6.1f} ms  wrote {(w['wrote'] - w['slot']) * 1e3:6.1f} "
                  f"after its slot, way {(t - w['wrote']) * 1e3:5.2f}, round trip {w['rtt'] * 1e3:6.1f}, "
                  f"{'shared' if w['shared'] else 'alone '} slot reserved {ahead} ms ahead")


if __name__ == "__main__":
    main()
