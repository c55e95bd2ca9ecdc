#!/usr/bin/env python3
"""How many live streams one `pipeline run` keeps up with on this machine, and at what latency.

    bench/live.py [VIDEO] --streams 1 2 4 8 --seconds 60 [--fps 4] [--pipeline PATH]

For each stream count N: N ffmpeg CLI servers play VIDEO (default: the 720p sample) in a loop,
in real time, over tcp on localhost (`-re -stream_loop -1 ... -c copy -f mpegts -listen 1`);
one `pipeline run` reads all N at `--fps` (one backbone, batches mixing their frames), is
stopped with SIGINT after `--seconds`, and each source's records are read back:

- records: how many came, against `seconds x fps` (a stream keeps up when it gets at least 95%
  of them with its p95 latency under a second);
- latency: each record's arrival-to-record seconds, median and 95th percentile over the
  streams' records together;
- dropped: frames the decoders dropped before conversion because the analysis was behind;
  skipped: packets the decoders skipped to catch up (to the next key frame) because decoding
  was behind; from the run's summaries on stderr.

Serving copies packets, so the servers cost little; the numbers are the pipeline's. Standard
library only.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DROPPED = re.compile(r"(\d+) frames dropped")
SKIPPED = re.compile(r"(\d+) packets skipped")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    text = Path("/proc/net/tcp").read_text()
    want = f":{port:04X}"
    return any(
        line.split()[1].endswith(want) and line.split()[3] == "0A"
        for line in text.splitlines()[1:]
    )


def quantile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[round((len(values) - 1) * q)] if values else float("nan")


def trial(video: Path, n: int, seconds: float, fps: float, pipeline: str) -> dict:
    servers, urls = [], []
    for _ in range(n):
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        servers.append(
            subprocess.Popen(
                ["ffmpeg", "-nostdin", "-v", "error", "-re", "-stream_loop", "-1",
                 "-i", str(video), "-an", "-c", "copy", "-f", "mpegts", "-listen", "1", url],
                # Its complaint when the run stops reading (a broken pipe) is not news.
                stderr=subprocess.DEVNULL,
            )
        )
        urls.append(url)
        deadline = time.time() + 10
        while not listening(port):
            if time.time() > deadline:
                sys.exit(f"the ffmpeg server on {url} did not start")
            time.sleep(0.02)
    with tempfile.TemporaryDirectory() as out:
        out_arg = out if n > 1 else str(Path(out) / "records.jsonl")
        run = subprocess.Popen(
            [pipeline, "run", *urls, "--fps", str(fps), "--reconnect", "0", "--out", out_arg],
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(seconds)
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=60)
        for s in servers:
            s.kill()
            s.wait()
        if run.returncode != 0:
            sys.exit(f"pipeline run exited {run.returncode}:\n{err}")
        counts, latencies = [], []
        for path in sorted(Path(out).glob("*.jsonl")):
            records = [json.loads(line) for line in path.read_text().splitlines()]
            counts.append(len(records))
            latencies.extend(r["latency"] for r in records)
    dropped = [int(m) for m in DROPPED.findall(err)]
    skipped = [int(m) for m in SKIPPED.findall(err)]
    expected = seconds * fps
    return {
        "streams": n,
        "records": counts,
        "expected": expected,
        "dropped": sum(dropped),
        "skipped": sum(skipped),
        "latency_median": quantile(latencies, 0.5),
        "latency_p95": quantile(latencies, 0.95),
        "keeps_up": all(c >= 0.95 * expected for c in counts)
        and quantile(latencies, 0.95) < 1.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("video", nargs="?", default=str(ROOT / "samples/bigbuckbunny.mp4"))
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--fps", type=float, default=4)
    ap.add_argument(
        "--pipeline",
        default=os.environ.get("PIPELINE", str(ROOT / "target/debug/pipeline")),
        help="the binary (default: $PIPELINE, else target/debug/pipeline)",
    )
    args = ap.parse_args()
    print(f"{'streams':>7} {'records per stream':>24} {'dropped':>8} {'skipped':>8} "
          f"{'latency median':>14} {'p95':>7}  keeps up")
    for n in args.streams:
        r = trial(Path(args.video), n, args.seconds, args.fps, args.pipeline)
        counts = f"{min(r['records'])}-{max(r['records'])} of {r['expected']:.0f}"
        print(f"{n:>7} {counts:>24} {r['dropped']:>8} {r['skipped']:>8} "
              f"{r['latency_median']:>12.3f} s "
              f"{r['latency_p95']:>5.3f} s  {'yes' if r['keeps_up'] else 'no'}", flush=True)


if __name__ == "__main__":
    main()
