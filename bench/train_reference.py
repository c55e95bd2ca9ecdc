"""PyTorch version of the recipe `pipeline train` uses, run on the SAME cached features.

It reads a model folder written by `pipeline train --task classify` (config.json and
clips.jsonl, whose `features` entries point at the safetensors feature cache), rebuilds the
train / val / test sequences from the clips' `split` ("train", "val", "test"), and trains a head
with PyTorch in one of two recipes, so the Rust head's accuracy and speed can be set beside what
the reference framework gets on identical inputs.

Splits: train clips are trained on; val clips are scored every epoch (and, in the pipeline
recipe with selection best only, used to choose the kept epoch); test clips are held out for a
final score, never used for any choice: the kept model is scored on them ONCE, after training
and selection.
Without test clips the test score is reported as n/a (null in the JSON).

--recipe pipeline (the default): a mirror of `pipeline train --task classify`, trained with
  the recipe the model folder records (config.json's `model` and, from version 3, `recipe`)
  sequences   a clip of T <= clip_len steps is used whole; a longer one is sampled to clip_len
              rows, indices (2k+1)*T // (2*clip_len), k = 0..clip_len-1 (clip_len of config.json)
  normalise   recipe.normalization: per-feature (each feature's mean and population std over
              every step of every training sequence, std clamped to >= 1e-6; the fallback for
              folders without it), global (one mean and std pooled over all features) or none;
              applied to train, val and test
  model       dropout(p) on the normalised input -> Linear(input_dim, projection) -> activation
              (model.activation: relu or identity) -> dropout(p) again only if
              model.projection_dropout -> nn.LSTM/GRU/RNN(tanh), `layers` x `hidden`, dropout p
              between layers -> Linear(hidden, classes) at every step; a clip's logits are read
              at its own last step (batches are zero-padded at the end; the recurrence is
              causal, so padding never reaches those logits); cell, hidden, projection, layers,
              activation, projection_dropout and p (model.dropout) from config.json
  loss        cross-entropy of those logits
  optimiser   AdamW(lr, weight_decay, eps=1e-5), each parameter tensor's gradient clipped to
              norm clip_norm (as burn's GradientClipping::Norm does); lr of epoch e of E by the
              schedule, constant in an epoch: constant, lr; or cosine,
              lr * (0.1 + 0.9 * 0.5 * (1 + cos(pi * e / E)))
  batches     `batch` clips, reshuffled every epoch with the same SplitMix64 Fisher-Yates shuffle
              as the Rust trainer, so with the same --seed the batches hold the same clips in the
              same order as in `pipeline train`
  stopping    selection last: all E epochs, no early stopping; the model after the final epoch
              is kept (val is scored every epoch and chooses nothing). selection best: keep the
              epoch with the best validation accuracy, ties going to the lower validation loss;
              stop after `patience` epochs without such an improvement
  recipe      epochs, batch, lr, schedule, selection, patience, weight_decay and clip_norm from
              config.json's `recipe`. A folder trained with `pipeline train`'s current defaults
              records: ReLU after the projection, dropout 0.3 on the input only, AdamW with a
              constant lr 1e-3, weight decay 0.01, 60 epochs, the last epoch kept, batch 32
              (clip_norm 1). What a folder does not record (folders before version 3: no
              `recipe`, no model.activation / projection_dropout) is the old recipe: identity
              activation, dropout after the projection too, cosine from lr 3e-3 over 30 epochs,
              best epoch with patience 8, weight decay 0.01, batch 32, clip_norm 1.
              Command-line options win over the folder (see below); the header line prints the
              resolved recipe and where it came from.
  What cannot match bit for bit: weight initialisation (PyTorch's defaults; burn uses Xavier
  for its recurrent cells) and the dropout masks. `--clip-mode global --eps 1e-8` gives
  PyTorch's usual clipping and eps instead.

--recipe plain: what a competent PyTorch user writes, nothing taken from the Rust trainer
  sequences   every frame of each clip: every row of its cached features (clip_len of
              config.json is ignored; the sampling is whatever the model folder was trained
              with, so train the folder with every frame sampled, e.g. `--stride 1`)
  normalise   none: raw features (with --normalize: the pipeline recipe's normalisation)
  model       Dropout(0.3) -> Linear(input_dim, 256) -> ReLU -> nn.LSTM(256 -> 256 hidden,
              1 layer, batch_first) -> Linear(256, classes), read at each clip's last real step
              (zero-padded batches, as above); PyTorch's default initialisation
  loss        cross-entropy of those logits
  optimiser   AdamW(lr 1e-3, weight_decay 1e-2, eps 1e-8), one global gradient-norm clip of 1.0
              (clip_grad_norm_(model.parameters(), 1.0)), constant lr
  batches     32, order torch.randperm from torch's global generator each epoch; 60 epochs
  stopping    none, and no selection: the model after the final epoch is the one scored on
              val and test (val is still scored and printed every epoch, never used)
  seeding     torch.manual_seed(seed) once at the start of the run (initialisation, dropout
              masks and batch order all come from it)
  --epochs, --lr, --batch, --dropout and --hidden override either recipe's values (the
  defaults are the recipe's own); --cell, --activation, --projection-dropout, --schedule,
  --select, --patience, --weight-decay, --clip-mode and --eps are pipeline-only, --normalize
  plain-only.

Run:   ../.venv-ref/bin/python bench/train_reference.py --model-dir M [--recipe plain]
           [--seed S | --seeds 0,1,2] [--threads 2] [--json]
       e.g. ../.venv-ref/bin/python bench/train_reference.py --model-dir M --recipe plain --seeds 0,1,2
       (the venv path is relative to the repository root)
Needs: torch and numpy (the reference venv of ../shared/bench/reference_pipeline.py).
Prints a header (clip counts, the model, in the pipeline recipe the resolved recipe and where
it came from, and in the plain recipe the steps per clip, min/median/max), one line per epoch,
then a summary: the kept epoch and its validation accuracy, the test accuracy of the kept
model, training seconds (feature loading excluded; normalisation statistics, initialisation and
the per-epoch validation included, as in `pipeline train`; the test scoring excluded) and
sequences/s (training sequences x epochs run / training seconds).
--seeds runs the recipe once per seed in one process (features loaded once) and ends with a
line giving test and val accuracy over the seeds: mean, min-max and sample std.
With --json, one JSON object last: the run's fields (with --seeds: a `runs` list of them and a
`summary`)."""
import argparse, copy, json, math, os, statistics as stats, struct, sys, time
import numpy as np
import torch
from torch import nn

DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16}
MASK64 = (1 << 64) - 1


def fail(message):
    print(f"train_reference.py: {message}", file=sys.stderr)
    sys.exit(2)


def read_safetensors(path):
    """The tensors of a safetensors file as numpy arrays: u64 LE header length, JSON header,
    then the raw little-endian data."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = memoryview(data)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = DTYPES.get(info["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        array = np.frombuffer(body[start:end], dtype=np.dtype(dtype).newbyteorder("<"))
        out[name] = array.reshape(info["shape"])
    return out


def uniform(n, length):
    """`length` indices spread evenly over 0..n (the middle of each part), or all when n <= length."""
    if n <= length:
        return list(range(n))
    return [(2 * k + 1) * n // (2 * length) for k in range(length)]


class SplitMix64:
    """The Rust trainer's shuffling generator (temporal::train::SplitMix64)."""

    def __init__(self, seed):
        self.state = seed & MASK64

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def shuffle(self, order):
        for i in range(len(order) - 1, 0, -1):
            j = self.next_u64() % (i + 1)
            order[i], order[j] = order[j], order[i]
        return order


class Head(nn.Module):
    """[batch, time, input_dim] (already normalised) -> logits [batch, time, classes]."""

    def __init__(self, cell, input_dim, projection, hidden, layers, dropout, classes,
                 activation, projection_dropout):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.projection = nn.Linear(input_dim, projection)
        self.relu = activation == "relu"
        self.projection_dropout = projection_dropout
        kind = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell]
        extra = {"nonlinearity": "tanh"} if cell == "rnn" else {}
        self.rnn = kind(projection, hidden, num_layers=layers, batch_first=True,
                        dropout=dropout if layers > 1 else 0.0, **extra)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        x = self.projection(self.dropout(x))
        if self.relu:
            x = torch.relu(x)
        if self.projection_dropout:
            x = self.dropout(x)
        out, _ = self.rnn(x)
        return self.head(out)


