"""Training throughput of LeNet-5: fastnn against the same network in PyTorch (CPU), one process.

LeNet-5 on 28x28 single-channel images: conv 6@5x5 (padding 2) -> ReLU -> max-pool 2 -> conv
16@5x5 -> ReLU -> max-pool 2 -> dense 120 -> ReLU -> dense 84 -> ReLU -> dense 10; softmax
cross-entropy, SGD with momentum 0.9, shuffled mini-batches. Each repeat trains one epoch with
each framework (the order alternates between repeats); the report gives medians in images/s.

    python benchmarks/bench_training.py --out benchmarks/results/training.json
    python benchmarks/bench_training.py --quick          # a smoke run: tiny sizes, one repeat
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg():
    try:
        return os.getloadavg()
    except (OSError, AttributeError):
        return None


def fastnn_lenet(seed):
    from fastnn.nn.base import Sequential
    from fastnn.nn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
    return Sequential(Conv2D(6, 5, padding=2), ReLU(), MaxPool2D(2),
                      Conv2D(16, 5), ReLU(), MaxPool2D(2), Flatten(),
                      Dense(120), ReLU(), Dense(84), ReLU(), Dense(10), seed=seed)


def torch_lenet(torch, seed):
    torch.manual_seed(seed)
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


class FastnnRunner:
    name = "fastnn"

    def __init__(self, x, y, batch, lr, seed):
        from fastnn.nn.optimizers import SGD
        from fastnn.nn.training import fit
        self.fit = fit
        self.x, self.y, self.batch = x, y, batch
        self.model = fastnn_lenet(seed)
        self.model.build(x.shape[1:])
        self.opt = SGD(self.model, lr=lr, momentum=0.9)
        self.epoch = 0
        # compile (or load the cached kernels) before timing
        self.fit(self.model, x[:2 * batch], y[:2 * batch], optimizer=self.opt,
                 batch_size=batch, epochs=1, metrics=(), seed=seed)

    def run_epoch(self):
        self.epoch += 1
        start = time.perf_counter()
        h = self.fit(self.model, self.x, self.y, optimizer=self.opt, batch_size=self.batch,
                     epochs=1, metrics=(), seed=self.epoch)
        seconds = time.perf_counter() - start
        return seconds, h["loss"][-1]


class TorchRunner:
    name = "torch"

    def __init__(self, torch, x, y, batch, lr, seed):
        self.torch = torch
        self.x = torch.from_numpy(x)
        self.y = torch.from_numpy(y)
        self.batch = batch
        self.model = torch_lenet(torch, seed)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=lr, momentum=0.9)
        self.gen = torch.Generator().manual_seed(seed)
        self._train(self.x[:2 * batch], self.y[:2 * batch])

    def _train(self, x, y):
        torch = self.torch
        F = torch.nn.functional
        n = len(x)
        order = torch.randperm(n, generator=self.gen)
        total = 0.0
        self.model.train()
        for lo in range(0, n, self.batch):
            idx = order[lo:lo + self.batch]
            xb, yb = x[idx], y[idx]
            self.opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(self.model(xb), yb)
            loss.backward()
            self.opt.step()
            total += loss.item() * len(idx)
        return total / n

    def run_epoch(self):
        start = time.perf_counter()
        loss = self._train(self.x, self.y)
        return time.perf_counter() - start, loss


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=6400)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=None,
                   help="threads for Numba and PyTorch (default: what each starts with)")
    p.add_argument("--no-torch", action="store_true", help="benchmark fastnn alone")
    p.add_argument("--quick", action="store_true", help="smoke run: 256 images, one repeat")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.repeats = min(args.images, 256), 1

    import numba
    import fastnn
    if args.threads:
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("torch is not installed: benchmarking fastnn alone", file=sys.stderr)
    if torch is not None and args.threads:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.images, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, args.images).astype(np.int64)

    runners = [FastnnRunner(x, y, args.batch, args.lr, seed=0)]
    if torch is not None:
        runners.append(TorchRunner(torch, x, y, args.batch, args.lr, seed=0))

    info = {
        "benchmark": "LeNet-5 training epoch, 28x28 synthetic images",
        "images": args.images, "batch_size": args.batch, "repeats": args.repeats,
        "optimizer": "SGD(lr=%g, momentum=0.9)" % args.lr,
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(),
                    "platform": platform.platform(), "python": platform.python_version()},
        "threads": {"numba": numba.get_num_threads(),
                    "torch": None if torch is None else torch.get_num_threads()},
        "versions": {"fastnn": fastnn.__version__, "numpy": np.__version__,
                     "numba": numba.__version__,
                     "torch": None if torch is None else torch.__version__},
        "loadavg_before": loadavg(),
    }
    try:
        info["threads"]["numba_layer"] = numba.threading_layer()
    except ValueError:
        info["threads"]["numba_layer"] = None
    print(json.dumps({k: info[k] for k in ("machine", "threads", "versions")}, indent=1))

    times = {r.name: [] for r in runners}
    losses = {r.name: [] for r in runners}
    for rep in range(args.repeats):
        order = runners if rep % 2 == 0 else runners[::-1]
        for r in order:
            seconds, loss = r.run_epoch()
            times[r.name].append(seconds)
            losses[r.name].append(loss)
            print(f"repeat {rep + 1}/{args.repeats} {r.name:7s} {seconds:7.3f} s "
                  f"{args.images / seconds:9.0f} images/s  loss {loss:.4f}", flush=True)

    results = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        results[name] = {"seconds": ts, "median_seconds": med,
                         "median_images_per_s": args.images / med,
                         "best_images_per_s": args.images / min(ts), "loss": losses[name]}
    if "torch" in results:
        results["speedup_vs_torch"] = (results["fastnn"]["median_images_per_s"]
                                       / results["torch"]["median_images_per_s"])
    info["results"] = results
    info["loadavg_after"] = loadavg()
    print("median images/s: " + ", ".join(
        f"{name} {results[name]['median_images_per_s']:.0f}" for name in times))
    if "speedup_vs_torch" in results:
        print(f"fastnn / torch: {results['speedup_vs_torch']:.2f}x")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(info, f, indent=1)
        print(f"wrote {args.out}")
    return info


if __name__ == "__main__":
    main()
