#!/usr/bin/env python3
"""Make an ANOMALY set from real footage, reproducibly: each video with 1.6 s anomalies
injected at known times, and a CSV of where they are.

    scripts/make-anomalies.py --media ../shared/media --out /tmp/anomalies

Kinds, each replacing 1.6 s (40 frames) of the video from its start time:
  frozen    the frame at the start held (a stalled feed)
  black     black frames (a covered or dead camera)
  splice    1.6 s of another video (an edit, a switched feed)
  reversed  the same 1.6 s played backwards
  speedup   the next 3.2 s played in 1.6 s (the video then resumes 1.6 s later)
The videos: vtest.avi cut in three (a street camera: tuning uses part a only), tree.avi,
bikes.mp4 and Megamind_bugy.avi (damaged on purpose: its damage is part of its normal), and
parts b and c again with splices (from tree.avi and bigbuckbunny.mp4), freezes and black
stretches only (vtest-d, vtest-e: the
held-out videos then hold 6 splices; their normal footage is parts b and c again). Kinds
rotate through KINDS from a different place in each video, except where a video lists its own. Every
output is 25 frames/s, its source's size, H.264 (libx264 defaults). OUT/anomalies.csv lists
video,kind,start,end,tuning (1 for the videos thresholds may be tuned on). Standard library and
the ffmpeg CLI only.
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from footage import ffmpeg_version, interrupt, write_atomic  # noqa: E402

KINDS = ["frozen", "black", "splice", "reversed", "speedup"]
LENGTH = 1.6  # 40 frames
GAP = 4.0  # normal seconds between anomalies (100 frames)
FPS = 25
# (name, source, start, end, tuning, the video spliced in, its kinds in order or None)
VIDEOS = [
    ("vtest-a", "vtest.avi", 0.0, 26.0, True, "tree.avi", None),
    ("vtest-b", "vtest.avi", 26.0, 52.0, False, "bikes.mp4", None),
    ("vtest-c", "vtest.avi", 52.0, 79.0, False, "Megamind_bugy.avi", None),
    ("tree", "tree.avi", 0.0, 29.5, True, "vtest.avi", None),
    ("bikes", "bikes.mp4", 0.0, 10.0, False, "tree.avi", None),
    ("megamind", "Megamind_bugy.avi", 0.0, 9.0, False, "bikes.mp4", None),
    ("vtest-d", "vtest.avi", 26.0, 52.0, False, "tree.avi", ["splice", "frozen", "splice", "black"]),
    ("vtest-e", "vtest.avi", 52.0, 79.0, False, "bigbuckbunny.mp4", ["splice", "black", "splice", "frozen"]),
]


def probe_size(path: Path) -> tuple[int, int]:
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
         "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    )
    w, h = r.stdout.strip().split(",")[:2]
    return int(w) // 2 * 2, int(h) // 2 * 2


def exact(segment: str, seconds: float | None) -> str:
    """`segment` cut to exactly `seconds` of FPS frames (timestamps from zero), so the
    anomalies' times in the CSV are where the frames are."""
    if seconds is None:
        return segment + ",setpts=N/(25*TB)"
    return segment + f",trim=end_frame={round(seconds * FPS)},setpts=N/(25*TB)"


def build(name, src: Path, lo: float, hi: float, other: Path, kinds: list[str], out: Path):
    """The filter graph and the anomalies' times (in the output's timeline)."""
    w, h = probe_size(src)
    norm = f"fps=25,scale={w}:{h},setsar=1,format=yuv420p"
    parts, rows = [], []
    t_src, t_out, k = lo, 0.0, 0
    while True:
        normal_end = t_src + GAP
        kind = kinds[k % len(kinds)]
        need = 2 * LENGTH if kind == "speedup" else LENGTH
        if normal_end + need + 1.0 > hi:
            break
        parts.append(exact(f"[0:v]trim=start={t_src:.3f}:end={normal_end + 0.5:.3f},setpts=PTS-STARTPTS,{norm}", GAP))
        t_out += normal_end - t_src
        a = normal_end
        if kind == "frozen":
            seg = (f"[0:v]trim=start={a:.3f}:duration=0.2,setpts=PTS-STARTPTS,{norm},"
                   f"trim=end_frame=1,tpad=stop_mode=clone:stop_duration={LENGTH + 0.2}")
            t_src = a + LENGTH
        elif kind == "black":
            seg = f"color=black:s={w}x{h}:r=25:d={LENGTH + 0.2},format=yuv420p,setsar=1"
            t_src = a + LENGTH
        elif kind == "splice":
            seg = f"[1:v]trim=start=1.0:duration={LENGTH + 0.2},setpts=PTS-STARTPTS,{norm}"
            t_src = a + LENGTH
        elif kind == "reversed":
            seg = f"[0:v]trim=start={a:.3f}:duration={LENGTH + 0.2},setpts=PTS-STARTPTS,reverse,{norm}"
            t_src = a + LENGTH
        else:
            seg = f"[0:v]trim=start={a:.3f}:duration={2 * LENGTH + 0.4},setpts=0.5*(PTS-STARTPTS),{norm}"
            t_src = a + 2 * LENGTH
        parts.append(exact(seg, LENGTH))
        rows.append((kind, round(t_out, 3), round(t_out + LENGTH, 3)))
        t_out += LENGTH
        k += 1
    parts.append(exact(f"[0:v]trim=start={t_src:.3f}:end={hi:.3f},setpts=PTS-STARTPTS,{norm}", None))
    graph = ";".join(f"{p}[p{i}]" for i, p in enumerate(parts))
    graph += ";" + "".join(f"[p{i}]" for i in range(len(parts))) + f"concat=n={len(parts)}:v=1:a=0[out]"
    tmp = out.with_name(out.stem + ".tmp.mp4")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-i", str(other), "-filter_complex", graph,
         "-map", "[out]", "-an", "-c:v", "libx264", str(tmp)],
        check=True,
    )
    tmp.replace(out)
    return rows


def main() -> None:
    signal.signal(signal.SIGTERM, interrupt)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--media", type=Path, default=Path("../shared/media"))
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    lines = [f"# made by scripts/make-anomalies.py with {ffmpeg_version()}", "video,kind,start,end,tuning"]
    for i, (name, source, lo, hi, tuning, other, kinds) in enumerate(VIDEOS):
        out = args.out / f"{name}.mp4"
        k = i % len(KINDS)
        kinds = kinds or KINDS[k:] + KINDS[:k]
        rows = build(name, args.media / source, lo, hi, args.media / other, kinds, out)
        for kind, a, b in rows:
            lines.append(f"{out.name},{kind},{a},{b},{int(tuning)}")
        print(f"{out.name}: {len(rows)} anomalies", file=sys.stderr)
    write_atomic(args.out / "anomalies.csv", "\n".join(lines) + "\n")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
