"""PyTorch version of the recipe `pipeline train` uses, run on the SAME cached features.

It reads a model folder written by `pipeline train --task classify` (config.json and
clips.jsonl, whose `features` entries point at the safetensors feature cache), rebuilds the
same train/val sequences, and trains the same head with plain PyTorch, so the Rust head's
accuracy and speed can be set beside what the reference framework gets on identical inputs.

  sequences   a clip of T <= clip_len steps is used whole; a longer one is sampled to clip_len
              rows, indices (2k+1)*T // (2*clip_len), k = 0..clip_len-1
  normalise   per-feature mean and (population) std over every step of every training
              sequence, std clamped to >= 1e-6
  model       dropout(p) -> Linear(input_dim, projection) -> dropout(p) -> nn.LSTM/GRU/RNN(tanh),
              `layers` x `hidden`, dropout p between layers -> Linear(hidden, classes) at every
              step; a clip's logits are read at its own last step (batches are zero-padded at
              the end; the recurrence is causal, so padding never reaches those logits)
  loss        cross-entropy of those logits
  optimiser   AdamW(lr, weight_decay=0.01, eps=1e-5), each parameter tensor's gradient clipped
              to norm 1.0 (as burn's GradientClipping::Norm does),
              lr of epoch e of E: lr * (0.1 + 0.9 * 0.5 * (1 + cos(pi * e / E))), constant in an
              epoch
  batches     32, reshuffled every epoch with the same SplitMix64 Fisher-Yates shuffle as the
              Rust trainer, so with the same --seed the batches hold the same clips in the same
              order as in `pipeline train`
  stopping    keep the epoch with the best validation accuracy, ties going to the lower
              validation loss; stop after --patience epochs without such an improvement

What cannot match bit for bit: weight initialisation (PyTorch's defaults; burn uses Xavier
for its recurrent cells) and the dropout masks. `--clip-mode global --eps 1e-8` gives PyTorch's
usual recipe instead (one norm over all gradients, PyTorch's default eps).

Run:   ../.venv-ref/bin/python bench/train_reference.py --model-dir MODEL_DIR [--threads 2] [--json]
Needs: torch and numpy (the reference venv of ../shared/bench/reference_pipeline.py).
Prints one line per epoch, then a summary: best epoch, best validation accuracy, training
seconds (feature loading excluded; normalisation statistics, initialisation and the
per-epoch validation included, as in `pipeline train`) and sequences/s
(training sequences x epochs run / training seconds). With --json, one JSON object last."""
import argparse, copy, json, math, os, struct, sys, time
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

    def __init__(self, cell, input_dim, projection, hidden, layers, dropout, classes):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.projection = nn.Linear(input_dim, projection)
        kind = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell]
        extra = {"nonlinearity": "tanh"} if cell == "rnn" else {}
        self.rnn = kind(projection, hidden, num_layers=layers, batch_first=True,
                        dropout=dropout if layers > 1 else 0.0, **extra)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        x = self.dropout(x)
        x = self.dropout(self.projection(x))
        out, _ = self.rnn(x)
        return self.head(out)


