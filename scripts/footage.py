"""What scripts/make-transitions.py and scripts/make-anticipation.py share: FFmpeg CLI helpers,
shot intervals and atomic writes. Standard library only; imported from the scripts' own folder."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

GUARD = 0.08  # seconds kept clear of a source's own scene cuts and of its end


class Fatal(Exception):
    """One line for the user, exit status 2."""


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


def probe(path: Path, hint: str) -> dict:
    """A video's width, height and duration; `hint` tells the user how to leave it out."""
    r = subprocess.run(
        [
            "ffprobe", "-v", "error", "-select_streams", "v:0",
            "-show_entries", "stream=width,height,duration:format=duration",
            "-of", "json", str(path),
        ],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise Fatal(f"{path}: ffprobe failed: {tail(r.stderr, 1)} ({hint})")
    info = json.loads(r.stdout or "{}")
    streams = info.get("streams") or []
    if not streams:
        raise Fatal(f"{path}: no video stream ({hint})")
    s = streams[0]
    duration = s.get("duration") or info.get("format", {}).get("duration")
    if duration in (None, "N/A"):
        raise Fatal(f"{path}: ffprobe gives no duration")
    return {"width": int(s["width"]), "height": int(s["height"]), "duration": float(duration)}


def scene_cuts(path: Path, threshold: float, threads: list[str] = ()) -> list[float]:
    """Times at which a new shot starts inside the source (ffmpeg's scene score); `threads`:
    extra ffmpeg options such as ["-threads", "1"]."""
    r = subprocess.run(
        [
            "ffmpeg", "-v", "error", "-nostdin", *threads, "-i", str(path), "-an",
            "-vf", f"select='gt(scene,{threshold})',metadata=print:file=-",
            "-f", "null", "-",
        ],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise Fatal(f"{path}: scene detection failed: {tail(r.stderr, 1)}")
    cuts = []
    for line in r.stdout.splitlines():
        if "pts_time:" in line:
            cuts.append(round(float(line.split("pts_time:")[1].split()[0]), 3))
    return cuts


def shots(cuts: list[float], duration: float) -> list[list[float]]:
    """Usable [start, end] intervals between a source's cuts, GUARD clear of each cut and of
    the end."""
    bounds = [0.0] + [c for c in cuts if 0.0 < c < duration] + [duration]
    out = []
    for i in range(len(bounds) - 1):
        a = bounds[i] + (GUARD if i > 0 else 0.0)
        b = bounds[i + 1] - GUARD
        if b - a > 0.3:
            out.append([round(a, 3), round(b, 3)])
    return out


def reconcile(out: Path, spec: dict, key: str) -> tuple[list[dict], int]:
    """Keeps only the items (spec[key]) that an earlier run made the same way (its
    generator.json says how each was made), removes the rest, then writes the new
    generator.json, so what is on disk always agrees with it, even after a killed run. Returns
    the items still to make and how many were kept."""
    gen = out / "generator.json"
    plan = spec[key]
    old = {}
    try:
        prev = json.loads(gen.read_text())
        if all(prev.get(k) == spec[k] for k in ("settings", "sources", "ffmpeg")):
            old = {c["path"]: c for c in prev.get(key, [])}
        stale_paths = {c["path"] for c in prev.get(key, [])}
    except (OSError, ValueError, KeyError, TypeError):
        stale_paths = set()
    todo, kept = [], 0
    for c in plan:
        f = out / c["path"]
        if f.is_file() and old.get(c["path"]) == c:
            kept += 1
        else:
            f.unlink(missing_ok=True)
            todo.append(c)
    for p in stale_paths - {c["path"] for c in plan}:
        (out / p).unlink(missing_ok=True)
    write_atomic(gen, json.dumps(spec, indent=1, sort_keys=False) + "\n")
    return todo, kept
