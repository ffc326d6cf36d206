"""CNN training on the CPU: fastnn's NeuralNetClassifier against a plain PyTorch loop, one process.

Two networks on 28x28 single-channel images, softmax cross-entropy, Adam (lr 1e-3), shuffled
mini-batches of 64:

- ``lenet5``: conv 6@5x5 (padding 2), ReLU, max-pool 2, conv 16@5x5, ReLU, max-pool 2, dense 120,
  ReLU, dense 84, ReLU, dense 10;
- ``simpleconvnet`` (the deep-learning textbook's): conv 30@5x5, ReLU, max-pool 2, dense 100,
  ReLU, dense 10.

fastnn runs as a user runs it: ``NeuralNetClassifier(layers, input_shape=(1, 28, 28),
batch_size=64, max_iter=epochs).fit(X, y)`` with default settings (a fresh fit per repeat, so
validation and model building are timed too). PyTorch runs the same network with
``torch.optim.Adam`` over the same data, with its default thread count. Repeats alternate the
order (fastnn, torch, torch, fastnn, ...); the report gives medians in images/s and the ratio.
``--busy`` repeats everything beside one competing CPU-bound process. ``--rss`` measures each
framework's peak resident memory for the LeNet-5 run in a process of its own.

    python benchmarks/bench_training.py                 # both networks, quiet and busy
    python benchmarks/bench_training.py --only lenet5 --no-busy
    python benchmarks/bench_training.py --quick         # smoke run: tiny sizes, one repeat
"""
import resource
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

NETWORKS = ("lenet5", "simpleconvnet")


def fastnn_layers(name):
    from fastnn.nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU
    if name == "lenet5":
        return [Conv2D(6, 5, padding=2), ReLU(), MaxPool2D(2), Conv2D(16, 5), ReLU(), MaxPool2D(2),
                Flatten(), Dense(120), ReLU(), Dense(84), ReLU()]
    return [Conv2D(30, 5), ReLU(), MaxPool2D(2), Flatten(), Dense(100), ReLU()]


