"""Peer pipelines for side-by-side speed comparison: what a user would otherwise write in Python.

A copy of ../shared/bench/reference_pipeline.py with three options added (the output line
names them); nothing else changed:
  --cuda      the torch engine (CNN and LSTM) on the GPU: frames are uploaded per batch and the
              features read back per batch, as the CPU engines return them
  --half      with --cuda, the CNN in float16 (model and input), features returned as float32
  --weights   where the .pth is (default: ../../shared/reference/, beside the project checkout)
bench/compare-gpu.sh runs it against `pipeline bench --device wgpu`.

  decode   PyAV (FFmpeg), threaded, every frame scaled so the shorter side is 224, centre crop 224
  cnn      EfficientNet-Lite0 (../reference weights) features [N,1280], batch 32, two engines:
             ort   - ONNX Runtime CPU (the fastest common CPU engine)
             torch - PyTorch eager, channels-last
  rnn      PyTorch nn.LSTM(1280 -> 512), one layer, over the whole feature sequence

Set-up (once): python3 -m venv .venv-ref && .venv-ref/bin/pip install torch numpy av \
                 onnx onnxruntime efficientnet-lite-pytorch==0.1.0
Run:           .venv-ref/bin/python reference_pipeline.py VIDEO [--threads 2] [--engine ort|torch]
Prints one line of frames/s per stage and end to end (stages run one after another, as a
plain script would). Compare with the project on the same machine, in the same run, as a ratio."""
import argparse, os, tempfile, time, numpy as np, torch, av

HERE = os.path.dirname(os.path.abspath(__file__))
WEIGHTS = os.path.join(HERE, "..", "..", "shared", "reference", "efficientnet-lite0-57934424.pth")
MEAN = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
STD = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]

def frames(path):
    c = av.open(path); s = c.streams.video[0]; s.thread_type = "AUTO"
    for f in c.decode(s):
        k = 224 / min(f.width, f.height)
        W, H = max(224, round(f.width * k)), max(224, round(f.height * k))
        a = f.to_ndarray(width=W, height=H, format="rgb24")
        l, t = (W - 224) // 2, (H - 224) // 2
        yield a[t:t + 224, l:l + 224]

def feature_model(weights):
    from efficientnet_lite_pytorch import EfficientNet
    m = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights).eval()
    class Features(torch.nn.Module):
        def __init__(self):
            super().__init__(); self.m = m
        def forward(self, x):
            return self.m.extract_features(x).mean((2, 3))
    return Features().eval()

def engine(name, threads, weights, cuda=False, half=False):
    torch.set_num_threads(threads)
    model = feature_model(weights)
    if name == "torch":
        dev = torch.device("cuda" if cuda else "cpu")
        dtype = torch.float16 if half else torch.float32
        model = model.to(dev, dtype, memory_format=torch.channels_last)
        def run(x):
            with torch.no_grad():
                x = torch.from_numpy(x).to(dev).to(dtype, memory_format=torch.channels_last)
                return model(x).float().cpu().numpy()
        return run
    import onnxruntime as ort
    path = os.path.join(tempfile.gettempdir(), "efficientnet_lite0_features.onnx")
    if not os.path.exists(path):
        torch.onnx.export(model, torch.zeros(2, 3, 224, 224), path, input_names=["x"], output_names=["f"],
                          dynamic_axes={"x": {0: "n"}}, opset_version=17, dynamo=False)
    so = ort.SessionOptions(); so.intra_op_num_threads = threads
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return lambda x: sess.run(None, {"x": x})[0]

def main():
    ap = argparse.ArgumentParser(); ap.add_argument("video"); ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--engine", default="ort", choices=["ort", "torch"]); ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--cuda", action="store_true"); ap.add_argument("--half", action="store_true")
    ap.add_argument("--weights", default=WEIGHTS)
    a = ap.parse_args()
    if (a.cuda or a.half) and a.engine != "torch":
        ap.error("--cuda and --half are for --engine torch")
    if a.half and not a.cuda:
        ap.error("--half needs --cuda")
    run = engine(a.engine, a.threads, a.weights, a.cuda, a.half)
    dev = "cuda" if a.cuda else "cpu"
    lstm = torch.nn.LSTM(1280, 512, batch_first=True).eval().to(dev)
    run(np.zeros((a.batch, 3, 224, 224), np.float32))  # warm-up
    t0 = time.perf_counter()
    x = np.stack(list(frames(a.video))).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    x = (x - MEAN) / STD
    t1 = time.perf_counter()
    feats = np.concatenate([run(np.ascontiguousarray(x[i:i + a.batch])) for i in range(0, len(x), a.batch)])
    t2 = time.perf_counter()
    with torch.no_grad():
        lstm(torch.from_numpy(feats)[None].to(dev))[0].cpu()
    t3 = time.perf_counter()
    n = len(x)
    print(f"{os.path.basename(a.video)} frames={n} engine={a.engine}{'-cuda' if a.cuda else ''}"
          f"{'-fp16' if a.half else ''} threads={a.threads} batch={a.batch} "
          f"decode={n / (t1 - t0):.1f}fps cnn={n / (t2 - t1):.1f}fps rnn={n / (t3 - t2):.0f}fps "
          f"end_to_end={n / (t3 - t0):.1f}fps")

if __name__ == "__main__":
    main()