class Plain(nn.Module):
    """The plain recipe's model: [batch, time, input_dim] -> logits [batch, time, classes]."""

    def __init__(self, input_dim, projection, hidden, dropout, classes):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.projection = nn.Linear(input_dim, projection)
        self.rnn = nn.LSTM(projection, hidden, num_layers=1, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        x = torch.relu(self.projection(self.dropout(x)))
        out, _ = self.rnn(x)
        return self.head(out)


SPLITS = ("train", "val", "test")


def load(model_dir, classes, input_dim):
    """Every split's clips as (float32 [T, D] array of ALL cached rows, class index), in
    clips.jsonl order; a recipe samples them further itself."""
    index = {c: i for i, c in enumerate(classes)}
    splits = {s: [] for s in SPLITS}
    skipped = 0
    with open(os.path.join(model_dir, "clips.jsonl")) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            clip = json.loads(line)
            label = index.get(clip.get("label"))
            if label is None or clip.get("split") not in splits:
                skipped += 1
                print(f"warning: clips.jsonl line {line_no}: label {clip.get('label')!r} / split "
                      f"{clip.get('split')!r} not usable, skipped", file=sys.stderr)
                continue
            path = clip["features"]
            if not os.path.isabs(path) and not os.path.exists(path):
                path = os.path.join(model_dir, path)
            try:
                tensors = read_safetensors(path)
            except (OSError, ValueError) as e:
                fail(f"reading the features of {clip.get('path')}: {e}")
            features = tensors.get("features")
            if features is None or features.ndim != 2 or features.shape[1] != input_dim:
                fail(f"{path}: expected a `features` tensor [T, {input_dim}], got "
                     f"{None if features is None else list(features.shape)}")
            if features.shape[0] == 0:
                skipped += 1
                continue
            splits[clip["split"]].append((features, label))
    return splits, skipped


def sequences_for(clips, clip_len):
    """Contiguous float32 copies: sampled to clip_len rows (pipeline) or every row (None)."""
    out = []
    for features, label in clips:
        rows = features if clip_len is None else features[uniform(features.shape[0], clip_len)]
        # A copy: the raw rows are read-only views of the file's bytes.
        out.append((np.array(rows, dtype=np.float32, order="C"), label))
    return out


def statistics(train, dim):
    """Per-feature mean and population std over every training step, in f64, std >= 1e-6."""
    total, sq, n = np.zeros(dim), np.zeros(dim), 0
    for x, _ in train:
        x = x.astype(np.float64)
        total += x.sum(0)
        sq += (x * x).sum(0)
        n += x.shape[0]
    n = max(n, 1)
    mean = total / n
    std = np.maximum(np.sqrt(np.maximum(sq / n - mean * mean, 0.0)), 1e-6)
    return mean.astype(np.float32), std.astype(np.float32)


def batch_of(sequences, ids):
    xs = [sequences[i][0] for i in ids]
    x = nn.utils.rnn.pad_sequence(xs, batch_first=True)  # zero-padded at the end
    lengths = torch.tensor([s.shape[0] for s in xs])
    labels = torch.tensor([sequences[i][1] for i in ids])
    return x, lengths, labels


def last_logits(model, x, lengths):
    out = model(x)
    return out[torch.arange(out.shape[0]), lengths - 1]


def evaluate(model, sequences):
    """Mean cross-entropy per clip and accuracy, batches of 64 in order, as the Rust evaluate."""
    if not sequences:
        return float("nan"), None
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(sequences), 64):
            x, lengths, labels = batch_of(sequences, range(start, min(start + 64, len(sequences))))
            logits = last_logits(model, x, lengths)
            loss_sum += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
            correct += (logits.argmax(1) == labels).sum().item()
    return loss_sum / len(sequences), correct / len(sequences)


