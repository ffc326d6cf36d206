"""fastnn's CUDA kernels against PyTorch (cuBLAS / cuDNN, TF32 off and on) and the measured roofline.

Run on a machine with an NVIDIA GPU, from the repository root::

    PYTHONPATH=. python benchmarks/bench_gpu.py --out benchmarks/results/gpu.json

Timing: CUDA events on the default stream around each call (host-side launch overhead included),
after warm-up calls; the median of the repeats is reported. A second column gives the GPU kernel
time alone (CUPTI through torch.profiler), which separates kernel efficiency from numba-cuda's
per-launch host cost (``--only overhead`` measures that cost, ``--only profile`` profiles it). Roofline numbers are measured on the spot: a
large device-to-device copy (bytes read + written per second) and a large FP32 matrix product
through PyTorch (cuBLAS, TF32 off). Memory-bound kernels report their share of the copy bandwidth
for the bytes they must move; compute-bound ones their share of the measured FP32 FLOP rate.
"""
import argparse
import json
import platform
import statistics
import time

import numpy as np


def _timer(fn, warmup, repeat):
    """Median milliseconds of ``fn()`` between CUDA events, after ``warmup`` calls."""
    from numba import cuda
    for _ in range(warmup):
        fn()
    cuda.synchronize()
    times = []
    for _ in range(repeat):
        start, end = cuda.event(timing=True), cuda.event(timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(cuda.event_elapsed_time(start, end))
    return statistics.median(times)


class Bench:
    def __init__(self, args):
        self.args = args
        self.rows = []
        self.roof = {}
        import torch
        self.torch = torch

    def time(self, fn, warmup=None, repeat=None):
        return _timer(fn, warmup or self.args.warmup, repeat or self.args.repeat)

    def torch_time(self, fn, tf32):
        torch = self.torch
        old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        try:
            return self.time(fn)
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old

    def kernel_ms(self, fn, calls=5):
        """Milliseconds of GPU kernel execution per call of ``fn`` (CUPTI through
        torch.profiler: every kernel of the process, fastnn's numba kernels included), without
        the host-side launch overhead that the event timing includes."""
        torch = self.torch
        try:
            from torch.profiler import ProfilerActivity, profile
            fn()
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                for _ in range(calls):
                    fn()
                torch.cuda.synchronize()
            total = sum(e.time_range.elapsed_us() for e in prof.events()
                        if e.device_type == torch.autograd.DeviceType.CUDA)
            return total / calls / 1000 if total else None
        except Exception as exc:  # profiler unavailable: report call times only
            print("  (kernel timing unavailable:", repr(exc)[:120], ")")
            return None

    def run(self, name, fn, torch_ms=None, torch_tf32_ms=None, flops=None, bytes_=None, note=""):
        """Time ``fn`` (call time and kernel time) and record the row."""
        ms = self.time(fn)
        return self.add(name, ms, torch_ms, torch_tf32_ms, flops, bytes_, note,
                        kernel_ms=self.kernel_ms(fn))

    def add(self, name, ms, torch_ms=None, torch_tf32_ms=None, flops=None, bytes_=None, note="",
            kernel_ms=None):
        row = {"kernel": name, "fastnn_ms": ms, "fastnn_kernel_ms": kernel_ms,
               "torch_fp32_ms": torch_ms, "torch_tf32_ms": torch_tf32_ms, "note": note}
        if torch_ms:
            row["speed_vs_torch_fp32"] = torch_ms / ms
        if torch_tf32_ms:
            row["speed_vs_torch_tf32"] = torch_tf32_ms / ms
        if flops:
            row["tflops"] = flops / ms / 1e9
            if "fp32_tflops" in self.roof:
                row["pct_roofline"] = 100 * row["tflops"] / self.roof["fp32_tflops"]
        if bytes_:
            row["gb_per_s"] = bytes_ / ms / 1e6
            if "copy_gb_per_s" in self.roof and not flops:
                row["pct_roofline"] = 100 * row["gb_per_s"] / self.roof["copy_gb_per_s"]
        if kernel_ms:
            if flops and "fp32_tflops" in self.roof:
                row["kernel_pct_roofline"] = 100 * flops / kernel_ms / 1e9 / self.roof["fp32_tflops"]
            elif bytes_ and "copy_gb_per_s" in self.roof:
                row["kernel_pct_roofline"] = 100 * bytes_ / kernel_ms / 1e6 / self.roof["copy_gb_per_s"]
        self.rows.append(row)
        t = f"{torch_ms:8.3f}" if torch_ms else "       -"
        k = f"{kernel_ms:8.3f}" if kernel_ms else "       -"
        r = f"{row.get('speed_vs_torch_fp32', float('nan')):5.2f}x"
        roof = f"{row.get('pct_roofline', float('nan')):5.1f}%"
        kroof = f"{row.get('kernel_pct_roofline', float('nan')):5.1f}%"
        print(f"  {name:<42s} call {ms:8.3f} kern {k} torch {t} ms {r} roof {roof} "
              f"(kern {kroof}) {note}", flush=True)
        return row


def roofline(b):
    torch = b.torch
    n = 1 << 28                                   # 1 GiB of float32
    src = torch.rand(n, device="cuda")
    dst = torch.empty_like(src)
    ms = b.time(lambda: dst.copy_(src), warmup=3, repeat=10)
    b.roof["copy_gb_per_s"] = 2 * 4 * n / ms / 1e6
    del src, dst
    m = 8192
    x = torch.rand(m, m, device="cuda")
    y = torch.rand(m, m, device="cuda")
    ms = b.torch_time(lambda: torch.mm(x, y), tf32=False)
    b.roof["fp32_tflops"] = 2 * m ** 3 / ms / 1e9
    ms = b.torch_time(lambda: torch.mm(x, y), tf32=True)
    b.roof["tf32_tflops"] = 2 * m ** 3 / ms / 1e9
    print(f"roofline: copy {b.roof['copy_gb_per_s']:.0f} GB/s (read+write), "
          f"cuBLAS FP32 {b.roof['fp32_tflops']:.1f} TFLOP/s, TF32 {b.roof['tf32_tflops']:.1f} "
          f"TFLOP/s (8192^3)", flush=True)


def bench_sgemm(b):
    from numba import cuda
    from fastnn._kernels.runtime import cuda_matmul
    torch = b.torch
    for m in (b.args.gemm_size, 2048):
        a = torch.rand(m, m, device="cuda") - 0.5
        c = torch.rand(m, m, device="cuda") - 0.5
        da, dc = cuda.as_cuda_array(a), cuda.as_cuda_array(c)
        out = cuda.device_array((m, m), np.float32)
        flops = 2 * m ** 3
        t_fp32 = b.torch_time(lambda: torch.mm(a, c), tf32=False)
        t_tf32 = b.torch_time(lambda: torch.mm(a, c), tf32=True)
        got = torch.as_tensor(cuda_matmul(da, dc, out=out), device="cuda")
        err = float((got - a.double() @ c.double()).norm() / (a.double() @ c.double()).norm())
        variants = [None] if m != b.args.gemm_size else [None] + b.args.tiles
        for tiles in variants:
            label = f"sgemm {m}^3" + (f" tiles={tiles}" if tiles else "")
            row = b.run(label, lambda: cuda_matmul(da, dc, out=out, tiles=tiles), t_fp32, t_tf32,
                        flops=flops, note=f"rel.err {err:.1e}")
            row["pct_of_cublas_fp32"] = 100 * t_fp32 / row["fastnn_ms"]
            print(f"    -> {row['pct_of_cublas_fp32']:.0f}% of cuBLAS FP32 (target >= 50%)")
        for ta, tb in ((False, True), (True, False)):
            b.run(f"sgemm {m}^3 {'A^T' if ta else 'A'}{'B^T' if tb else 'B'}",
                  lambda: cuda_matmul(da, dc, trans_a=ta, trans_b=tb, out=out), t_fp32, t_tf32,
                  flops=flops)


def bench_conv(b):
    import fastnn.kernels as K
    from numba import cuda
    torch = b.torch
    F = torch.nn.functional
    torch.backends.cudnn.benchmark = True
    cases = [((64, 64, 32, 32), (64, 64, 3, 3), 1, 1), ((64, 3, 32, 32), (32, 3, 5, 5), 1, 2),
             ((64, 128, 16, 16), (256, 128, 3, 3), 2, 1)]
    for xs, ws, stride, pad in cases:
        x = torch.randn(*xs, device="cuda")
        w = torch.randn(*ws, device="cuda") * 0.1
        bias = torch.randn(ws[0], device="cuda")
        torch.backends.cudnn.allow_tf32 = False          # FP32 reference
        y = F.conv2d(x, w, bias, stride=stride, padding=pad)
        flops = 2 * y.numel() * ws[1] * ws[2] * ws[3]
        name = f"conv2d fwd {xs}->{ws[0]} k{ws[2]} s{stride} p{pad}"
        t32 = b.torch_time(lambda: F.conv2d(x, w, bias, stride=stride, padding=pad), tf32=False)
        t_tf = b.torch_time(lambda: F.conv2d(x, w, bias, stride=stride, padding=pad), tf32=True)
        dx, dw, db = (cuda.as_cuda_array(t) for t in (x, w, bias))
        got = torch.as_tensor(K.conv2d(dx, dw, db, stride=stride, padding=pad), device="cuda")
        err = float((got - y).norm() / y.norm())
        from fastnn._kernels.runtime import cuda_conv_tiles
        default = cuda_conv_tiles()
        variants = [default] + ([t for t in b.args.conv_tiles if t != default]
                                if xs[1] == 64 and ws[0] == 64 else [])
        for tiles in variants:
            cuda_conv_tiles(tiles)
            label = name + ("" if tiles == default else f" tiles={tiles}")
            b.run(label, lambda: K.conv2d(dx, dw, db, stride=stride, padding=pad), t32, t_tf,
                  flops=flops, note=f"rel.err vs FP32 cuDNN {err:.1e}")
        cuda_conv_tiles(default)
        dy = torch.randn_like(y)
        xg = x.clone().requires_grad_(True)
        wg = w.clone().requires_grad_(True)
        yg = F.conv2d(xg, wg, None, stride=stride, padding=pad)

        def torch_backward():
            torch.autograd.grad(yg, (xg, wg), dy, retain_graph=True)
        t32 = b.torch_time(torch_backward, tf32=False)
        t_tf = b.torch_time(torch_backward, tf32=True)
        ddy = cuda.as_cuda_array(dy)
        b.run(name.replace("fwd", "bwd (dx, dw, db)"),
              lambda: K.conv2d_backward(ddy, dx, dw, stride=stride, padding=pad), t32, t_tf,
              flops=2 * flops)


def bench_memory_bound(b):
    import fastnn.kernels as K
    from numba import cuda
    torch = b.torch
    F = torch.nn.functional
    # fused Adam over one flat buffer of 100M parameters: 28 bytes per parameter
    n = b.args.adam_params
    p = torch.randn(n, device="cuda")
    g = torch.randn(n, device="cuda")
    m = torch.zeros(n, device="cuda")
    v = torch.zeros(n, device="cuda")
    dp, dg, dm, dv = (cuda.as_cuda_array(t) for t in (p, g, m, v))
    state = {"t": 0}

    def fastnn_adam():
        state["t"] += 1
        K.adam_step(dp, dg, dm, dv, state["t"], lr=1e-3)
    tp = p.clone().requires_grad_(True)
    tp.grad = g.clone()
    opt = torch.optim.Adam([tp], lr=1e-3, fused=True)
    t_torch = b.time(opt.step)
    b.run(f"adam_step {n / 1e6:.0f}M params", fastnn_adam, t_torch, None, bytes_=28 * n,
          note="target >= 80% of copy bandwidth")
    opt_sgd = torch.optim.SGD([tp], lr=1e-3, momentum=0.9, fused=True)
    buf = torch.zeros(n, device="cuda")
    dbuf = cuda.as_cuda_array(buf)
    t_sgd = b.time(opt_sgd.step)
    b.run(f"sgd_step momentum {n / 1e6:.0f}M params",
          lambda: K.sgd_step(dp, dg, dbuf, 1e-3, momentum=0.9, first_step=False), t_sgd, None,
          bytes_=20 * n)
    del p, g, m, v, tp, opt, opt_sgd, buf
    torch.cuda.empty_cache()

    x = torch.randn(1 << 26, device="cuda")
    dx = cuda.as_cuda_array(x)
    b.run("relu 64M", lambda: K.relu(dx), b.time(lambda: torch.relu(x)), None,
          bytes_=8 * x.numel())
    b.run("gelu 64M", lambda: K.gelu(dx), b.time(lambda: F.gelu(x)), None,
          bytes_=8 * x.numel())
    b.run("dropout p=0.5 64M (y + uint8 mask)", lambda: K.dropout(dx, 0.5, 1),
          b.time(lambda: F.dropout(x, 0.5, training=True)), None, bytes_=9 * x.numel())
    del x, dx

    act = torch.randn(64, 64, 32, 32, device="cuda")
    da = cuda.as_cuda_array(act)
    nbytes = 4 * act.numel()
    b.run("max_pool2d 2x2 (64,64,32,32)", lambda: K.max_pool2d(da, 2),
          b.time(lambda: F.max_pool2d(act, 2, return_indices=True)), None,
          bytes_=nbytes + nbytes // 4 * 3)
    b.run("avg_pool2d 2x2 (64,64,32,32)", lambda: K.avg_pool2d(da, 2),
          b.time(lambda: F.avg_pool2d(act, 2)), None, bytes_=nbytes + nbytes // 4)
    gamma = torch.ones(64, device="cuda")
    beta = torch.zeros(64, device="cuda")
    rm, rv = torch.zeros(64, device="cuda"), torch.ones(64, device="cuda")
    drm, drv = cuda.as_cuda_array(rm), cuda.as_cuda_array(rv)
    dgm, dbt = cuda.as_cuda_array(gamma), cuda.as_cuda_array(beta)
    b.run("batch_norm train fwd (64,64,32,32)",
          lambda: K.batch_norm(da, dgm, dbt, drm, drv, training=True),
          b.time(lambda: F.batch_norm(act, rm, rv, gamma, beta, training=True)), None,
          bytes_=3 * nbytes, note="bytes: read x twice, write y")
    logits = torch.randn(4096, 1000, device="cuda")
    target = torch.randint(0, 1000, (4096,), device="cuda")
    dl, dt = cuda.as_cuda_array(logits), cuda.as_cuda_array(target)
    lg = logits.clone().requires_grad_(True)

    def torch_ce():
        loss = F.cross_entropy(lg, target)
        torch.autograd.grad(loss, lg)
    b.run("softmax_cross_entropy (4096, 1000) loss+grad",
          lambda: K.softmax_cross_entropy(dl, dt), b.time(torch_ce), None,
          bytes_=2 * 4 * logits.numel(), note="includes the wrapper's label check and loss read-back")
    b.run("softmax (4096, 1000)", lambda: K.softmax(dl),
          b.time(lambda: torch.softmax(logits, -1)), None, bytes_=2 * 4 * logits.numel())


def bench_linear(b):
    import fastnn.kernels as K
    from numba import cuda
    torch = b.torch
    F = torch.nn.functional
    for (n, i, o) in ((8192, 1024, 1024), (256, 784, 120)):
        x = torch.randn(n, i, device="cuda")
        w = torch.randn(o, i, device="cuda")
        bias = torch.randn(o, device="cuda")
        dx, dw, db = (cuda.as_cuda_array(t) for t in (x, w, bias))
        flops = 2 * n * i * o
        b.run(f"linear fwd ({n},{i})->{o}", lambda: K.linear(dx, dw, db),
              b.torch_time(lambda: F.linear(x, w, bias), tf32=False),
              b.torch_time(lambda: F.linear(x, w, bias), tf32=True), flops=flops)


def bench_overhead(b):
    """Host-side cost of one call (no GPU wait): numba launches, allocation, a wrapper call."""
    import fastnn.kernels as K
    from numba import cuda
    from fastnn._kernels.runtime import cuda_launch_probes
    small = cuda.device_array(1024, np.float32)
    launch_one, launch_three = cuda_launch_probes(small)
    lx = cuda.to_device(np.ones((64, 32), np.float32))
    lw = cuda.to_device(np.ones((16, 32), np.float32))

    def host_us(fn, n=300):
        fn()
        cuda.synchronize()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        dt = (time.perf_counter() - t) / n * 1e6
        cuda.synchronize()
        return dt
    res = {
        "launch 1 array + 1 scalar (us)": host_us(launch_one),
        "launch 3 arrays + 2 scalars (us)": host_us(launch_three),
        "cuda.device_array 4 KiB (us)": host_us(lambda: cuda.device_array(1024, np.float32)),
        "cuda.device_array 64 MiB (us)": host_us(lambda: cuda.device_array(1 << 24, np.float32),
                                                 n=50),
        "K.relu(4 KiB device array) (us)": host_us(lambda: K.relu(small)),
        "K.linear (64,32)->16 (us)": host_us(lambda: K.linear(lx, lw)),
    }
    for k, v in res.items():
        print(f"  {k:<40s} {v:8.1f}", flush=True)
    b.roof["host_overhead_us"] = res


def profile_host(b):
    """cProfile of repeated calls (where the host-side time of a call goes)."""
    import cProfile
    import io
    import pstats
    import fastnn.kernels as K
    from numba import cuda
    x = cuda.to_device(np.random.rand(64, 64, 32, 32).astype(np.float32))
    w = cuda.to_device(np.random.rand(64, 64, 3, 3).astype(np.float32))
    bias = cuda.to_device(np.random.rand(64).astype(np.float32))
    small = cuda.to_device(np.random.rand(1024).astype(np.float32))
    for name, fn in (("conv2d", lambda: K.conv2d(x, w, bias, padding=1)),
                     ("relu small", lambda: K.relu(small))):
        fn()
        cuda.synchronize()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(100):
            fn()
        prof.disable()
        cuda.synchronize()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(14)
        lines = [ln for ln in out.getvalue().splitlines() if ln.strip()][3:]
        print(f"  [{name}] 100 calls, top functions by own time:")
        for ln in lines[:18]:
            print("   ", ln[:150])


def bench_lenet(b):
    """LeNet-5 training (benchmarks/bench_training.py's network, SGD momentum 0.9, batch 64,
    shuffled) for one epoch of synthetic 28x28 images: fastnn on the GPU (``device="cuda"``,
    data moved once per fit) against the same training with fastnn on this machine's CPU, and
    PyTorch CUDA as a reference. Medians over ``--lenet-repeats`` epochs, in images/s."""
    import fastnn.nn as fnn
    from bench_training import fastnn_lenet, torch_lenet
    from numba import cuda
    n, batch = b.args.lenet_images, 64
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, n)

    def fastnn_epochs(device):
        model = fastnn_lenet(0)
        model.build(x.shape[1:])
        model.to(device)
        opt = fnn.SGD(model, lr=0.01, momentum=0.9)
        fnn.fit(model, x[:2 * batch], y[:2 * batch], optimizer=opt, batch_size=batch,
                epochs=1, metrics=(), seed=0)  # compile / load kernels
        times = []
        for r in range(b.args.lenet_repeats):
            start = time.perf_counter()
            fnn.fit(model, x, y, optimizer=opt, batch_size=batch, epochs=1, metrics=(),
                    seed=r + 1)
            if device == "cuda":
                cuda.synchronize()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    def torch_epochs():
        torch = b.torch
        dev = torch.device("cuda")
        model = torch_lenet(torch, 0).to(dev)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        xt, yt = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
        loss_fn = torch.nn.CrossEntropyLoss()

        def epoch(seed):
            order = torch.from_numpy(np.random.default_rng(seed).permutation(n)).to(dev)
            for lo in range(0, n, batch):
                idx = order[lo:lo + batch]
                opt.zero_grad()
                loss = loss_fn(model(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
                loss.item()  # one readback per batch, as fastnn's fit
            torch.cuda.synchronize()
        epoch(0)
        times = []
        for r in range(b.args.lenet_repeats):
            start = time.perf_counter()
            epoch(r + 1)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    gpu_s = fastnn_epochs("cuda")
    cpu_s = fastnn_epochs("cpu")
    torch_s = torch_epochs()
    import numba
    row = {"kernel": f"lenet5 train epoch ({n} images, batch {batch})",
           "fastnn_cuda_images_per_s": n / gpu_s, "fastnn_cpu_images_per_s": n / cpu_s,
           "torch_cuda_images_per_s": n / torch_s, "speed_vs_fastnn_cpu": cpu_s / gpu_s,
           "speed_vs_torch_cuda": torch_s / gpu_s, "cpu_threads": numba.get_num_threads(),
           "target_vs_cpu": 3.0}
    b.rows.append(row)
    print(f"  {row['kernel']}: fastnn cuda {row['fastnn_cuda_images_per_s']:,.0f} img/s, "
          f"fastnn cpu ({row['cpu_threads']} threads) {row['fastnn_cpu_images_per_s']:,.0f} "
          f"img/s -> {row['speed_vs_fastnn_cpu']:.2f}x (target 3x); torch cuda "
          f"{row['torch_cuda_images_per_s']:,.0f} img/s", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--gemm-size", type=int, default=4096)
    ap.add_argument("--adam-params", type=int, default=100_000_000)
    ap.add_argument("--tiles", default="64,256,8,8,8",
                    help="extra SGEMM tile shapes BM,BN,BK,TM,TN separated by ';'")
    ap.add_argument("--conv-tiles", default="64,128,8,4,8;128,128,8,8,8",
                    help="extra tile shapes for the 64->64 convolution, separated by ';'")
    ap.add_argument("--lenet-images", type=int, default=12800)
    ap.add_argument("--lenet-repeats", type=int, default=3)
    ap.add_argument("--only", default="",
                    help="comma-separated groups: overhead,sgemm,conv,memory,linear,lenet "
                         "(and profile: cProfile of the host side of a call)")
    args = ap.parse_args(argv)
    args.tiles = [tuple(int(v) for v in t.split(",")) for t in args.tiles.split(";") if t]
    args.conv_tiles = [tuple(int(v) for v in t.split(",")) for t in args.conv_tiles.split(";") if t]

    import numba
    import torch
    from numba import cuda
    dev = cuda.get_current_device()
    info = {
        "device": dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name),
        "compute_capability": list(dev.compute_capability),
        "multiprocessors": dev.MULTIPROCESSOR_COUNT,
        "python": platform.python_version(), "numpy": np.__version__,
        "numba": numba.__version__, "torch": torch.__version__,
        "torch_cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
    }
    try:
        info["cuda_driver"] = ".".join(map(str, cuda.cudadrv.driver.driver.get_version()))
        info["cuda_runtime"] = ".".join(map(str, cuda.runtime.get_version()))
    except Exception as exc:  # informational only
        info["cuda_version_error"] = repr(exc)
    try:
        import numba_cuda
        info["numba_cuda"] = numba_cuda.__version__
    except ImportError:
        pass
    print(json.dumps(info), flush=True)
    b = Bench(args)
    t0 = time.time()
    if args.only != "profile":
        roofline(b)
    groups = {"overhead": bench_overhead, "sgemm": bench_sgemm, "conv": bench_conv,
              "memory": bench_memory_bound, "linear": bench_linear, "lenet": bench_lenet,
              "profile": profile_host}
    only = [g for g in args.only.split(",") if g] or [g for g in groups if g != "profile"]
    for name in only:
        print(f"[{name}]", flush=True)
        groups[name](b)
    result = {"info": info, "roofline": b.roof, "rows": b.rows, "seconds": time.time() - t0}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
