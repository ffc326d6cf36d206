"""Graph models on the CPU: fastnn's ``nn.fit`` against a plain PyTorch loop of the same net.

Three models beyond a straight stack, each trained one epoch per timed fit (Adam, lr 1e-3,
shuffled mini-batches, softmax cross-entropy), fastnn and PyTorch in turn (the order
alternating), medians reported with the ratio of their throughputs:

- ``resnet``: a small ResNet on generated 32x32x3 images: a 3x3 stem conv of 16, three stages
  of 16/32/64 channels with two residual blocks each (conv-BN-ReLU-conv-BN plus the identity,
  or a strided 1x1 conv + BN projection when the shape changes), global average pooling, dense
  10;
- ``tcn``: the MNIST-1D temporal convolution network of ``examples/mnist1d_benchmark.py``
  (residual blocks of two dilated causal convolutions, 64 channels, dilation 1, 2, 4, 8, batch
  norm) on generated sequences of 40;
- ``tabular``: 6 numeric columns through a dense layer beside two categorical columns through
  embeddings (40 and 12 levels, 4 dimensions), then dense 64 and 32.

fastnn runs as a user runs it (``nn.fit`` with default settings, a fresh model per repeat);
PyTorch runs the same network with its default thread count.

    python benchmarks/bench_graphs.py              # every model, quiet and beside a busy process
    python benchmarks/bench_graphs.py --only tcn --no-busy
    python benchmarks/bench_graphs.py --quick      # smoke run: tiny sizes, one repeat
    python benchmarks/bench_graphs.py --profile    # where one fastnn fit spends its time

``--profile`` runs each model's fastnn fit once more under ``cProfile`` (after the timed fits,
so its kernels are compiled) and prints the share of the fit spent inside ``fastnn/_kernels``
(the jitted kernels and their host functions) and the functions with the most time of their
own; the JSON keeps them under ``profiles``.
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

MODELS = ("resnet", "tcn", "tabular")
TARGETS = {"resnet": 1.5, "tcn": 1.5, "tabular": 2.0}
SIZES = {"resnet": dict(n=512, batch=64), "tcn": dict(n=4000, batch=64),
         "tabular": dict(n=20000, batch=256)}


# --- data ------------------------------------------------------------------------------------

def data(name, n, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n).astype(np.int64)
    if name == "resnet":
        x = rng.standard_normal((n, 3, 32, 32)).astype(np.float32) * 0.5
        for c in range(10):
            x[y == c, c % 3, 3 * c:3 * c + 3, :] += 1.0
    elif name == "tcn":
        x = rng.standard_normal((n, 40)).astype(np.float32) * 0.5
        x += np.sin(np.arange(40)[None, :] * (0.2 + 0.1 * y[:, None])).astype(np.float32)
    else:
        num = rng.standard_normal((n, 6)).astype(np.float32)
        city, product = rng.integers(0, 40, n), rng.integers(0, 12, n)
        y = ((num[:, 0] + np.sin(city) + np.cos(product)) > 0).astype(np.int64)
        x = np.column_stack([num, city, product]).astype(np.float32)
    return x, y


# --- fastnn ------------------------------------------------------------------------------------

def fastnn_model(name, seed):
    from fastnn import nn
    if name == "resnet":
        def block(c, stride):
            shortcut = None if stride == 1 and c == block.c else nn.Sequential(
                nn.Conv2D(c, 1, stride=stride, use_bias=False), nn.BatchNorm())
            block.c = c
            return [nn.Residual(nn.Conv2D(c, 3, stride=stride, padding=1, use_bias=False),
                                nn.BatchNorm(), nn.ReLU(),
                                nn.Conv2D(c, 3, padding=1, use_bias=False), nn.BatchNorm(),
                                shortcut=shortcut), nn.ReLU()]
        block.c = 16
        layers = [nn.Conv2D(16, 3, padding=1, use_bias=False), nn.BatchNorm(), nn.ReLU()]
        for c, stride in ((16, 1), (32, 2), (64, 2)):
            layers += block(c, stride) + block(c, 1)
        return nn.Sequential(*layers, nn.GlobalAvgPool2D(), nn.Dense(10), seed=seed)
    if name == "tcn":
        blocks = []
        for d in (1, 2, 4, 8):
            blocks += [nn.Residual(nn.Conv1D(64, 3, dilation=d, padding="causal"),
                                   nn.BatchNorm(), nn.ReLU(),
                                   nn.Conv1D(64, 3, dilation=d, padding="causal"),
                                   nn.BatchNorm()), nn.ReLU()]
        return nn.Sequential(nn.Reshape((1, 40)), nn.Conv1D(64, 3, padding="causal"),
                             nn.BatchNorm(), nn.ReLU(), *blocks, nn.GlobalAvgPool1D(),
                             nn.Dense(10), seed=seed)
    return nn.Sequential(
        nn.Columns([(0, 6), (6, 7), (7, 8)], [nn.Dense(32), nn.ReLU()],
                   [nn.Embedding(40, 4), nn.Flatten()], [nn.Embedding(12, 4), nn.Flatten()]),
        nn.Dense(64), nn.ReLU(), nn.Dense(32), nn.ReLU(), nn.Dense(2), seed=seed)


class FastnnRunner:
    name = "fastnn"

    def __init__(self, model, x, y, batch):
        self.model_name, self.x, self.y, self.batch = model, x, y, batch
        self.seed = 0

    def run(self):
        from fastnn import nn
        self.seed += 1
        model = fastnn_model(self.model_name, self.seed)
        nn.fit(model, self.x, self.y, epochs=1, batch_size=self.batch, lr=1e-3, seed=self.seed)


# --- PyTorch -----------------------------------------------------------------------------------

def torch_model(torch, name, seed):
    torch.manual_seed(seed)
    tnn, F = torch.nn, torch.nn.functional

    class Block(tnn.Module):
        def __init__(self, cin, c, stride):
            super().__init__()
            self.c1 = tnn.Conv2d(cin, c, 3, stride, 1, bias=False)
            self.b1 = tnn.BatchNorm2d(c)
            self.c2 = tnn.Conv2d(c, c, 3, 1, 1, bias=False)
            self.b2 = tnn.BatchNorm2d(c)
            self.short = (tnn.Sequential(tnn.Conv2d(cin, c, 1, stride, bias=False),
                                         tnn.BatchNorm2d(c)) if stride != 1 or cin != c else None)

        def forward(self, x):
            y = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
            return F.relu(y + (x if self.short is None else self.short(x)))

    class Causal(tnn.Module):
        def __init__(self, cin, c, d):
            super().__init__()
            self.pad, self.conv = 2 * d, tnn.Conv1d(cin, c, 3, dilation=d)

        def forward(self, x):
            return self.conv(F.pad(x, (self.pad, 0)))

    class TCNBlock(tnn.Module):
        def __init__(self, d):
            super().__init__()
            self.f = tnn.Sequential(Causal(64, 64, d), tnn.BatchNorm1d(64), tnn.ReLU(),
                                    Causal(64, 64, d), tnn.BatchNorm1d(64))

        def forward(self, x):
            return F.relu(self.f(x) + x)

    class Tabular(tnn.Module):
        def __init__(self):
            super().__init__()
            self.num = tnn.Linear(6, 32)
            self.city, self.product = tnn.Embedding(40, 4), tnn.Embedding(12, 4)
            self.head = tnn.Sequential(tnn.Linear(40, 64), tnn.ReLU(), tnn.Linear(64, 32),
                                       tnn.ReLU(), tnn.Linear(32, 2))

        def forward(self, x):
            codes = x[:, 6:].long()
            z = torch.cat([F.relu(self.num(x[:, :6])), self.city(codes[:, 0]),
                           self.product(codes[:, 1])], dim=1)
            return self.head(z)

    if name == "resnet":
        layers, cin = [tnn.Conv2d(3, 16, 3, 1, 1, bias=False), tnn.BatchNorm2d(16), tnn.ReLU()], 16
        for c, stride in ((16, 1), (32, 2), (64, 2)):
            layers += [Block(cin, c, stride), Block(c, c, 1)]
            cin = c
        return tnn.Sequential(*layers, tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(64, 10))
    if name == "tcn":
        return tnn.Sequential(tnn.Unflatten(1, (1, 40)), Causal(1, 64, 1), tnn.BatchNorm1d(64),
                              tnn.ReLU(), *[TCNBlock(d) for d in (1, 2, 4, 8)],
                              tnn.AdaptiveAvgPool1d(1), tnn.Flatten(), tnn.Linear(64, 10))
    return Tabular()


class TorchRunner:
    name = "torch"

    def __init__(self, torch, model, x, y, batch):
        self.torch, self.model_name = torch, model
        self.x, self.y, self.batch = torch.from_numpy(x), torch.from_numpy(y), batch
        self.seed = 0

    def run(self):
        torch = self.torch
        self.seed += 1
        model = torch_model(torch, self.model_name, self.seed)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(self.seed)
        n = len(self.x)
        model.train()
        order = torch.randperm(n, generator=gen)
        for lo in range(0, n, self.batch):
            idx = order[lo:lo + self.batch]
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(self.x[idx]), self.y[idx])
            loss.backward()
            opt.step()


def profile_fit(runner, top=8):
    """One fastnn fit of ``runner`` under cProfile: its seconds, the share of them spent in
    ``fastnn/_kernels`` (own time of the functions there: jitted kernels report their time
    under their Python names), and the ``top`` functions by own time."""
    import cProfile
    import pstats
    profiler = cProfile.Profile()
    profiler.enable()
    runner.run()
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    import fastnn
    kernels_dir = str(Path(fastnn.__file__).resolve().parent / "_kernels")
    total = sum(v[2] for v in stats.values())
    in_kernels = sum(v[2] for (f, _, _), v in stats.items() if f.startswith(kernels_dir))
    rows = sorted(stats.items(), key=lambda kv: -kv[1][2])[:top]
    return {"seconds": total, "kernels_share": in_kernels / total if total else 0.0,
            "top": [{"function": f"{Path(f).name}:{line}({fn})", "calls": v[1],
                     "own_s": v[2]} for (f, line, fn), v in rows]}


def main(argv=None):
    p = _common.parser(__doc__, "graphs.json", "smoke run: tiny sizes, one repeat")
    p.add_argument("--only", default=None, help="comma-separated models: " + ", ".join(MODELS))
    p.add_argument("--profile", action="store_true",
                   help="profile one more fastnn fit per model and print where its time goes")
    args = p.parse_args(argv)
    models = MODELS if not args.only else tuple(s.strip() for s in args.only.split(","))
    for name in models:
        if name not in MODELS:
            p.error(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    try:
        import torch
    except ImportError:
        torch = None
        print("torch is not installed: benchmarking fastnn alone", file=sys.stderr)
    env = _common.environment()
    print(_common.format_environment(env))
    result = {**_common.run_header("bench_graphs", argv), "environment": env,
              "repeats": 1 if args.quick else args.repeats, "models": {}}
    print(f"\none epoch per fit, Adam; medians of {result['repeats']} interleaved fits")
    print(f"{'model':>9} {'load':>6} {'samples':>8} {'fastnn/s':>10} {'torch/s':>10} "
          f"{'ratio':>7}  target")
    for name in models:
        size = dict(SIZES[name])
        if args.quick:
            size["n"] = 2 * size["batch"]
        x, y = data(name, size["n"])
        runners = [FastnnRunner(name, x, y, size["batch"])]
        if torch is not None:
            runners.append(TorchRunner(torch, name, x, y, size["batch"]))
        res = _common.with_and_without_busy(
            lambda: _common.compare_runs(runners, size["n"], result["repeats"]), busy=not args.no_busy)
        for load, r in res.items():
            r.update(target=TARGETS[name], samples=size["n"], batch_size=size["batch"])
            ratio = r.get("ratio")
            verdict = "" if ratio is None else ("PASS" if ratio >= TARGETS[name] else "MISS")
            print(f"{name:>9} {load:>6} {size['n']:>8} {r['fastnn']['samples_per_s']:>10.0f} "
                  f"{r['torch']['samples_per_s'] if 'torch' in r else float('nan'):>10.0f} "
                  f"{ratio if ratio is not None else float('nan'):>6.2f}x  >= "
                  f"{TARGETS[name]}x {verdict}")
        result["models"][name] = res
        if args.profile:
            prof = profile_fit(runners[0])
            result.setdefault("profiles", {})[name] = prof
            print(f"  profile of one fastnn fit: {prof['seconds']:.3f} s, "
                  f"{100 * prof['kernels_share']:.0f} % inside fastnn/_kernels")
            for row in prof["top"]:
                print(f"    {row['own_s']:8.3f} s {row['calls']:6d} calls  {row['function']}")
    _common.finish(result, args.out)


if __name__ == "__main__":
    main()