def fmt(value, digits=4):
    return "n/a" if value is None else f"{value:.{digits}f}"


def train_one(args, h, data, seed):
    """One training run of the chosen recipe with `seed`; prints its epochs and summary and
    returns its results. `data` holds the recipe's train/val/test numpy sequences."""
    train_np, val_np, test_np = data["train"], data["val"], data["test"]
    # Training time starts here, as in `pipeline train`: statistics, initialisation, epochs.
    started = time.perf_counter()
    if h["normalize"] not in (None, "none"):
        mean, std = statistics(train_np, h["input_dim"])
        if h["normalize"] == "global":
            # One mean and deviation pooled over every feature (`--normalize global`).
            pooled = mean.astype(np.float64).mean()
            var = (std.astype(np.float64) ** 2 + (mean - pooled) ** 2).mean()
            mean = np.full_like(mean, pooled)
            std = np.full_like(std, max(np.sqrt(var), 1e-6))
        prepare = lambda seqs: [(torch.from_numpy((x - mean) / std), y) for x, y in seqs]
    else:
        prepare = lambda seqs: [(torch.from_numpy(x), y) for x, y in seqs]
    train, val, test = prepare(train_np), prepare(val_np), prepare(test_np)
    torch.manual_seed(seed)
    plain = args.recipe == "plain"
    if plain:
        model = Plain(h["input_dim"], h["projection"], h["hidden"], h["dropout"], h["classes"])
    else:
        model = Head(h["cell"], h["input_dim"], h["projection"], h["hidden"], h["layers"],
                     h["dropout"], h["classes"], h["activation"], h["projection_dropout"])
    params = list(model.parameters())
    optimizer = torch.optim.AdamW(params, lr=h["lr"], weight_decay=h["weight_decay"], eps=h["eps"])
    rng = None if plain else SplitMix64(seed)
    # Selection last (always in plain): the final epoch's model is kept, nothing stops early.
    keep_last = h["selection"] == "last"
    history, best_score, best_loss, best_epoch, best_state, since_best = [], None, None, 0, None, 0
    for epoch in range(h["epochs"]):
        if not keep_last and since_best >= h["patience"]:
            break
        epoch_started = time.perf_counter()
        if plain:
            lr = h["lr"]
            order = torch.randperm(len(train)).tolist()
        else:
            lr = h["lr"]
            if h["schedule"] == "cosine":
                lr *= 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * epoch / max(h["epochs"], 1)))
            for group in optimizer.param_groups:
                group["lr"] = lr
            order = rng.shuffle(list(range(len(train))))
        model.train()
        loss_sum, correct = 0.0, 0
        for start in range(0, len(order), max(h["batch"], 1)):
            x, lengths, labels = batch_of(train, order[start:start + h["batch"]])
            logits = last_logits(model, x, lengths)
            loss = nn.functional.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if h["clip_mode"] == "global":
                nn.utils.clip_grad_norm_(params, h["clip_norm"])
            else:
                for q in params:
                    nn.utils.clip_grad_norm_([q], h["clip_norm"])
            optimizer.step()
            loss_sum += loss.item() * labels.shape[0]
            correct += (logits.detach().argmax(1) == labels).sum().item()
        train_loss, train_acc = loss_sum / len(train), correct / len(train)
        val_loss, val_acc = evaluate(model, val)
        seconds = time.perf_counter() - epoch_started
        history.append({"epoch": epoch + 1, "lr": lr, "train_loss": train_loss,
                        "train_accuracy": train_acc, "val_loss": val_loss if val else None,
                        "val_accuracy": val_acc, "seconds": seconds})
        val_text = f"  val loss {val_loss:.4f} acc {val_acc:.3f}" if val_acc is not None else ""
        print(f"epoch {epoch + 1:>3}  lr {lr:.2e}  train loss {train_loss:.4f} acc {train_acc:.3f}"
              f"{val_text}  ({seconds:.2f} s)", flush=True)
        if keep_last:
            continue  # no selection: the final epoch's model is the one kept
        # Without validation clips the training loss is the score, as in the Rust trainer.
        score = val_acc if val_acc is not None else -train_loss
        loss = val_loss if val_acc is not None else train_loss
        if best_score is None or score > best_score or (score == best_score and loss < best_loss):
            best_score, best_loss, best_epoch, since_best = score, loss, epoch + 1, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since_best += 1
    train_seconds = time.perf_counter() - started

    epochs_run = len(history)
    if not keep_last:
        model.load_state_dict(best_state)
    kept_epoch = epochs_run if keep_last else best_epoch
    kept_loss, kept_acc = evaluate(model, val)
    # The held-out score: once, on the kept model, after every choice has been made.
    test_loss, test_acc = evaluate(model, test)
    per_second = len(train) * epochs_run / max(train_seconds, 1e-9)
    result = {"seed": seed, "epochs_run": epochs_run, "kept_epoch": kept_epoch}
    if keep_last:
        print(f"final epoch {epochs_run} kept ({'no selection' if plain else 'selection last'}): "
              f"val accuracy {fmt(kept_acc)}" + (f", loss {kept_loss:.4f}" if val else ""))
    else:
        best_val = history[best_epoch - 1]["val_accuracy"]
        print(f"best epoch {best_epoch} of {epochs_run}: val accuracy "
              f"{fmt(best_val)} (kept model re-evaluated: {fmt(kept_acc)}, loss {kept_loss:.4f})")
        result.update({"best_epoch": best_epoch, "best_val_accuracy": best_val,
                       "best_val_loss": history[best_epoch - 1]["val_loss"] if val else None})
    if test:
        print(f"test accuracy {test_acc:.4f}, loss {test_loss:.4f} ({len(test)} test sequences, "
              f"kept model of epoch {kept_epoch}, scored once)")
    else:
        print("test accuracy n/a: no test clips in clips.jsonl")
    print(f"trained {epochs_run} epoch(s) in {train_seconds:.2f} s: {per_second:.0f} sequences/s "
          f"({len(train)} train sequences, {torch.get_num_threads()} thread(s))", flush=True)
    result.update({
        "val_accuracy": kept_acc, "val_loss": kept_loss if val else None,
        "test_accuracy": test_acc, "test_loss": test_loss if test else None,
        "test_sequences": len(test), "train_seconds": train_seconds,
        "sequences_per_second": per_second, "history": history})
    return result


