#!/usr/bin/env python3
"""Make a labelled shot-transition clip set from real footage, reproducibly.

The set
-------
Five classes of 2.0-second clips (10 fps, 20 frames, H.264, no audio) for training and testing
the temporal (LSTM) heads of `pipeline train --task classify` on CNN features:

  none      one continuous shot
  cut       a hard cut from shot A to shot B
  dissolve  a cross-fade from A to B (xfade `fade`)
  fade      A fades to black, then B fades in (a dip to black: two `fade` filters, xfaded)
  wipe      a wipe from A to B (xfade wipeleft/wiperight/wipeup/wipedown)

Every shot is a random segment of a source video: random start (inside one of the source's own
shots: its scene cuts are detected first, so no clip carries a cut of its own), a random crop
window of 60-100% of the largest window of the output's aspect ratio, an optional horizontal
flip and a playback speed of 0.75-1.5x, then scaled to --size (256x192). The transition starts
between 0.4 s and 1.6 s - its duration (0.3-1.0 s for dissolve, fade and wipe; 3 to 10 frames,
so some are barely there), so it lies wholly inside the clip. For the four transition classes
about half of the clips take A and B from the same video at different times (at least 3 s
apart where the video allows: a cut inside one scene, the hard case) and half from two videos.
The frame features of `none` and a transition's shots are alike, so the class is in the order
and the change of the frames, not in their content.

What test is held out from
--------------------------
Clips cut from one stretch of video share its look (colours, texture, motion), and a classifier
can learn the footage instead of the transition. Test clips therefore never share footage with
training clips. Two ways (--holdout):

  time    (default) every source gives its first 70% (--test-share 0.3) to training and its
          last 30% to test, 1 s apart: test clips are other scenes of the same videos, as a
          user's own held-out recordings would be. This is the set the default recipe was
          ablated on.
  videos  test clips use ONLY the test videos (--test-videos, default bikes.mp4 and
          bigbuckbunny.mp4) and training clips only the others: footage of another kind
          entirely. With two real training videos this measures how far a head trained on a
          few sources carries, which is not far (see the README).

Sources: every video in --media but the excluded ones, plus generated footage with
--synthetic (a zooming Mandelbrot set, a camera pan over a fractal and a colony of `life` with
mould, rendered once with lavfi). The manifest's `group` column (`<video stem>@<10-second
chunk of shot A's start>`, e.g. `vtest@3`, and `vtest@5-test` for test clips) names the
footage of each clip, so the validation
split `pipeline train` draws from the training rows (their split is left empty) keeps clips
that share footage on one side.

Make it (standard library only; needs the ffmpeg and ffprobe CLIs, FFmpeg 5.1+):

  python3 scripts/make-transitions.py --out transitions        # --jobs N, --seed S, ...

It writes DIR/clips/<class>/<split>-<index>.mp4, DIR/manifest.csv (`path,label,split,group`,
paths relative to DIR, split `test` or empty for training and validation rows) and DIR/generator.json (the arguments, the
sources with their detected shots, and every clip's recipe: sources, times, crop, flip, speed,
transition start and duration). The same seed and sources give a byte-identical manifest and
generator.json, and identical videos with the same ffmpeg. Clips are written under a temporary
name and renamed, so a killed run leaves no half clip; running again with the same arguments
keeps the clips already made (checked against generator.json's recipes) and makes the rest.

Use it:

  pipeline train --task classify --data DIR/manifest.csv --out model

(the manifest's test rows are scored once, at the end).

Exit status: 0 done; 1 some clip failed (each named with ffmpeg's message; the others are
made, the manifest is not written: run again to retry); 2 bad usage, a missing media folder,
test video or ffmpeg; 130 interrupted (Ctrl-C or SIGTERM: what is made is kept, run again).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from footage import (  # noqa: E402
    Fatal, clip_shots, count_frames, ffmpeg_version, interrupt, probe, reconcile, scene_cuts,
    shots, tail, write_atomic,
)

REPO = Path(__file__).resolve().parent.parent
CLASSES = ("none", "cut", "dissolve", "fade", "wipe")
SPLITS = ("train", "test")
FPS = 10
FRAMES = 20  # 2.0 s
# xfade's `dissolve` is a noisy dither, so a dissolve is its `fade` (a cross-fade). Its
# `fadeblack` is lopsided (A is black after a fifth of the duration, B takes the rest), so a fade
# is built from two `fade` filters instead: see filter_graph.
XFADE = {"dissolve": "fade", "fade": "dip-to-black"}
WIPES = ("wipeleft", "wiperight", "wipeup", "wipedown")
VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv"}
SPEED = (0.75, 1.5)
CROP = (0.6, 1.0)
TAIL = 0.15  # output seconds read past the last frame a shot needs
HOLDOUT_GAP = 1.0  # --holdout time: seconds between a source's training and test parts
SAME_APART = 3.0  # seconds between A's and B's starts in a same-video pair, where possible
SYNTH_SECONDS = 30
SYNTH_SIZE = (320, 240)
SYNTH_RATE = 25
# Generated footage for the training side: things that move like footage (a zoom, a camera
# pan, an organic texture growing), not test cards. Fixed seeds: the same on every run.
_N = SYNTH_SECONDS * SYNTH_RATE
SYNTHETIC = {
    "mandelbrot": (
        f"mandelbrot=size=320x240:rate={SYNTH_RATE}:maxiter=600:start_scale=2.5:"
        f"end_scale=0.02:end_pts={_N}:outer=normalized_iteration_count"
    ),
    "fractal-pan": (
        "mandelbrot=size=1600x1200:rate=1:start_x=-0.1011:start_y=0.9563:start_scale=0.08:"
        "end_scale=0.08:maxiter=800:inner=mincol:outer=normalized_iteration_count,"
        "trim=end_frame=1,hue=h=140:s=0.6,"
        "zoompan=z='1.6+0.5*sin(on/280)':x='(iw-iw/zoom)*(0.5+0.45*sin(on/160))':"
        f"y='(ih-ih/zoom)*(0.5+0.45*cos(on/220))':d={_N}:s=320x240:fps={SYNTH_RATE}"
    ),
    "life": (
        f"life=size=96x72:rate={SYNTH_RATE}:mold=25:life_color=#D8C890:death_color=#203018:"
        "mold_color=#6A8C3A:ratio=0.4:seed=11:stitch=1,"
        "scale=384:288:flags=bicubic,gblur=sigma=2.5,crop=320:240"
    ),
}




def main() -> int:
    args = parse_args()
    started = time.monotonic()
    # A polite kill (SIGTERM) stops like Ctrl-C: no new clips, the running ones finish or are
    # removed, the temporary footage goes.
    signal.signal(signal.SIGTERM, interrupt)
    try:
        return run(args, started)
    except Fatal as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: clips made so far are kept; run again to finish", file=sys.stderr)
        return 130


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Make the 5-class shot-transition clip set (none, cut, dissolve, fade, "
        "wipe) from real footage, test videos held out.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default="transitions", help="output folder")
    p.add_argument(
        "--media",
        default="../shared/media",
        help="folder of source videos (relative paths resolve against the repository root)",
    )
    p.add_argument(
        "--holdout",
        choices=["time", "videos"],
        default="time",
        help="what test clips are cut from: the last --test-share of every source's timeline "
        "(time), or only the --test-videos (videos)",
    )
    p.add_argument(
        "--test-share",
        type=float,
        default=0.3,
        help="--holdout time: the share at the end of every source's timeline kept for test",
    )
    p.add_argument(
        "--test-videos",
        default="bikes.mp4,bigbuckbunny.mp4",
        help="--holdout videos: comma-separated file names in --media used only for the test "
        "split",
    )
    p.add_argument(
        "--exclude",
        default="Megamind_bugy.avi",
        help="comma-separated file names in --media never used (Megamind_bugy.avi is damaged)",
    )
    p.add_argument("--train-per-class", type=int, default=64, help="training clips per class")
    p.add_argument("--test-per-class", type=int, default=40, help="test clips per class")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    p.add_argument(
        "--synthetic",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="add generated footage (lavfi) to the training side",
    )
    p.add_argument("--size", default="256x192", help="clip size WxH, both even")
    p.add_argument(
        "--scene-threshold",
        type=float,
        default=0.2,
        help="ffmpeg scene score above which a source frame starts a new shot",
    )
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="ffmpeg runs at once")
    args = p.parse_args()
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        p.error(f"--size {args.size!r} is not WxH")
    if w < 16 or h < 16 or w % 2 or h % 2:
        p.error(f"--size {args.size}: width and height must be even and at least 16")
    args.width, args.height = w, h
    if args.train_per_class < 0 or args.test_per_class < 0:
        p.error("clip counts must be >= 0")
    if args.jobs < 1:
        p.error("--jobs must be >= 1")
    if not 0.0 < args.test_share < 1.0:
        p.error("--test-share must be between 0 and 1")
    if args.holdout == "time":
        args.test_videos = ""
    return args


def names(csv: str) -> list[str]:
    return [n.strip() for n in csv.split(",") if n.strip()]


def run(args: argparse.Namespace, started: float) -> int:
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            raise Fatal(f"{tool} not found on PATH (install FFmpeg 5.1+: scripts/install-deps.sh)")
    media = Path(args.media)
    if not media.is_absolute():
        media = (REPO / media).resolve()
    if not media.is_dir():
        raise Fatal(f"media folder {media} not found (give one with --media DIR)")
    out = Path(args.out).resolve()

    test_names = names(args.test_videos)
    excluded = set(names(args.exclude))
    for n in test_names:
        if not (media / n).is_file():
            raise Fatal(f"test video {n} not found in {media}")
    videos = sorted(
        f.name
        for f in media.iterdir()
        if f.is_file() and f.suffix.lower() in VIDEO_EXTS and f.name not in excluded
    )
    train_names = [n for n in videos if n not in test_names]
    if not test_names and args.test_per_class and args.holdout == "videos":
        raise Fatal("no test videos (--test-videos is empty)")
    if not train_names and not args.synthetic and args.train_per_class:
        raise Fatal(f"no training videos left in {media} besides the test videos")

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs)
    try:
        sources = describe_sources(pool, media, train_names, test_names, args)
        plan = make_plan(args, sources)
        return build(args, pool, media, out, sources, plan, started)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------- sources




def describe_sources(pool, media: Path, train_names, test_names, args) -> dict:
    """name -> {split, kind, duration, width, height, shots, ...}; the order is fixed."""
    both = args.holdout == "time"
    real = [(n, "test") for n in test_names] + [(n, "both" if both else "train") for n in train_names]
    probes = {n: pool.submit(probe, media / n, "leave it out with --exclude") for n, _ in real}
    cuts = {n: pool.submit(scene_cuts, media / n, args.scene_threshold) for n, _ in real}
    sources = {}
    for n, split in real:
        info = probes[n].result()
        c = cuts[n].result()
        sources[n] = {
            "split": split,
            "kind": "video",
            "group": Path(n).stem,
            "bytes": (media / n).stat().st_size,
            **info,
            "cuts": c,
            "shots": shots(c, info["duration"]),
            "weight": 2,
        }
    if args.synthetic:
        for n, spec in SYNTHETIC.items():
            sources[f"synthetic:{n}"] = {
                "split": "both" if both else "train",
                "kind": "lavfi",
                "group": f"synth-{n}",
                "lavfi": spec,
                "duration": float(SYNTH_SECONDS),
                "width": SYNTH_SIZE[0],
                "height": SYNTH_SIZE[1],
                "cuts": [],
                "shots": shots([], float(SYNTH_SECONDS)),
                "weight": 1,
            }
    if both:
        for src in sources.values():
            # The last --test-share of the timeline is test's, HOLDOUT_GAP seconds clear of
            # training's part, so no frame (nor its neighbours) is on both sides.
            cut = round(src["duration"] * (1.0 - args.test_share), 3)
            src["train_shots"] = clip_shots(src["shots"], 0.0, cut - HOLDOUT_GAP / 2)
            src["test_shots"] = clip_shots(src["shots"], cut + HOLDOUT_GAP / 2, src["duration"])
    return sources


def split_view(sources: dict, split: str) -> dict:
    """The sources a split draws from, each with only the shots that split may use."""
    view = {}
    for n, src in sources.items():
        if src["split"] == split:
            view[n] = src
        elif src["split"] == "both" and src[f"{split}_shots"]:
            view[n] = {**src, "shots": src[f"{split}_shots"]}
    return view



# ---------------------------------------------------------------- recipes


def make_plan(args, sources: dict) -> list[dict]:
    """Every clip's recipe, each drawn from its own Random(seed/split/class/index), so the
    counts can change without changing the clips the two runs share."""
    plan = []
    for split, count in (("train", args.train_per_class), ("test", args.test_per_class)):
        view = split_view(sources, split)
        pool = list(view)
        if count and not pool:
            raise Fatal(f"no sources for the {split} split")
        for label in CLASSES:
            for i in range(count):
                rng = random.Random(f"{args.seed}/{split}/{label}/{i}")
                recipe = draw_clip(rng, label, pool, view, args)
                recipe = {
                    "path": f"clips/{label}/{split}-{i:04d}.mp4",
                    "label": label,
                    "split": split,
                    **recipe,
                }
                plan.append(recipe)
    return plan


def draw_clip(rng: random.Random, label: str, pool: list[str], sources: dict, args) -> dict:
    if label == "none":
        for _ in range(100):
            name = weighted(rng, pool, sources)
            seg = draw_segment(rng, name, sources[name], FRAMES / FPS + TAIL, args)
            if seg:
                break
        else:
            raise Fatal(f"no source of {pool} holds a {FRAMES / FPS:.1f} s shot")
        return {"group": group_of(seg, sources), "shots": [seg], "transition": None}

    if label == "cut":
        dur_frames = 0
        start_frame = rng.randint(4, 16)
    else:
        dur_frames = rng.randint(3, 10)
        start_frame = rng.randint(4, 16 - dur_frames)
    t0, d = start_frame / FPS, dur_frames / FPS
    kind = XFADE.get(label) or (rng.choice(WIPES) if label == "wipe" else "cut")
    len_a = t0 + d + TAIL  # output seconds of A that the clip uses
    len_b = FRAMES / FPS - t0 + TAIL
    same = rng.random() < 0.5 or len(pool) == 1
    for _ in range(100):
        a_name = weighted(rng, pool, sources)
        b_name = a_name if same else weighted(rng, [n for n in pool if n != a_name], sources)
        pair = draw_pair(rng, a_name, b_name, len_a, len_b, sources, args)
        if pair:
            break
    else:
        raise Fatal(f"no sources of {pool} can supply a {label} clip")
    a, b = pair
    return {
        "group": group_of(a, sources),
        "shots": [a, b],
        "same_video": a_name == b_name,
        "transition": {"kind": kind, "start": t0, "duration": d},
    }


def weighted(rng: random.Random, names_: list[str], sources: dict) -> str:
    return rng.choices(names_, weights=[sources[n]["weight"] for n in names_])[0]


def draw_pair(rng, a_name, b_name, len_a, len_b, sources, args):
    if a_name != b_name:
        a = draw_segment(rng, a_name, sources[a_name], len_a, args)
        b = draw_segment(rng, b_name, sources[b_name], len_b, args)
        return (a, b) if a and b else None
    # Same video: starts at least SAME_APART apart where the video allows, else as far apart
    # as 40 draws find.
    best, best_gap = None, -1.0
    for _ in range(40):
        a = draw_segment(rng, a_name, sources[a_name], len_a, args)
        b = draw_segment(rng, b_name, sources[b_name], len_b, args)
        if not (a and b):
            return None
        gap = abs(a["start"] - b["start"])
        if gap >= SAME_APART:
            return a, b
        if gap > best_gap:
            best, best_gap = (a, b), gap
    return best


def draw_segment(rng, name: str, src: dict, out_len: float, args) -> dict | None:
    """A shot: `out_len` output seconds of `name` at a random speed, start, crop and flip,
    inside one of the source's own shots. None if no shot is long enough even at 0.75x."""
    speed = rng.uniform(*SPEED)
    fits = [s for s in src["shots"] if s[1] - s[0] >= out_len * speed]
    if not fits:
        longest = max(src["shots"], key=lambda s: s[1] - s[0], default=None)
        if longest is None or longest[1] - longest[0] < out_len * SPEED[0]:
            return None
        speed = (longest[1] - longest[0]) / out_len
        fits = [longest]
    speed = math.floor(speed * 1000) / 1000
    length = round(out_len * speed, 3)
    lo, hi = rng.choices(fits, weights=[s[1] - s[0] for s in fits])[0]
    start = math.floor(rng.uniform(lo, hi - length) * 1000) / 1000
    start = max(start, lo)
    # Crop: 60-100% of the largest window of the output's aspect ratio, anywhere in the frame.
    W, H = src["width"], src["height"]
    aspect = args.width / args.height
    full_w, full_h = (H * aspect, H) if W / H > aspect else (W, W / aspect)
    scale = rng.uniform(*CROP)
    cw = max(2, min(W, 2 * round(full_w * scale / 2)))
    ch = max(2, min(H, 2 * round(cw / aspect / 2)))
    x = rng.randint(0, W - cw)
    y = rng.randint(0, H - ch)
    flip = rng.random() < 0.5
    return {
        "source": name,
        "start": start,
        "length": length,
        "speed": speed,
        "crop": [x, y, cw, ch],
        "flip": flip,
    }