def torch_model(torch, name, seed):
    torch.manual_seed(seed)
    nn = torch.nn
    if name == "lenet5":
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                             nn.Linear(84, 10))
    return nn.Sequential(nn.Conv2d(1, 30, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(30 * 12 * 12, 100), nn.ReLU(), nn.Linear(100, 10))


class FastnnRunner:
    name = "fastnn"

    def __init__(self, network, x, y, batch, epochs, lr):
        from fastnn.sklearn import NeuralNetClassifier
        self.cls, self.network = NeuralNetClassifier, network
        self.x, self.y = x.reshape(len(x), -1), y
        self.params = dict(input_shape=(1, 28, 28), batch_size=batch, max_iter=epochs,
                           learning_rate_init=lr, tol=0.0, n_iter_no_change=10 ** 6)
        self.seed = 0
        self.model = None

    def run(self):
        self.seed += 1
        est = self.cls(fastnn_layers(self.network), random_state=self.seed, **self.params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: max_iter is small on purpose
            est.fit(self.x, self.y)
        self.model = est
        return float(est.loss_)


class TorchRunner:
    name = "torch"

    def __init__(self, torch, network, x, y, batch, epochs, lr):
        self.torch, self.network = torch, network
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        self.batch, self.epochs, self.lr = batch, epochs, lr
        self.seed = 0

    def run(self):
        torch = self.torch
        F = torch.nn.functional
        self.seed += 1
        model = torch_model(torch, self.network, self.seed)
        opt = torch.optim.Adam(model.parameters(), lr=self.lr)
        gen = torch.Generator().manual_seed(self.seed)
        n = len(self.x)
        model.train()
        total = 0.0
        for _ in range(self.epochs):
            order = torch.randperm(n, generator=gen)
            total = 0.0
            for lo in range(0, n, self.batch):
                idx = order[lo:lo + self.batch]
                xb, yb = self.x[idx], self.y[idx]
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
        return total / n


def data(images, seed=0):
    """Synthetic 28x28 images whose class shows in the pixels (so the loss falls)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, images).astype(np.int64)
    x = rng.standard_normal((images, 1, 28, 28)).astype(np.float32) * 0.5
    for c in range(10):
        x[y == c, 0, 2 * c + 2:2 * c + 6, 4:24] += 1.0
    return x, y


def high_water_mib():
    """This process's peak resident memory (VmHWM: unlike ``ru_maxrss``, not inherited from the
    parent that forked it)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss(framework, network, images, batch, epochs):
    """Peak resident memory (MiB) of a fresh process that trains ``network`` with one framework."""
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
            "import bench_training as b\n"
            f"x, y = b.data({images})\n"
            f"if {framework!r} == 'torch':\n"
            "    import torch\n"
            f"    r = b.TorchRunner(torch, {network!r}, x, y, {batch}, {epochs}, 1e-3)\n"
            "else:\n"
            f"    r = b.FastnnRunner({network!r}, x, y, {batch}, {epochs}, 1e-3)\n"
            "r.run()\n"
            "print(b.high_water_mib())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


TARGETS = {"lenet5": {"quiet": 2.0, "busy": 1.5}, "simpleconvnet": {"quiet": 2.0}}


def main(argv=None):
    p = _common.parser(__doc__, "training.json", "smoke run: 256 images, one repeat")
    p.add_argument("--images", type=int, default=6400)
    p.add_argument("--epochs", type=int, default=1, help="epochs per timed fit")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--only", default=None, help="comma-separated networks: " + ", ".join(NETWORKS))
    p.add_argument("--no-rss", action="store_true", help="skip the peak-memory runs")
    p.add_argument("--no-torch", action="store_true", help="benchmark fastnn alone")
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.repeats = min(args.images, 256), 1
    networks = NETWORKS if not args.only else tuple(s.strip() for s in args.only.split(","))
    for name in networks:
        if name not in NETWORKS:
            p.error(f"unknown network {name!r}; choose from {', '.join(NETWORKS)}")
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("torch is not installed: benchmarking fastnn alone", file=sys.stderr)

    env = _common.environment()
    print(_common.format_environment(env))
    result = {**_common.run_header("bench_training", argv), "environment": env,
              "images": args.images, "epochs": args.epochs, "batch_size": args.batch,
              "repeats": args.repeats, "optimizer": "Adam(lr=1e-3)", "networks": {}}
    x, y = data(args.images)
    print(f"\n{args.images} images 28x28, batch {args.batch}, Adam, {args.epochs} epoch(s) per "
          f"fit; medians of {args.repeats} interleaved fits")
    print(f"{'network':>14} {'load':>7} {'fastnn img/s':>13} {'torch img/s':>12} {'ratio':>7}  "
          "target")
    for name in networks:
        runners = [FastnnRunner(name, x, y, args.batch, args.epochs, 1e-3)]
        if torch is not None:
            runners.append(TorchRunner(torch, name, x, y, args.batch, args.epochs, 1e-3))
        res = _common.with_and_without_busy(
            lambda: _common.compare_runs(runners, args.images * args.epochs, args.repeats, unit="images"),
            busy=not args.no_busy)
        for load, r in res.items():
            target = TARGETS[name].get(load)
            r["target"] = target
            if "ratio" in r:
                r["met"] = target is None or r["ratio"] >= target
            ratio = f"{r['ratio']:6.2f}x" if "ratio" in r else "      -"
            torch_ips = f"{r['torch']['images_per_s']:12.0f}" if "torch" in r else " " * 12
            verdict = "" if target is None or "ratio" not in r else \
                f">= {target}x {'PASS' if r['met'] else 'MISS'}"
            print(f"{name:>14} {load:>7} {r['fastnn']['images_per_s']:13.0f} {torch_ips} "
                  f"{ratio}  {verdict}", flush=True)
        res["accuracy_fastnn_train"] = float(runners[0].model.score(runners[0].x, y))
        result["networks"][name] = res
    if not args.no_rss and "lenet5" in networks and torch is not None:
        rss = {f: peak_rss(f, "lenet5", args.images, args.batch, args.epochs)
               for f in ("fastnn", "torch")}
        result["peak_rss_mib_lenet5"] = rss
        print(f"\npeak RSS of a LeNet-5 training process: fastnn {rss['fastnn']:.0f} MiB, "
              f"torch {rss['torch']:.0f} MiB (target: fastnn <= torch: "
              f"{'PASS' if rss['fastnn'] <= rss['torch'] else 'MISS'})")
    return _common.finish(result, args.out)


if __name__ == "__main__":
    main()
