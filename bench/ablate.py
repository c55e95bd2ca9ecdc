"""Ablation of `pipeline train`'s classify recipe on a set with a held-out test split.

Each row is one recipe (flags on top of the binary's defaults), trained once per seed with
`pipeline train`; the table gives test accuracy (scored once, after training, never used for a
choice) as mean, sample std and min-max over the seeds, beside validation accuracy and the
order-blind baseline's test accuracy. With --reference, the plain PyTorch recipe of
`bench/train_reference.py` runs on the very same cached features (every frame) as one more row.

The set this was made for: `scripts/make-transitions.py` (shot transitions cut from real
footage, test clips from videos training never saw):

  python3 scripts/make-transitions.py --out /tmp/transitions
  python3 bench/ablate.py --data /tmp/transitions/manifest.csv --out /tmp/ablation \
      --pipeline target/debug/pipeline --reference ../.venv-ref/bin/python

--row FLAGS (repeatable) runs those rows instead of the built-in ones, e.g. the camera-motion
table of the README (clips from `pipeline make-clips --kind camera`, see "Motion as an input"):

  python3 bench/ablate.py --data cam --out /tmp/cam-ablation \
      --row "--inputs features,motion --group-by ^(.*)-[0-9]+\\.mp4$" \
      --row "--inputs features,motion --fusion early --group-by ^(.*)-[0-9]+\\.mp4$" \
      --row "--inputs motion --group-by ^(.*)-[0-9]+\\.mp4$"

Runs already finished (their metrics.json is there) are read back, not retrained, so an
interrupted ablation carries on. Prints a Markdown table; --json writes every run's numbers.
Standard library only."""
import argparse, json, os, shlex, statistics, subprocess, sys, time

# The recipe before this ablation (pipeline 0.1.0 and the first releases), spelled out so the
# row does not move when the defaults do.
OLD = ["--fps", "4", "--activation", "none", "--dropout", "0.2", "--projection-dropout",
       "--lr", "3e-3", "--schedule", "cosine", "--epochs", "30", "--select", "best",
       "--patience", "8", "--clip-len", "30", "--normalize", "per-feature", "--adam-epsilon", "1e-5"]


def without(flags, *names):
    """`flags` minus each `--name value` pair (or lone `--name`) in names."""
    out, skip = [], False
    for i, f in enumerate(flags):
        if skip:
            skip = False
            continue
        if f in names:
            skip = i + 1 < len(flags) and not flags[i + 1].startswith("--")
            continue
        out.append(f)
    return out


ROWS = [
    ("old defaults (4 fps, per-feature normalisation, linear projection, dropout 0.2 twice, cosine 3e-3, 30 epochs, best val epoch)", OLD),
    ("old + every frame", without(OLD, "--fps") + ["--stride", "1"]),
    ("old + ReLU after the projection", without(OLD, "--activation") + ["--activation", "relu"]),
    ("old + dropout 0.3 on the input only", without(OLD, "--dropout", "--projection-dropout") + ["--dropout", "0.3"]),
    ("old + fixed schedule (constant 1e-3, 60 epochs, last epoch)",
     without(OLD, "--lr", "--schedule", "--epochs", "--select", "--patience")
     + ["--lr", "1e-3", "--schedule", "constant", "--epochs", "60", "--select", "last"]),
    ("new defaults", []),
    ("new, linear projection", ["--activation", "none"]),
    ("new, dropout after the projection too", ["--projection-dropout"]),
    ("new, best val epoch (--select best --patience 8)", ["--select", "best", "--patience", "8"]),
    ("new, cosine from 3e-3", ["--schedule", "cosine", "--lr", "3e-3"]),
    ("new, 4 fps", ["--fps", "4"]),
    ("new, 5 fps", ["--fps", "5"]),
    ("new, no weight decay", ["--weight-decay", "0"]),
    ("new, weight decay 0.1", ["--weight-decay", "0.1"]),
    ("new, 30 epochs", ["--epochs", "30"]),
    ("new, GRU", ["--cell", "gru"]),
    ("new with AdamW epsilon 1e-5, per-feature normalisation", ["--normalize", "per-feature", "--adam-epsilon", "1e-5"]),
    ("new with AdamW epsilon 1e-5, global normalisation (one mean and deviation for all features)",
     ["--normalize", "global", "--adam-epsilon", "1e-5"]),
    ("old + no normalisation", without(OLD, "--normalize") + ["--normalize", "none"]),
    ("new, AdamW epsilon 1e-5 (burn's default)", ["--adam-epsilon", "1e-5"]),
]


