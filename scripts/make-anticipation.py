#!/usr/bin/env python3
"""Make a labelled ANTICIPATION set of "programmes" from real footage, reproducibly.

The set
-------
N programmes (--videos 48; 16 of them test, --test-videos-count) of 20-30 s each (10 fps,
256x192 H.264 yuv420p, no audio). A programme is a run of 3-6 segments of 3-8 s; each segment
is one random shot of one source, and its label is that source's CATEGORY:

  street    vtest.avi, bikes.mp4     (a pedestrian zone; cyclists)
  tree      tree.avi                 (a tree in the wind)
  cartoon   bigbuckbunny.mp4         (only 5.3 s long: its segments are 3-5 s, slowed down to
                                      0.5x or played forward-back-forward where a shot is short)
  fractal   generated: a zooming Mandelbrot set, a camera pan over a fractal (lavfi)
  life      generated: a colony of `life` with mould (lavfi)

(the sources and their categories are --categories; Megamind_bugy.avi is damaged and not used.)
Consecutive segments have different categories; the next one is the "successor" of the current
category (the next in the list above, life -> street) with probability --successor-share (0.5)
and otherwise any other category, so what comes next is partly predictable from what is on now,
as in a broadcast schedule. Between two segments there is a transition that ANNOUNCES itself: a
dip to black - the outgoing segment fades out over its last 0.5-1.0 s (down to a black frame),
the next fades in over its first 0.3-0.6 s (up from a black frame) - so a model that watches the
stream can see that a change is coming before the new content appears. About a fifth of the
changes (--cut-share 0.2) are hard cuts instead, announced by nothing.

Every shot is drawn as in make-transitions.py: a random start inside one of the source's own
shots (its scene cuts are detected first, so a segment holds no cut of its own), a random crop
window of 60-100% of the largest window of the output's aspect ratio, an optional horizontal flip
and a speed of 0.75-1.5x; a shot too short for its segment is slowed down (to 0.5x at least) or
played forward, backward (and forward again), never looped with a jump.

Why the labels come from construction
-------------------------------------
The class of every frame is known exactly because the programme was cut together from sources
of known category: segment k covers frames [first_frame, first_frame + frames) of the programme
video, and nothing decides a label after the fact (no CNN, no annotator), so a model is scored
against the truth of how the video was made, to the frame, including inside the fades (the
fade-out belongs to the outgoing segment, the fade-in to the incoming one).

What test is held out from
--------------------------
As make-transitions.py's --holdout time: every source gives the first 70% of its timeline
(--test-share 0.3) to the training programmes and its last 30%, 1 s apart, to the test
programmes, so no test frame (nor its neighbours) is seen in training. All segments of a
programme share its split and its group (the programme's file stem), so the validation split
`pipeline train` draws from the training rows by group keeps whole programmes on one side.

Use it
------
  python3 scripts/make-anticipation.py --out anticipation         # --jobs N, --seed S, ...
  pipeline train --task anticipate --horizon 1 --data anticipation/manifest.csv --out model
  pipeline eval --model model --data anticipation/manifest.csv --split test

The head is compared with two baselines: the label now carried forward 1 s ("what is on in a
second is what is on now", which `eval` reports as carry-forward accuracy: it is right
everywhere but in the last second before each change), and an order-blind head (one that sees
the features but not their order, so it can tell what is on screen, even a black frame, but not
whether the picture is fading out or in, nor how long the current segment has run). A head that
beats both has learned to read the fades (when a change comes) and the schedule (what comes).

Output: DIR/videos/<split>-<index>.mp4, DIR/manifest.csv (`path,label,start,end,split,group`:
one row per segment, start/end in seconds of the programme video, segments tiling it; split
`test` for test programmes and empty for training ones; group the programme's file stem) and
DIR/generator.json (the arguments, the sources with their detected shots, and every programme's
segments: source, source times, speed, passes, crop, flip, frames, programme times, and every
change: kind and fade lengths). Standard library only; needs the ffmpeg and ffprobe CLIs, FFmpeg
5.1+. The same seed and sources give a byte-identical manifest and generator.json, and identical
videos with the same ffmpeg. Each programme is made by one ffmpeg run, written under a temporary
name, checked to hold exactly round(duration * 10) frames with ffprobe, and renamed, so a killed
run leaves no half video; running again with the same arguments keeps the programmes already
made (checked against generator.json's recipes) and makes the rest.

Exit status: 0 done; 1 some programme failed (each named with ffmpeg's message; the others are
made, the manifest is not written: run again to retry); 2 bad usage, a missing media folder or
source video, or no ffmpeg; 130 interrupted (Ctrl-C or SIGTERM: what is made is kept, run again).
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
SPLITS = ("train", "test")
FPS = 10
SEGMENTS = (3, 6)  # segments per programme
SEGMENT_FRAMES = (30, 80)  # 3-8 s
PROGRAMME_FRAMES = (200, 300)  # 20-30 s
# Categories with little footage get shorter segments (bigbuckbunny.mp4 is 5.3 s in all).
CATEGORY_MAX_FRAMES = {"cartoon": 50}
FADE_OUT_FRAMES = (5, 10)  # 0.5-1.0 s, the last frame black
FADE_IN_FRAMES = (3, 6)  # 0.3-0.6 s, the first frame black
VIDEO_CATEGORIES = "vtest.avi=street,bikes.mp4=street,tree.avi=tree,bigbuckbunny.mp4=cartoon"
SPEED = (0.75, 1.5)
MIN_SPEED = 0.5  # slowest playback of a shot too short for its segment
MAX_PASSES = 3  # forward, backward, forward: the most a short shot is played
CROP = (0.6, 1.0)
TAIL = 0.15  # output seconds read past the last frame a pass needs
HOLDOUT_GAP = 1.0  # seconds between a source's training and test parts
WEIGHT_CAP = 10.0  # a source's weight within its category: its usable seconds, at most this
SYNTH_SECONDS = 60
SYNTH_SIZE = (320, 240)
SYNTH_RATE = 25
# Generated footage (as in make-transitions.py, twice as long): things that move like footage (a
# zoom, a camera pan, an organic texture growing), not test cards. Fixed seeds: the same on every
# run.
_N = SYNTH_SECONDS * SYNTH_RATE
SYNTHETIC = {
    "mandelbrot": (
        "fractal",
        f"mandelbrot=size=320x240:rate={SYNTH_RATE}:maxiter=600:start_scale=2.5:"
        f"end_scale=0.02:end_pts={_N}:outer=normalized_iteration_count",
    ),
    "fractal-pan": (
        "fractal",
        "mandelbrot=size=1600x1200:rate=1:start_x=-0.1011:start_y=0.9563:start_scale=0.08:"
        "end_scale=0.08:maxiter=800:inner=mincol:outer=normalized_iteration_count,"
        "trim=end_frame=1,hue=h=140:s=0.6,"
        "zoompan=z='1.6+0.5*sin(on/280)':x='(iw-iw/zoom)*(0.5+0.45*sin(on/160))':"
        f"y='(ih-ih/zoom)*(0.5+0.45*cos(on/220))':d={_N}:s=320x240:fps={SYNTH_RATE}",
    ),
    "life": (
        "life",
        f"life=size=96x72:rate={SYNTH_RATE}:mold=25:life_color=#D8C890:death_color=#203018:"
        "mold_color=#6A8C3A:ratio=0.4:seed=11:stitch=1,"
        "scale=384:288:flags=bicubic,gblur=sigma=2.5,crop=320:240",
    ),
}




def main() -> int:
    args = parse_args()
    started = time.monotonic()
    # A polite kill (SIGTERM) stops like Ctrl-C: no new programmes, the running ones finish or
    # are removed, the temporary footage goes.
    signal.signal(signal.SIGTERM, interrupt)
    try:
        return run(args, started)
    except Fatal as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: programmes made so far are kept; run again to finish",
              file=sys.stderr)
        return 130


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Make the anticipation set: programmes of 3-6 segments of footage of known "
        "category, joined by announced (fade) and unannounced (cut) changes, test held out by "
        "time.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default="anticipation", help="output folder")
    p.add_argument(
        "--media",
        default="../shared/media",
        help="folder of source videos (relative paths resolve against the repository root)",
    )
    p.add_argument(
        "--categories",
        default=VIDEO_CATEGORIES,
        help="comma-separated FILE=CATEGORY for the videos in --media that are used (the "
        "generated categories fractal and life are always added; Megamind_bugy.avi is damaged "
        "and left out)",
    )
    p.add_argument("--videos", type=int, default=48, help="programmes in all")
    p.add_argument(
        "--test-videos-count",
        type=int,
        default=16,
        help="how many of the --videos programmes are test programmes",
    )
    p.add_argument(
        "--test-share",
        type=float,
        default=0.3,
        help="the share at the end of every source's timeline kept for the test programmes",
    )
    p.add_argument(
        "--cut-share",
        type=float,
        default=0.2,
        help="share of the changes that are hard cuts (unannounced) instead of dips to black",
    )
    p.add_argument(
        "--successor-share",
        type=float,
        default=0.5,
        help="chance that the next segment's category is the current one's successor (the next "
        "in the category list); otherwise any other category (0: no schedule at all)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    p.add_argument("--size", default="256x192", help="video size WxH, both even")
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
    if args.videos < 0:
        p.error("--videos must be >= 0")
    if not 0 <= args.test_videos_count <= args.videos:
        p.error(f"--test-videos-count must be between 0 and --videos ({args.videos})")
    if args.jobs < 1:
        p.error("--jobs must be >= 1")
    if not 0.0 < args.test_share < 1.0:
        p.error("--test-share must be between 0 and 1")
    for flag in ("cut_share", "successor_share"):
        if not 0.0 <= getattr(args, flag) <= 1.0:
            p.error(f"--{flag.replace('_', '-')} must be between 0 and 1")
    try:
        args.video_categories = parse_categories(args.categories)
    except ValueError as e:
        p.error(f"--categories: {e}")
    return args


def parse_categories(text: str) -> dict[str, str]:
    out = {}
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        name, sep, cat = item.partition("=")
        name, cat = name.strip(), cat.strip()
        if not sep or not name or not cat:
            raise ValueError(f"{item!r} is not FILE=CATEGORY")
        if not all(ch.isalnum() or ch in "-_" for ch in cat):
            raise ValueError(f"category {cat!r}: use letters, digits, - and _ only")
        if name in out:
            raise ValueError(f"{name} is given twice")
        out[name] = cat
    return out


def run(args: argparse.Namespace, started: float) -> int:
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            raise Fatal(f"{tool} not found on PATH (install FFmpeg 5.1+: scripts/install-deps.sh)")
    media = Path(args.media)
    if not media.is_absolute():
        media = (REPO / media).resolve()
    if args.video_categories and not media.is_dir():
        raise Fatal(f"media folder {media} not found (give one with --media DIR)")
    for n in args.video_categories:
        if not (media / n).is_file():
            raise Fatal(f"source video {n} not found in {media} (see --categories)")
    out = Path(args.out).resolve()

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs)
    try:
        sources = describe_sources(pool, media, args)
        categories = category_order(args, sources)
        plan = make_plan(args, sources, categories)
        return build(args, pool, media, out, sources, categories, plan, started)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------- sources




def describe_sources(pool, media: Path, args) -> dict:
    """name -> {category, kind, duration, width, height, shots, train_shots, test_shots, ...};
    the order is fixed: the videos as --categories lists them, then the generated ones."""
    real = list(args.video_categories)
    probes = {n: pool.submit(probe, media / n, "leave it out of --categories") for n in real}
    cuts = {n: pool.submit(scene_cuts, media / n, args.scene_threshold, ["-threads", "1"]) for n in real}
    sources = {}
    for n in real:
        info = probes[n].result()
        c = cuts[n].result()
        sources[n] = {
            "category": args.video_categories[n],
            "kind": "video",
            "bytes": (media / n).stat().st_size,
            **info,
            "cuts": c,
            "shots": shots(c, info["duration"]),
        }
    for n, (category, spec) in SYNTHETIC.items():
        sources[f"synthetic:{n}"] = {
            "category": category,
            "kind": "lavfi",
            "lavfi": spec,
            "duration": float(SYNTH_SECONDS),
            "width": SYNTH_SIZE[0],
            "height": SYNTH_SIZE[1],
            "cuts": [],
            "shots": shots([], float(SYNTH_SECONDS)),
        }
    for src in sources.values():
        # The last --test-share of the timeline is test's, HOLDOUT_GAP seconds clear of
        # training's part, so no frame (nor its neighbours) is on both sides.
        cut = round(src["duration"] * (1.0 - args.test_share), 3)
        src["train_shots"] = clip_shots(src["shots"], 0.0, cut - HOLDOUT_GAP / 2)
        src["test_shots"] = clip_shots(src["shots"], cut + HOLDOUT_GAP / 2, src["duration"])
        for split in SPLITS:
            cap = CATEGORY_MAX_FRAMES.get(src["category"], SEGMENT_FRAMES[1])
            src[f"{split}_max_frames"] = max_frames(src[f"{split}_shots"], cap)
    return sources



def pass_frames(frames: int, passes: int) -> int:
    """Frames of the forward pass when a segment of `frames` frames plays its shot `passes`
    times (forward, backward, forward, ...; each turn shows its turning frame once)."""
    return math.ceil((frames + passes - 1) / passes)


def source_seconds(frames: int, passes: int) -> float:
    """Output seconds of source footage one pass reads."""
    return pass_frames(frames, passes) / FPS + TAIL


def max_frames(shots_: list[list[float]], cap: int) -> int:
    """The longest segment (frames, at most `cap`) the longest shot can fill at MIN_SPEED or
    faster in MAX_PASSES passes at most; 0 if not even SEGMENT_FRAMES[0]."""
    longest = max((b - a for a, b in shots_), default=0.0)
    for frames in range(cap, SEGMENT_FRAMES[0] - 1, -1):
        if any(longest >= source_seconds(frames, p) * MIN_SPEED for p in range(1, MAX_PASSES + 1)):
            return frames
    return 0


def category_order(args, sources: dict) -> list[str]:
    """The categories in order of first appearance; every one must be usable on both sides."""
    cats = []
    for src in sources.values():
        if src["category"] not in cats:
            cats.append(src["category"])
    for split, count in (("train", args.videos - args.test_videos_count),
                         ("test", args.test_videos_count)):
        if not count:
            continue
        for cat in cats:
            if not any(s["category"] == cat and s[f"{split}_max_frames"] for s in sources.values()):
                raise Fatal(
                    f"category {cat}: no source has a shot of {SEGMENT_FRAMES[0] / FPS:.0f} s "
                    f"(at {MIN_SPEED}x, {MAX_PASSES} passes) in the {split} part of its timeline"
                )
    if len(cats) < 2:
        raise Fatal(f"only {len(cats)} category: consecutive segments need two at least")
    return cats


# ---------------------------------------------------------------- recipes


def make_plan(args, sources: dict, categories: list[str]) -> list[dict]:
    """Every programme's recipe, each drawn from its own Random(seed/split/index), so the counts
    can change without changing the programmes the two runs share."""
    plan = []
    n_test = args.test_videos_count
    for split, count in (("train", args.videos - n_test), ("test", n_test)):
        for i in range(count):
            rng = random.Random(f"{args.seed}/{split}/{i}")
            stem = f"{split}-{i:04d}"
            recipe = draw_programme(rng, split, sources, categories, args)
            plan.append({"path": f"videos/{stem}.mp4", "split": split, "group": stem, **recipe})
    return plan


def draw_programme(rng: random.Random, split: str, sources: dict, categories: list[str],
                   args) -> dict:
    by_cat = {
        c: [n for n, s in sources.items() if s["category"] == c and s[f"{split}_max_frames"]]
        for c in categories
    }
    lo_total, hi_total = PROGRAMME_FRAMES
    for _ in range(1000):
        n = rng.randint(*SEGMENTS)
        cats = [rng.choice(categories)]
        while len(cats) < n:
            cats.append(next_category(rng, cats[-1], categories, args.successor_share))
        names_ = [weighted(rng, by_cat[c], sources, split) for c in cats]
        his = [sources[s][f"{split}_max_frames"] for s in names_]
        lo = SEGMENT_FRAMES[0]
        if n * lo > hi_total or sum(his) < lo_total:
            continue
        for _ in range(200):
            lengths = [rng.randint(lo, h) for h in his]
            if lo_total <= sum(lengths) <= hi_total:
                break
        else:
            continue
        break
    else:
        raise Fatal(f"cannot fit {SEGMENTS[0]}-{SEGMENTS[1]} segments into a "
                    f"{lo_total / FPS:.0f}-{hi_total / FPS:.0f} s programme ({split})")

    # The changes: a dip to black (fade-out of the outgoing segment, fade-in of the next) or a
    # hard cut.
    changes = []
    for k in range(n - 1):
        if rng.random() < args.cut_share:
            changes.append({"kind": "cut", "fade_out_frames": 0, "fade_in_frames": 0})
        else:
            changes.append({
                "kind": "fade",
                "fade_out_frames": rng.randint(*FADE_OUT_FRAMES),
                "fade_in_frames": rng.randint(*FADE_IN_FRAMES),
            })

    segments, first = [], 0
    for k, (cat, name, frames) in enumerate(zip(cats, names_, lengths)):
        shot = draw_shot(rng, sources[name], split, frames, args)
        if shot is None:  # max_frames promised the length fits
            raise AssertionError(f"{name}: no shot for {frames} frames")
        segments.append({
            "label": cat,
            "first_frame": first,
            "frames": frames,
            "start": first / FPS,
            "end": (first + frames) / FPS,
            "fade_in_frames": changes[k - 1]["fade_in_frames"] if k > 0 else 0,
            "fade_out_frames": changes[k]["fade_out_frames"] if k < n - 1 else 0,
            "source": name,
            **shot,
        })
        first += frames
    for k, c in enumerate(changes):
        c["frame"] = segments[k + 1]["first_frame"]
        c["at"] = segments[k + 1]["start"]
        c["from"], c["to"] = cats[k], cats[k + 1]
        c["fade_out"] = c["fade_out_frames"] / FPS
        c["fade_in"] = c["fade_in_frames"] / FPS
    return {"frames": first, "duration": first / FPS, "segments": segments, "changes": changes}


def next_category(rng: random.Random, current: str, categories: list[str], share: float) -> str:
    if rng.random() < share:
        return categories[(categories.index(current) + 1) % len(categories)]
    return rng.choice([c for c in categories if c != current])


def weighted(rng: random.Random, names_: list[str], sources: dict, split: str) -> str:
    """A source of the category, weighted by its usable seconds on this side (capped), so a
    long source is drawn more but a short one still turns up."""
    w = [min(WEIGHT_CAP, sum(b - a for a, b in sources[n][f"{split}_shots"])) for n in names_]
    return rng.choices(names_, weights=w)[0]


def draw_shot(rng, src: dict, split: str, frames: int, args) -> dict | None:
    """A shot filling `frames` output frames: a random speed, start, crop and flip, inside one of
    the source's own shots on this side. A shot too short at the drawn speed is slowed down (to
    MIN_SPEED) or played in more passes (forward, backward, ...). None if nothing fits."""
    shots_ = src[f"{split}_shots"]
    drawn = rng.uniform(*SPEED)
    longest = max(shots_, key=lambda s: s[1] - s[0], default=None)
    if longest is None:
        return None
    for passes in range(1, MAX_PASSES + 1):
        need = source_seconds(frames, passes)
        fits = [s for s in shots_ if s[1] - s[0] >= need * drawn]
        if fits:
            speed = drawn
            break
        fastest = (longest[1] - longest[0]) / need
        if fastest >= MIN_SPEED:
            speed, fits = fastest, [longest]
            break
    else:
        return None
    speed = math.floor(speed * 1000) / 1000
    length = math.floor(need * speed * 1000) / 1000
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
        "source_start": start,
        "source_length": length,
        "speed": speed,
        "passes": passes,
        "crop": [x, y, cw, ch],
        "flip": flip,
    }


# ---------------------------------------------------------------- making programmes


def build(args, pool, media: Path, out: Path, sources: dict, categories: list[str],
          plan: list[dict], started) -> int:
    (out / "videos").mkdir(parents=True, exist_ok=True)
    for stale in (out / "videos").glob(".*.part"):
        stale.unlink(missing_ok=True)
    manifest = out / "manifest.csv"
    manifest.unlink(missing_ok=True)  # written again only when every programme is there

    settings = {
        "categories": categories,
        "fps": FPS,
        "size": [args.width, args.height],
        "segments": list(SEGMENTS),
        "segment_frames": list(SEGMENT_FRAMES),
        "programme_frames": list(PROGRAMME_FRAMES),
        "category_max_frames": CATEGORY_MAX_FRAMES,
        "fade_out_frames": list(FADE_OUT_FRAMES),
        "fade_in_frames": list(FADE_IN_FRAMES),
        "speed": list(SPEED),
        "min_speed": MIN_SPEED,
        "max_passes": MAX_PASSES,
        "crop": list(CROP),
        "synthetic_seconds": SYNTH_SECONDS,
        "encoder": "libx264 -crf 20 -pix_fmt yuv420p",
    }
    spec = {
        "generator": "scripts/make-anticipation.py",
        "ffmpeg": ffmpeg_version(),
        "argv": sys.argv[1:],
        "args": {
            "out": args.out,
            "media": args.media,
            "categories": args.video_categories,
            "videos": args.videos,
            "test_videos_count": args.test_videos_count,
            "test_share": args.test_share,
            "cut_share": args.cut_share,
            "successor_share": args.successor_share,
            "seed": args.seed,
            "size": args.size,
            "scene_threshold": args.scene_threshold,
            "jobs": args.jobs,
        },
        "seed": args.seed,
        "settings": settings,
        "sources": sources,
        "programmes": plan,
    }

    todo, kept = reconcile(out, spec, "programmes")

    failed = []
    with tempfile.TemporaryDirectory(prefix="make-anticipation-") as tmp:
        paths = {n: media / n for n, s in sources.items() if s["kind"] == "video"}
        needed = sorted({s["source"] for c in todo for s in c["segments"]} - set(paths))
        if needed:
            print(f"rendering {len(needed)} synthetic source(s) of {SYNTH_SECONDS} s ...",
                  file=sys.stderr)
        renders = {n: pool.submit(render_synthetic, n, sources[n], Path(tmp)) for n in needed}
        for n, fut in renders.items():
            paths[n] = fut.result()
        futures = {pool.submit(make_programme, c, paths, out, args): c for c in todo}
        done = 0
        for fut in concurrent.futures.as_completed(futures):
            c = futures[fut]
            err = fut.result()
            done += 1
            if err:
                failed.append(c["path"])
                print(f"error: {c['path']}: {err}", file=sys.stderr)
            if done % 8 == 0 or done == len(todo):
                print(f"  {done}/{len(todo)} programmes", file=sys.stderr)

    summary(plan, sources, categories, kept, len(todo) - len(failed), failed, out, started)
    if failed:
        print(
            f"{len(failed)} programme(s) failed; manifest.csv not written. Run the same command "
            "again to retry them (the others are kept).",
            file=sys.stderr,
        )
        return 1
    rows = ["path,label,start,end,split,group"]
    # Training rows leave the split open: `pipeline train` draws validation from them by group.
    for c in plan:
        split = "test" if c["split"] == "test" else ""
        for s in c["segments"]:
            rows.append(
                f"{c['path']},{s['label']},{seconds(s['first_frame'])},"
                f"{seconds(s['first_frame'] + s['frames'])},{split},{c['group']}"
            )
    write_atomic(manifest, "\n".join(rows) + "\n")
    print(f"wrote {manifest}")
    return 0


def seconds(frame: int) -> str:
    return format(round(frame / FPS, 3), "g")


def render_synthetic(name: str, src: dict, tmp: Path) -> Path:
    dest = tmp / (name.split(":", 1)[1] + ".mp4")
    cmd = [
        "ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", src["lavfi"],
        "-t", str(SYNTH_SECONDS), "-r", str(SYNTH_RATE), "-c:v", "libx264", "-threads", "1",
        "-preset", "veryfast", "-crf", "8", "-pix_fmt", "yuv420p", "-an", str(dest),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise Fatal(f"rendering {name} failed: {tail(r.stderr, 3)}")
    return dest


def segment_graph(i: int, seg: dict, args) -> str:
    """Input i -> [v{i}]: the segment's `frames` frames at FPS, cropped, scaled, flipped, played
    in its passes, faded in and out."""
    x, y, w, h = seg["crop"]
    chain = [
        f"[{i}:v]setpts=(PTS-STARTPTS)/{seg['speed']}",
        f"fps={FPS}",
        # Hold the last frame: a sparse source can end its read up to a frame before the end it
        # was cut at.
        "tpad=stop_mode=clone:stop_duration=1",
        f"crop={w}:{h}:{x}:{y}",
        f"scale={args.width}:{args.height}:flags=bicubic",
    ]
    if seg["flip"]:
        chain.append("hflip")
    chain += ["setsar=1", "format=yuv420p"]
    frames, passes = seg["frames"], seg["passes"]
    if passes == 1:
        chain.append(f"trim=end_frame={frames},setpts=PTS-STARTPTS")
        graph = ",".join(chain)
    else:
        # Forward, backward, forward...: each later pass drops its first frame (the turning
        # frame the previous pass ended on), so the motion turns without a held frame.
        chain.append(f"trim=end_frame={pass_frames(frames, passes)},setpts=PTS-STARTPTS")
        chain.append(f"split={passes}" + "".join(f"[s{i}_{j}]" for j in range(passes)))
        parts = [",".join(chain)]
        for j in range(1, passes):
            rev = "reverse," if j % 2 else ""
            parts.append(f"[s{i}_{j}]{rev}trim=start_frame=1,setpts=PTS-STARTPTS[p{i}_{j}]")
        inputs = f"[s{i}_0]" + "".join(f"[p{i}_{j}]" for j in range(1, passes))
        parts.append(
            f"{inputs}concat=n={passes}:v=1:a=0,setpts=N/{FPS}/TB,trim=end_frame={frames}"
        )
        graph = ";".join(parts)
    # fade counts the frames it is given from 0: in, frames 0..n-1 rise from black (frame 0
    # black); out, the n frames before the segment's end fall to black (its last frame black).
    if seg["fade_in_frames"]:
        graph += f",fade=t=in:start_frame=0:nb_frames={seg['fade_in_frames']}"
    if seg["fade_out_frames"]:
        n = seg["fade_out_frames"]
        graph += f",fade=t=out:start_frame={frames - n - 1}:nb_frames={n}"
    return graph + f"[v{i}]"


def filter_graph(c: dict, args) -> str:
    parts = [segment_graph(i, s, args) for i, s in enumerate(c["segments"])]
    inputs = "".join(f"[v{i}]" for i in range(len(c["segments"])))
    # Timestamps from the frame count: frame k of the programme is at k / FPS exactly.
    parts.append(f"{inputs}concat=n={len(c['segments'])}:v=1:a=0,setpts=N/{FPS}/TB[v]")
    return ";".join(parts)


def make_programme(c: dict, paths: dict, out: Path, args) -> str | None:
    """Encode one programme to a temporary name, check it has its frames, rename. Returns an
    error message or None."""
    dest = out / c["path"]
    part = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-y"]
    for s in c["segments"]:
        cmd += [
            "-threads", "1", "-ss", f"{s['source_start']:.3f}", "-t", f"{s['source_length']:.3f}",
            "-i", str(paths[s["source"]]),
        ]
    cmd += [
        "-filter_complex_threads", "1", "-filter_complex", filter_graph(c, args),
        "-map", "[v]", "-frames:v", str(c["frames"]), "-r", str(FPS), "-an",
        "-map_metadata", "-1", "-c:v", "libx264", "-threads", "1", "-crf", "20",
        "-pix_fmt", "yuv420p", "-f", "mp4", str(part),
    ]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            return f"ffmpeg exited with {r.returncode}: {tail(r.stderr, 6)}"
        n = count_frames(part)
        if n != c["frames"]:
            return f"made {n} frames, expected {c['frames']}; ffmpeg said: {tail(r.stderr, 3)}"
        os.replace(part, dest)
        return None
    finally:
        part.unlink(missing_ok=True)


def summary(plan, sources, categories, kept, made, failed, out, started) -> None:
    print(f"\n{out}: {len(plan)} programmes ({made} made, {kept} kept from an earlier run"
          f"{f', {len(failed)} failed' if failed else ''})")
    print("seconds (segments) of each category:")
    print(f"{'category':<10}" + "".join(f"{s:>16}" for s in SPLITS))
    for cat in categories:
        cells = []
        for split in SPLITS:
            segs = [s for c in plan if c["split"] == split for s in c["segments"]
                    if s["label"] == cat]
            cells.append(f"{sum(s['frames'] for s in segs) / FPS:.1f} ({len(segs)})")
        print(f"{cat:<10}" + "".join(f"{v:>16}" for v in cells))
    for split in SPLITS:
        progs = [c for c in plan if c["split"] == split]
        if not progs:
            continue
        changes = [ch for c in progs for ch in c["changes"]]
        cuts = sum(ch["kind"] == "cut" for ch in changes)
        segs = [s for c in progs for s in c["segments"]]
        print(f"{split}: {len(progs)} programmes, {sum(c['frames'] for c in progs) / FPS:.0f} s, "
              f"{len(segs)} segments, {len(changes)} changes ({cuts} hard cuts), "
              f"{sum(s['passes'] > 1 for s in segs)} segments played back and forth, "
              f"{sum(s['speed'] < SPEED[0] for s in segs)} slowed below {SPEED[0]}x")
        used = {}
        for s in segs:
            used[s["source"]] = used.get(s["source"], 0) + 1
        desc = ", ".join(
            f"{n} ({len(sources[n][f'{split}_shots'])} shot(s), {used[n]} uses)"
            for n in sources if n in used
        )
        print(f"  sources: {desc}")
    print(f"took {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
