"""What scripts/make-transitions.py and scripts/make-anticipation.py share: FFmpeg CLI helpers,
shot intervals and atomic writes. Standard library only; imported from the scripts' own folder."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path


def interrupt(signum, frame):
    """A SIGTERM handler: stop as Ctrl-C does."""
    raise KeyboardInterrupt


def ffmpeg_version() -> str:
    r = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True)
    return r.stdout.splitlines()[0] if r.stdout else "unknown"


def clip_shots(shots_: list[list[float]], lo: float, hi: float) -> list[list[float]]:
    """The parts of `shots_` inside [lo, hi] that are still worth drawing from."""
    out = []
    for a, b in shots_:
        a, b = max(a, lo), min(b, hi)
        if b - a > 0.3:
            out.append([round(a, 3), round(b, 3)])
    return out


def count_frames(path: Path) -> int:
    r = subprocess.run(
        [
            "ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
            "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(path),
        ],
        capture_output=True,
        text=True,
    )
    try:
        return int(r.stdout.strip().split(",")[0])
    except ValueError:
        return -1


def tail(text: str, lines: int) -> str:
    t = [ln for ln in text.strip().splitlines() if ln.strip()][-lines:]
    return " | ".join(t) if t else "(no message)"


def write_atomic(path: Path, text: str) -> None:
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    part.write_text(text)
    os.replace(part, path)
