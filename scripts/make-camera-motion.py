#!/usr/bin/env python3
"""Make a labelled CAMERA-MOTION set from real footage, reproducibly: 2 s clips of a virtual
camera moving over real videos (pan left, pan right, zoom in, zoom out, static), the test
clips cut from source videos that no training clip comes from.

    scripts/make-camera-motion.py --media ../shared/media --out /tmp/camera-motion

Layout: OUT/train/<class>/*.mp4 and OUT/test/<class>/*.mp4 (pipeline train holds val out of
train by --val-fraction, grouped by source with --group-by '^([a-z_]+)-'). Each clip is a crop
of 60% of the source's width (pans: the crop travels 24-40% of the source's width in 2 s,
0.2-0.33 frame widths a second; zooms: 1x to 1.5x or back, 0.2 a second), scaled to 320x180,
25 frames/s, H.264 (libx264 defaults). `static`: the same crop still, over footage that may
have its own camera motion (that is the point: the class is the virtual camera's). Standard
library and the ffmpeg CLI only.
"""
from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from footage import ffmpeg_version, interrupt, write_atomic  # noqa: E402

CLASSES = ["pan-left", "pan-right", "zoom-in", "zoom-out", "static"]
# Sources whose clips train the heads, and sources kept for the test split alone.
TRAIN = ["vtest.avi", "tree.avi", "Megamind_bugy.avi"]
TEST = ["bikes.mp4", "bigbuckbunny.mp4"]
SECONDS = 2.0


def duration(path: Path) -> float:
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    )
    return float(r.stdout.strip())


def camera(kind: str, rng: random.Random) -> str:
    """The filter that moves the virtual camera, ending at 320x180."""
    if kind.startswith("pan"):
        travel = rng.uniform(0.24, 0.40)  # of the source's width, over SECONDS
        start = rng.uniform(0.0, 0.4 - travel)
        x = f"iw*({start:.4f}+{travel:.4f}*t/{SECONDS})"
        if kind == "pan-left":
            x = f"iw*({start + travel:.4f}-{travel:.4f}*t/{SECONDS})"
        y = f"(ih-oh)*{rng.uniform(0.2, 0.8):.3f}"
        return f"crop=w=iw*0.6:h=ih*0.6:x='{x}':y='{y}',scale=320:180"
    if kind.startswith("zoom"):
        frames = int(SECONDS * 25)
        z = f"1+0.5*on/{frames}" if kind == "zoom-in" else f"1.5-0.5*on/{frames}"
        return (
            "fps=25,crop=w=iw*0.6:h=ih*0.6,"
            f"zoompan=z='{z}':x='iw/2-iw/zoom/2':y='ih/2-ih/zoom/2':d=1:s=320x180:fps=25"
        )
    x, y = rng.uniform(0.0, 0.4), rng.uniform(0.0, 0.4)
    return f"crop=w=iw*0.6:h=ih*0.6:x=iw*{x:.3f}:y=ih*{y:.3f},scale=320:180"


def make(src: Path, start: float, kind: str, out: Path, rng: random.Random) -> None:
    tmp = out.with_name(out.stem + ".tmp.mp4")
    cmd = [
        "ffmpeg", "-v", "error", "-y", "-ss", f"{start:.3f}", "-i", str(src), "-t", str(SECONDS),
        "-vf", f"fps=25,{camera(kind, rng)},format=yuv420p", "-an", "-c:v", "libx264", str(tmp),
    ]
    subprocess.run(cmd, check=True)
    tmp.replace(out)


def main() -> None:
    signal.signal(signal.SIGTERM, interrupt)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--media", type=Path, default=Path("../shared/media"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--per-class", type=int, default=24, help="training clips per class and source")
    ap.add_argument("--test-per-class", type=int, default=8, help="test clips per class and source")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    rows = []
    for split, sources, n in [("train", TRAIN, args.per_class), ("test", TEST, args.test_per_class)]:
        for name in sources:
            src = args.media / name
            length = duration(src)
            stem = Path(name).stem.lower()
            for kind in CLASSES:
                folder = args.out / split / kind
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(n):
                    start = rng.uniform(0.0, max(0.0, length - SECONDS - 0.1))
                    out = folder / f"{stem}-{i:03d}.mp4"
                    if not out.exists():
                        make(src, start, kind, out, rng)
                    rows.append(f"{split},{kind},{out.relative_to(args.out)},{name},{start:.3f}")
        print(f"{split}: {len(rows)} clips so far", file=sys.stderr)
    write_atomic(
        args.out / "SOURCES.csv",
        f"# made by scripts/make-camera-motion.py --seed {args.seed} with {ffmpeg_version()}\n"
        "split,class,clip,source,start\n" + "\n".join(rows) + "\n",
    )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
