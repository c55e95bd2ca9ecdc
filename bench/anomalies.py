#!/usr/bin/env python3
"""Score `pipeline run`'s anomaly events on a set made by scripts/make-anomalies.py: per kind,
the share of injected anomalies an `anomaly:` event overlaps, and false alarms (events that
overlap none) per 10 minutes of normal footage, for several --sensitivity values.

    bench/anomalies.py --set /tmp/anomalies --pipeline target/debug/pipeline [--sensitivity 0.5 1 2]

An event overlaps an anomaly when its interval meets the anomaly's, widened by TOLERANCE on
each side (one sample of the built-in forecaster's 4 a second). Rows are given for the videos
tuning may use and for the held-out ones separately. Standard library only.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

TOLERANCE = 0.3
SINCE = re.compile(r"since ([0-9.]+) s")
SPAN = re.compile(r"([0-9.]+)-([0-9.]+) s\)")


def events(records: list[dict]) -> list[tuple[str, float, float]]:
    """(kind, start, end) of every anomaly in the records."""
    out, open_ = [], {}
    for r in records:
        t = r["timestamp"]
        for e in r["events"]:
            if not e.startswith("anomaly: "):
                continue
            words = e[len("anomaly: "):].split()
            kind = words[0]
            if len(words) > 1 and words[1] == "ends":
                m = SPAN.search(e)
                open_.pop(kind, None)
                out.append((kind, float(m.group(1)), float(m.group(2))))
            elif kind in ("cut", "reversed"):
                m = SPAN.search(e)
                out.append((kind, float(m.group(1)), float(m.group(2))))
            else:
                m = SINCE.search(e)
                open_[kind] = float(m.group(1)) if m else t
    end = records[-1]["timestamp"] if records else 0.0
    out += [(k, s, end) for k, s in open_.items()]
    return out


def overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] + TOLERANCE and b[0] <= a[1] + TOLERANCE


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", type=Path, required=True)
    ap.add_argument("--pipeline", default="pipeline")
    ap.add_argument("--sensitivity", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    ap.add_argument("--normal", type=Path, nargs="*", default=[],
                    help="unmodified videos: every anomaly event on them is a false alarm")
    ap.add_argument("--json", type=Path, help="write the rows here too")
    args = ap.parse_args()
    truth = defaultdict(list)
    tuning = {}
    with open(args.set / "anomalies.csv") as f:
        for row in csv.DictReader(line for line in f if not line.startswith("#")):
            truth[row["video"]].append((row["kind"], float(row["start"]), float(row["end"])))
            tuning[row["video"]] = row["tuning"] == "1"
    table = []
    for s in args.sensitivity:
        found = defaultdict(lambda: [0, 0])  # (group, kind) -> [detected, total]
        alarms = defaultdict(float)
        normal = defaultdict(float)
        detail = {}
        for video, anomalies in sorted(truth.items()):
            group = "tuning" if tuning[video] else "held out"
            r = subprocess.run(
                [args.pipeline, "run", str(args.set / video), "--sensitivity", str(s)],
                capture_output=True, text=True,
            )
            if r.returncode != 0:
                sys.exit(f"{video}: pipeline run failed: {r.stderr.strip().splitlines()[-1:]}")
            records = [json.loads(line) for line in r.stdout.splitlines()]
            got = events(records)
            length = records[-1]["timestamp"] if records else 0.0
            for kind, a, b in anomalies:
                hit = any(overlaps((a, b), (ga, gb)) for _, ga, gb in got)
                found[(group, kind)][0] += hit
                found[(group, kind)][1] += 1
            false = [g for g in got if not any(overlaps((a, b), (g[1], g[2])) for _, a, b in anomalies)]
            alarms[group] += len(false)
            normal[group] += length - sum(b - a for _, a, b in anomalies)
            detail[video] = {"events": got, "false": false}
        for video in args.normal:
            r = subprocess.run(
                [args.pipeline, "run", str(video), "--sensitivity", str(s)],
                capture_output=True, text=True,
            )
            if r.returncode != 0:
                sys.exit(f"{video}: pipeline run failed")
            records = [json.loads(line) for line in r.stdout.splitlines()]
            got = events(records)
            alarms["unmodified"] += len(got)
            normal["unmodified"] += records[-1]["timestamp"] if records else 0.0
            detail[video.name] = {"events": got, "false": got}
        for group in ("tuning", "held out", "unmodified"):
            if normal[group] == 0:
                continue
            row = {"sensitivity": s, "videos": group}
            for kind in ["frozen", "black", "splice", "reversed", "speedup"]:
                d, n = found[(group, kind)]
                row[kind] = f"{d}/{n}" if n else "-"
            row["false alarms / 10 min"] = round(alarms[group] / max(normal[group], 1e-9) * 600, 1)
            row["normal minutes"] = round(normal[group] / 60, 2)
            table.append(row)
            print(json.dumps(row), flush=True)
        if s == 1.0:
            print(json.dumps({k: v["false"] for k, v in detail.items()}), file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(table, indent=1) + "\n")


if __name__ == "__main__":
    main()