def group_of(seg: dict, sources: dict) -> str:
    return f"{sources[seg['source']]['group']}@{int(seg['start'] // 10)}"


# ---------------------------------------------------------------- making clips


def build(args, pool, media: Path, out: Path, sources: dict, plan: list[dict], started) -> int:
    (out / "clips").mkdir(parents=True, exist_ok=True)
    for label in CLASSES:
        (out / "clips" / label).mkdir(exist_ok=True)
    for stale in (out / "clips").glob("*/.*.part"):
        stale.unlink(missing_ok=True)
    manifest = out / "manifest.csv"
    manifest.unlink(missing_ok=True)  # written again only when every clip is there

    settings = {
        "classes": list(CLASSES),
        "fps": FPS,
        "frames": FRAMES,
        "size": [args.width, args.height],
        "encoder": "libx264 -crf 20 -pix_fmt yuv420p",
    }
    spec = {
        "generator": "scripts/make-transitions.py",
        "ffmpeg": ffmpeg_version(),
        "argv": sys.argv[1:],
        "args": {
            "out": args.out,
            "media": args.media,
            "holdout": args.holdout,
            "test_share": args.test_share,
            "test_videos": names(args.test_videos),
            "exclude": names(args.exclude),
            "train_per_class": args.train_per_class,
            "test_per_class": args.test_per_class,
            "seed": args.seed,
            "synthetic": args.synthetic,
            "size": args.size,
            "scene_threshold": args.scene_threshold,
            "jobs": args.jobs,
        },
        "seed": args.seed,
        "settings": settings,
        "sources": sources,
        "clips": plan,
    }

    todo, kept = reconcile(out, spec, "clips")

    failed = []
    with tempfile.TemporaryDirectory(prefix="make-transitions-") as tmp:
        paths = {n: media / n for n, s in sources.items() if s["kind"] == "video"}
        needed = sorted({s["source"] for c in todo for s in c["shots"]} - set(paths))
        if needed:
            print(f"rendering {len(needed)} synthetic source(s) of {SYNTH_SECONDS} s ...",
                  file=sys.stderr)
        renders = {n: pool.submit(render_synthetic, n, sources[n], Path(tmp)) for n in needed}
        for n, fut in renders.items():
            paths[n] = fut.result()
        futures = {pool.submit(make_clip, c, paths, out, args): c for c in todo}
        done = 0
        for fut in concurrent.futures.as_completed(futures):
            c = futures[fut]
            err = fut.result()
            done += 1
            if err:
                failed.append(c["path"])
                print(f"error: {c['path']}: {err}", file=sys.stderr)
            if done % 25 == 0 or done == len(todo):
                print(f"  {done}/{len(todo)} clips", file=sys.stderr)

    summary(plan, sources, kept, len(todo) - len(failed), failed, out, started)
    if failed:
        print(
            f"{len(failed)} clip(s) failed; manifest.csv not written. Run the same command "
            "again to retry them (the others are kept).",
            file=sys.stderr,
        )
        return 1
    rows = ["path,label,split,group"]
    # Training rows leave the split open: `pipeline train` draws validation from them by group.
    # A test row's group carries `-test`: with --holdout time one 10-second chunk can hold the
    # end of training's part and the start of test's, and a group shared with a test row would
    # pull the training clips into test with it.
    rows += [
        f"{c['path']},{c['label']},test,{c['group']}-test"
        if c["split"] == "test"
        else f"{c['path']},{c['label']},,{c['group']}"
        for c in plan
    ]
    write_atomic(manifest, "\n".join(rows) + "\n")
    print(f"wrote {manifest}")
    return 0