def summary(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def fmt(s):
    if s is None:
        return "-"
    return f"{s['mean']:.3f} ± {s['std']:.3f} ({s['min']:.3f}-{s['max']:.3f})"


def train(args, row, flags, seed):
    out = os.path.join(args.out, f"row{row:02d}", f"seed{seed}")
    metrics = os.path.join(out, "metrics.json")
    if not os.path.exists(metrics):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        if os.path.exists(out):
            subprocess.run(["rm", "-rf", out], check=True)
        cmd = [args.pipeline, "train", "--task", "classify", "--data", args.data, "--out", out,
               "--cache", args.cache, "--device", "cpu", "--seed", str(seed)] + flags
        started = time.perf_counter()
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            sys.exit(f"ablate.py: {' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        print(f"  row {row} seed {seed}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    with open(metrics) as f:
        m = json.load(f)
    test = m.get("test") or {}
    return {"seed": seed, "dir": out, "val": m["validation"].get("accuracy"),
            "test": test.get("accuracy"), "baseline_test": test.get("baseline_accuracy"),
            # A head fused late keeps its epochs in each stream's folder.
            "epochs": len(m.get("epochs", [])), "seconds": m["train_seconds"]}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="a manifest or class folders with a test split")
    p.add_argument("--out", required=True, help="folder for the model folders, one per row and seed")
    p.add_argument("--pipeline", default="target/debug/pipeline")
    p.add_argument("--cache", help="feature cache (default: OUT/cache)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--rows", help="comma-separated row numbers to run (default: all)")
    p.add_argument("--row", action="append", metavar="FLAGS",
                   help="a row of train flags, instead of the built-in rows (repeatable)")
    p.add_argument("--reference", metavar="PYTHON", help="a Python with torch: add the plain PyTorch recipe row")
    p.add_argument("--json", metavar="FILE", help="write every run's numbers here")
    args = p.parse_args()
    args.cache = args.cache or os.path.join(args.out, "cache")
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = [(flags, shlex.split(flags)) for flags in args.row] if args.row else ROWS
    chosen = [int(r) for r in args.rows.split(",")] if args.rows else range(len(rows))
    results = []
    for row in chosen:
        name, flags = rows[row]
        print(f"row {row}: {name}: {' '.join(flags) or '(defaults)'}", file=sys.stderr, flush=True)
        runs = [train(args, row, flags, seed) for seed in seeds]
        results.append({"row": row, "name": name, "flags": flags, "runs": runs,
                        "test": summary([r["test"] for r in runs]),
                        "val": summary([r["val"] for r in runs]),
                        "baseline_test": summary([r["baseline_test"] for r in runs])})
    if args.reference:
        # The plain recipe reads every frame: the features of the every-frame row.
        every_frame = train(args, 1, ROWS[1][1], seeds[0])["dir"]
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_reference.py")
        cmd = [args.reference, script, "--model-dir", every_frame, "--recipe", "plain",
               "--seeds", ",".join(map(str, seeds)), "--threads", "2", "--json"]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            sys.exit(f"ablate.py: {' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
        ref = json.loads(done.stdout.strip().splitlines()[-1])
        runs = [{"seed": r["seed"], "val": r.get("val_accuracy"), "test": r.get("test_accuracy")}
                for r in ref["runs"]]
        results.append({"row": "plain", "name": "plain PyTorch recipe (bench/train_reference.py --recipe plain)",
                        "flags": [], "runs": runs, "test": summary([r["test"] for r in runs]),
                        "val": summary([r["val"] for r in runs]), "baseline_test": None})
    print(f"| recipe | test accuracy, mean ± std (min-max) over seeds {args.seeds} | val | order-blind baseline, test |")
    print("|---|---|---|---|")
    for r in results:
        print(f"| {r['name']} | {fmt(r['test'])} | {fmt(r['val']).split(' (')[0]} | "
              f"{fmt(r['baseline_test']).split(' (')[0]} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