def load(model_dir, clip_len, classes, input_dim):
    """Train and val sequences (lists of (float32 [T, D] array, class index)) in clips.jsonl order."""
    index = {c: i for i, c in enumerate(classes)}
    splits = {"train": [], "val": []}
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
            rows = uniform(features.shape[0], clip_len)
            splits[clip["split"]].append((np.ascontiguousarray(features[rows], dtype=np.float32), label))
    return splits["train"], splits["val"], skipped


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


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", required=True, help="a folder written by `pipeline train`")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--patience", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--cell", choices=["lstm", "gru", "rnn"], help="override config.json")
    p.add_argument("--hidden", type=int, help="override config.json")
    p.add_argument("--dropout", type=float, help="override config.json")
    p.add_argument("--clip-mode", choices=["global", "per-tensor"], default="per-tensor",
                   help="gradient-norm clipping over all parameters at once, or per tensor as burn does")
    p.add_argument("--eps", type=float, default=1e-5, help="AdamW eps (burn 1e-5; PyTorch's default 1e-8)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the results last")
    args = p.parse_args()

    try:
        with open(os.path.join(args.model_dir, "config.json")) as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"reading {args.model_dir}/config.json: {e}")
    task = config.get("task")
    if task != "classify":
        fail(f"task {task!r}: only the classify task is reproduced here")
    m = config["model"]
    cell = (args.cell or m["cell"]).lower()
    hidden = args.hidden if args.hidden is not None else m["hidden"]
    dropout = args.dropout if args.dropout is not None else m["dropout"]
    projection, layers, input_dim = m["projection"], max(1, m["layers"]), m["input_dim"]
    classes, clip_len = config["classes"], config["clip_len"]
    if cell not in ("lstm", "gru", "rnn"):
        fail(f"unknown cell {cell!r}")
    if args.threads:
        torch.set_num_threads(args.threads)

    loading = time.perf_counter()
    train_np, val_np, skipped = load(args.model_dir, clip_len, classes, input_dim)
    loading = time.perf_counter() - loading
    if not train_np:
        fail("no training clips in clips.jsonl")
    print(f"# {len(train_np)} train / {len(val_np)} val clips ({skipped} skipped), loaded in "
          f"{loading:.2f} s; {cell} hidden {hidden} x{layers}, projection {projection}, dropout "
          f"{dropout}, {len(classes)} classes, clip_len {clip_len}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s)", flush=True)

    # The first AdamW built in a process pays seconds of lazy imports (torch._dynamo): library
    # start-up, not training, so it is paid before the clock starts.
    torch.optim.AdamW([nn.Parameter(torch.zeros(1))])
    # Training time starts here, as in `pipeline train`: statistics, initialisation, epochs.
    started = time.perf_counter()
    mean, std = statistics(train_np, input_dim)
    norm = lambda seqs: [(torch.from_numpy((x - mean) / std), y) for x, y in seqs]
    train, val = norm(train_np), norm(val_np)
    torch.manual_seed(args.seed)
    model = Head(cell, input_dim, projection, hidden, layers, dropout, len(classes))
    params = list(model.parameters())
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01, eps=args.eps)
    rng = SplitMix64(args.seed)
    history, best_score, best_loss, best_epoch, best_state, since_best = [], None, None, 0, None, 0
    for epoch in range(args.epochs):
        if since_best >= args.patience:
            break
        epoch_started = time.perf_counter()
        lr = args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * epoch / max(args.epochs, 1))))
        for group in optimizer.param_groups:
            group["lr"] = lr
        order = rng.shuffle(list(range(len(train))))
        model.train()
        loss_sum, correct = 0.0, 0
        for start in range(0, len(order), max(args.batch, 1)):
            x, lengths, labels = batch_of(train, order[start:start + args.batch])
            logits = last_logits(model, x, lengths)
            loss = nn.functional.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if args.clip_mode == "global":
                nn.utils.clip_grad_norm_(params, 1.0)
            else:
                for q in params:
                    nn.utils.clip_grad_norm_([q], 1.0)
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
        # Without validation clips the training loss is the score, as in the Rust trainer.
        score = val_acc if val_acc is not None else -train_loss
        loss = val_loss if val_acc is not None else train_loss
        if best_score is None or score > best_score or (score == best_score and loss < best_loss):
            best_score, best_loss, best_epoch, since_best = score, loss, epoch + 1, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since_best += 1
    train_seconds = time.perf_counter() - started

    model.load_state_dict(best_state)
    kept_loss, kept_acc = evaluate(model, val)
    epochs_run = len(history)
    per_second = len(train) * epochs_run / max(train_seconds, 1e-9)
    best_val = history[best_epoch - 1]["val_accuracy"]
    print(f"best epoch {best_epoch} of {epochs_run}: val accuracy "
          f"{'n/a' if best_val is None else f'{best_val:.4f}'} (kept model re-evaluated: "
          f"{'n/a' if kept_acc is None else f'{kept_acc:.4f}'}, loss {kept_loss:.4f})")
    print(f"trained {epochs_run} epoch(s) in {train_seconds:.2f} s: {per_second:.0f} sequences/s "
          f"({len(train)} train sequences, {torch.get_num_threads()} thread(s))", flush=True)
    if args.json:
        print(json.dumps({
            "model_dir": args.model_dir, "cell": cell, "hidden": hidden, "projection": projection,
            "layers": layers, "dropout": dropout, "classes": len(classes), "clip_len": clip_len,
            "train_sequences": len(train), "val_sequences": len(val), "epochs_run": epochs_run,
            "best_epoch": best_epoch, "best_val_accuracy": best_val, "best_val_loss":
            history[best_epoch - 1]["val_loss"] if val else None,
            "train_seconds": train_seconds, "load_seconds": loading,
            "sequences_per_second": per_second, "threads": torch.get_num_threads(),
            "seed": args.seed, "lr": args.lr, "batch": args.batch, "clip_mode": args.clip_mode,
            "eps": args.eps, "torch": torch.__version__, "history": history}, allow_nan=False))


if __name__ == "__main__":
    main()