def render_synthetic(name: str, src: dict, tmp: Path) -> Path:
    dest = tmp / (name.split(":", 1)[1] + ".mp4")
    cmd = [
        "ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", src["lavfi"],
        "-t", str(SYNTH_SECONDS), "-r", str(SYNTH_RATE), "-c:v", "libx264", "-preset", "veryfast",
        "-crf", "8", "-pix_fmt", "yuv420p", "-an", str(dest),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise Fatal(f"rendering {name} failed: {tail(r.stderr, 3)}")
    return dest


def shot_chain(i: int, seg: dict, args) -> str:
    x, y, w, h = seg["crop"]
    chain = [
        f"[{i}:v]setpts=(PTS-STARTPTS)/{seg['speed']}",
        f"fps={FPS}",
        # Hold the last frame: a sparse source (tree.avi has 68 frames in 29.6 s) can end its
        # segment up to half a second before the end it was cut at.
        "tpad=stop_mode=clone:stop_duration=1",
        f"crop={w}:{h}:{x}:{y}",
        f"scale={args.width}:{args.height}:flags=bicubic",
    ]
    if seg["flip"]:
        chain.append("hflip")
    chain += ["setsar=1", "format=yuv420p"]
    return ",".join(chain)


def filter_graph(c: dict, args) -> str:
    t = c["transition"]
    if t is None:
        return shot_chain(0, c["shots"][0], args) + f",trim=end_frame={FRAMES}[v]"
    a, b = (shot_chain(i, s, args) for i, s in enumerate(c["shots"]))
    if t["kind"] == "cut":
        k = round(t["start"] * FPS)
        return (
            f"{a},trim=end_frame={k},setpts=PTS-STARTPTS[a];"
            f"{b},trim=end_frame={FRAMES - k},setpts=PTS-STARTPTS[b];"
            "[a][b]concat=n=2:v=1:a=0[v]"
        )
    kind = t["kind"]
    if kind == "dip-to-black":
        # A fades out to black over the first half, B fades in over the second half, each on
        # its own timeline (B starts at the transition's start), then cross-faded: a dip to
        # black, symmetric, black (in YUV) at the midpoint.
        half = t["duration"] / 2
        a += f",fade=t=out:st={t['start']}:d={half}"
        b += f",fade=t=in:st={half}:d={half}"
        kind = "fade"
    return (
        f"{a}[a];{b}[b];"
        f"[a][b]xfade=transition={kind}:duration={t['duration']}:offset={t['start']}[v]"
    )


def make_clip(c: dict, paths: dict, out: Path, args) -> str | None:
    """Encode one clip to a temporary name, check it has FRAMES frames, rename. Returns an
    error message or None."""
    dest = out / c["path"]
    part = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-y"]
    for s in c["shots"]:
        cmd += [
            "-threads", "1", "-ss", f"{s['start']:.3f}", "-t", f"{s['length']:.3f}",
            "-i", str(paths[s["source"]]),
        ]
    cmd += [
        "-filter_complex", filter_graph(c, args), "-map", "[v]", "-frames:v", str(FRAMES),
        "-r", str(FPS), "-an", "-map_metadata", "-1", "-c:v", "libx264", "-threads", "1",
        "-crf", "20", "-pix_fmt", "yuv420p", "-f", "mp4", str(part),
    ]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            return f"ffmpeg exited with {r.returncode}: {tail(r.stderr, 6)}"
        n = count_frames(part)
        if n != FRAMES:
            return f"made {n} frames, expected {FRAMES}; ffmpeg said: {tail(r.stderr, 3)}"
        os.replace(part, dest)
        return None
    finally:
        part.unlink(missing_ok=True)


def summary(plan, sources, kept, made, failed, out, started) -> None:
    print(f"\n{out}: {len(plan)} clips ({made} made, {kept} kept from an earlier run"
          f"{f', {len(failed)} failed' if failed else ''})")
    print(f"{'class':<10}" + "".join(f"{s:>7}" for s in SPLITS))
    for label in CLASSES:
        counts = [sum(c["label"] == label and c["split"] == s for c in plan) for s in SPLITS]
        print(f"{label:<10}" + "".join(f"{n:>7}" for n in counts))
    same = [c for c in plan if c["transition"]]
    if same:
        share = sum(c["same_video"] for c in same) / len(same)
        print(f"transition clips with A and B from one video: {share:.0%}")
    for split in SPLITS:
        used = {}
        for c in plan:
            if c["split"] == split:
                for s in c["shots"]:
                    used[s["source"]] = used.get(s["source"], 0) + 1
        desc = ", ".join(
            f"{n} ({sources[n]['duration']:.1f} s, {len(sources[n]['shots'])} shot(s), "
            f"{used[n]} uses)"
            for n in sources
            if n in used
        )
        print(f"{split} sources: {desc or '-'}")
    print(f"took {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