def spread(values):
    """mean, min, max and sample std of a list of numbers (None where not defined)."""
    if not values or any(v is None for v in values):
        return {"mean": None, "min": None, "max": None, "std": None}
    return {"mean": stats.fmean(values), "min": min(values), "max": max(values),
            "std": stats.stdev(values) if len(values) > 1 else None}


def spread_text(name, s):
    if s["mean"] is None:
        return f"{name} n/a"
    return (f"{name} mean {s['mean']:.4f}, min-max {s['min']:.4f}-{s['max']:.4f}, "
            f"std {fmt(s['std'])}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", required=True, help="a folder written by `pipeline train`")
    p.add_argument("--recipe", choices=["pipeline", "plain"], default="pipeline",
                   help="pipeline: the mirror of `pipeline train`; plain: the usual PyTorch recipe")
    p.add_argument("--epochs", type=int,
                   help="pipeline: config.json's recipe (without one: 30), plain: 60")
    p.add_argument("--lr", type=float, help="pipeline: config.json's recipe (without one: 3e-3, "
                                            "the cosine peak), plain: 1e-3 (constant)")
    p.add_argument("--batch", type=int, help="pipeline: config.json's recipe (without one: 32), "
                                             "plain: 32")
    p.add_argument("--schedule", choices=["constant", "cosine"],
                   help="pipeline only: the lr schedule (config.json's recipe; without one: "
                        "cosine)")
    p.add_argument("--select", choices=["last", "best"],
                   help="pipeline only: keep the last epoch, or the best by val accuracy with "
                        "early stopping (config.json's recipe; without one: best)")
    p.add_argument("--patience", type=int,
                   help="pipeline only, selection best: config.json's recipe (otherwise 8)")
    p.add_argument("--weight-decay", type=float,
                   help="pipeline only: AdamW weight decay (config.json's recipe; without one: "
                        "0.01)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", help="comma-separated seeds: one run per seed, then a summary")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--cell", choices=["lstm", "gru", "rnn"], help="pipeline only: override config.json")
    p.add_argument("--activation", choices=["relu", "identity", "none"],
                   help="pipeline only: after the projection (none = identity; config.json's "
                        "model.activation, without one identity)")
    p.add_argument("--projection-dropout", choices=["on", "off"],
                   help="pipeline only: dropout after the projection too (config.json's "
                        "model.projection_dropout, without one on)")
    p.add_argument("--hidden", type=int, help="pipeline: config.json, plain: 256")
    p.add_argument("--dropout", type=float, help="pipeline: config.json, plain: 0.3")
    p.add_argument("--clip-mode", choices=["global", "per-tensor"],
                   help="pipeline only: gradient-norm clipping over all parameters at once, or per "
                        "tensor as burn does (default per-tensor)")
    p.add_argument("--eps", type=float, help="pipeline only: AdamW eps (burn 1e-5, the default; "
                                             "PyTorch's default 1e-8)")
    p.add_argument("--normalize", action="store_true",
                   help="plain only: normalise the inputs as the pipeline recipe does")
    p.add_argument("--json", action="store_true", help="print one JSON object with the results last")
    args = p.parse_args()

    plain = args.recipe == "plain"
    if plain:
        wrong = [f"--{n.replace('_', '-')}" for n in
                 ("cell", "activation", "projection_dropout", "schedule", "select", "patience",
                  "weight_decay", "clip_mode", "eps")
                 if getattr(args, n) is not None]
        if wrong:
            fail(f"{', '.join(wrong)}: pipeline-recipe option(s), not part of --recipe plain")
    elif args.normalize:
        fail("--normalize is for --recipe plain (the pipeline recipe always normalises)")
    if args.seeds is not None:
        if "--seed" in sys.argv[1:] or any(a.startswith("--seed=") for a in sys.argv[1:]):
            fail("give --seed or --seeds, not both")
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            fail(f"--seeds {args.seeds!r}: expected comma-separated integers")
        if not seeds:
            fail("--seeds: no seeds given")
    else:
        seeds = [args.seed]

    try:
        with open(os.path.join(args.model_dir, "config.json")) as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"reading {args.model_dir}/config.json: {e}")
    task = config.get("task") or config.get("model", {}).get("head", {}).get("task")
    if task != "classify":
        fail(f"task {task!r}: only the classify task is reproduced here")
    m = config["model"]
    pick = lambda given, default: given if given is not None else default
    input_dim, classes, clip_len = m["input_dim"], config["classes"], config["clip_len"]
    if plain:
        h = {"cell": "lstm", "hidden": pick(args.hidden, 256), "dropout": pick(args.dropout, 0.3),
             "projection": 256, "layers": 1, "epochs": pick(args.epochs, 60),
             "lr": pick(args.lr, 1e-3), "batch": pick(args.batch, 32), "patience": None,
             "clip_mode": "global", "eps": 1e-8, "normalize": "per-feature" if args.normalize else None, "clip_len": None,
             "activation": "relu", "projection_dropout": False, "schedule": "constant",
             "selection": "last", "weight_decay": 1e-2, "clip_norm": 1.0}
    else:
        # What the folder records (config.json version 3); older folders lack `recipe` and
        # model.activation / projection_dropout, and were trained with the old recipe below.
        recipe = config.get("recipe")
        if recipe is not None and not isinstance(recipe, dict):
            fail(f"config.json: `recipe` is {recipe!r}, not an object")
        r = recipe or {}
        given = lambda value, default: value if value is not None else default
        selection = pick(args.select, given(r.get("selection"), "best"))
        if selection == "last" and args.patience is not None:
            fail("--patience is for selection best (the recipe keeps the last epoch: add "
                 "--select best)")
        activation = pick(args.activation, m.get("activation", "identity"))
        h = {"cell": (args.cell or m["cell"]).lower(), "hidden": pick(args.hidden, m["hidden"]),
             "dropout": pick(args.dropout, m["dropout"]), "projection": m["projection"],
             "layers": max(1, m["layers"]),
             "activation": "identity" if activation == "none" else activation,
             "projection_dropout": (args.projection_dropout == "on"
                                    if args.projection_dropout is not None
                                    else bool(m.get("projection_dropout", True))),
             "epochs": pick(args.epochs, given(r.get("epochs"), 30)),
             "lr": pick(args.lr, given(r.get("lr"), 3e-3)),
             "batch": pick(args.batch, given(r.get("batch"), 32)),
             "schedule": pick(args.schedule, given(r.get("schedule"), "cosine")),
             "selection": selection,
             "patience": (pick(args.patience, given(r.get("patience"), 8))
                          if selection == "best" else None),
             "weight_decay": pick(args.weight_decay, given(r.get("weight_decay"), 0.01)),
             "clip_norm": float(given(r.get("clip_norm"), 1.0)),
             "clip_mode": pick(args.clip_mode, "per-tensor"),
             "eps": pick(args.eps, 1e-5),
             "normalize": given(r.get("normalization"), "per-feature"), "clip_len": clip_len}
        if h["activation"] not in ("relu", "identity"):
            fail(f"config.json: unknown model.activation {h['activation']!r}")
        if h["schedule"] not in ("constant", "cosine"):
            fail(f"config.json: unknown recipe.schedule {h['schedule']!r}")
        if h["selection"] not in ("last", "best"):
            fail(f"config.json: unknown recipe.selection {h['selection']!r}")
        flags = {"epochs": "--epochs", "lr": "--lr", "batch": "--batch", "schedule": "--schedule",
                 "select": "--select", "patience": "--patience", "weight_decay": "--weight-decay",
                 "activation": "--activation", "projection_dropout": "--projection-dropout",
                 "dropout": "--dropout", "hidden": "--hidden", "cell": "--cell",
                 "clip_mode": "--clip-mode", "eps": "--eps"}
        overridden = [flag for name, flag in flags.items() if getattr(args, name) is not None]
        source = ("config.json's recipe" if recipe is not None
                  else "no recipe in config.json: the old recipe")
        if overridden:
            source += ", overridden by " + " ".join(overridden)
    h.update({"input_dim": input_dim, "classes": len(classes)})
    if h["cell"] not in ("lstm", "gru", "rnn"):
        fail(f"unknown cell {h['cell']!r}")
    if args.threads:
        torch.set_num_threads(args.threads)

    loading = time.perf_counter()
    clips, skipped = load(args.model_dir, classes, input_dim)
    data = {s: sequences_for(clips[s], h["clip_len"]) for s in SPLITS}
    loading = time.perf_counter() - loading
    if not data["train"]:
        fail("no training clips in clips.jsonl")
    n_train, n_val, n_test = (len(data[s]) for s in SPLITS)
    counts = f"{n_train} train / {n_val} val" + (f" / {n_test} test" if n_test else "")
    steps = [x.shape[0] for s in SPLITS for x, _ in data[s]]
    steps_info = {"min": min(steps), "median": float(np.median(steps)), "max": max(steps)}
    if plain:
        print(f"# recipe plain: {counts} clips ({skipped} skipped), loaded in {loading:.2f} s; "
              f"steps per clip min/median/max {steps_info['min']}/{steps_info['median']:g}/"
              f"{steps_info['max']} (every frame; clip_len ignored); lstm hidden {h['hidden']}, "
              f"projection {h['projection']} + ReLU, dropout {h['dropout']}, {len(classes)} "
              f"classes; {'normalised' if h['normalize'] else 'raw'} inputs; {h['epochs']} epochs, "
              f"lr {h['lr']:g} constant, batch {h['batch']}; torch {torch.__version__}, "
              f"{torch.get_num_threads()} thread(s)", flush=True)
    else:
        where = "the input" + (" and after the projection" if h["projection_dropout"] else " only")
        if h["layers"] > 1:
            where += " and between layers"
        select = ("select best, patience " + str(h["patience"]) if h["selection"] == "best"
                  else "last epoch kept")
        schedule = "constant" if h["schedule"] == "constant" else "cosine peak"
        print(f"# {counts} clips ({skipped} skipped), loaded in "
              f"{loading:.2f} s; {h['cell']} hidden {h['hidden']} x{h['layers']}, projection "
              f"{h['projection']} + {h['activation']}, dropout {h['dropout']} on {where}, "
              f"{len(classes)} classes, clip_len {clip_len}; recipe ({source}): {h['epochs']} "
              f"epochs, lr {h['lr']:g} {schedule}, {select}, AdamW weight decay "
              f"{h['weight_decay']:g} eps {h['eps']:g}, clip {h['clip_norm']:g} {h['clip_mode']}, "
              f"batch {h['batch']}; torch {torch.__version__}, {torch.get_num_threads()} "
              f"thread(s)", flush=True)

    # The first AdamW built in a process pays seconds of lazy imports (torch._dynamo): library
    # start-up, not training, so it is paid before the clock starts.
    torch.optim.AdamW([nn.Parameter(torch.zeros(1))])
    runs = []
    for seed in seeds:
        if args.seeds is not None:
            print(f"## seed {seed}", flush=True)
        runs.append(train_one(args, h, data, seed))

    summary = None
    if args.seeds is not None:
        summary = {"seeds": seeds, "test_accuracy": spread([r["test_accuracy"] for r in runs]),
                   "val_accuracy": spread([r["val_accuracy"] for r in runs]),
                   "train_seconds": spread([r["train_seconds"] for r in runs])}
        test_text = (spread_text("test accuracy", summary["test_accuracy"]) if n_test
                     else "test accuracy n/a (no test clips)")
        print(f"over {len(seeds)} seed(s) ({','.join(map(str, seeds))}), recipe {args.recipe}: "
              f"{test_text}; {spread_text('val accuracy', summary['val_accuracy'])}; "
              f"{summary['train_seconds']['mean']:.2f} s per seed", flush=True)
    if args.json:
        common = {
            "model_dir": args.model_dir, "recipe": args.recipe, "cell": h["cell"],
            "hidden": h["hidden"], "projection": h["projection"], "layers": h["layers"],
            "dropout": h["dropout"], "classes": len(classes), "clip_len": h["clip_len"],
            "steps": steps_info, "normalize": h["normalize"], "train_sequences": n_train,
            "val_sequences": n_val, "test_sequences": n_test, "load_seconds": loading,
            "threads": torch.get_num_threads(), "epochs": h["epochs"], "patience": h["patience"],
            "lr": h["lr"], "batch": h["batch"], "clip_mode": h["clip_mode"], "eps": h["eps"],
            "activation": h["activation"], "projection_dropout": h["projection_dropout"],
            "schedule": h["schedule"], "selection": h["selection"],
            "weight_decay": h["weight_decay"], "clip_norm": h["clip_norm"],
            "torch": torch.__version__}
        if summary is None:
            out = {**common, **runs[0]}
        else:
            out = {**common, "seeds": seeds, "runs": runs, "summary": summary}
        print(json.dumps(out, allow_nan=False))


if __name__ == "__main__":
    main()
