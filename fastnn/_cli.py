"""The ``fastnn`` command (also ``python -m fastnn``): ``demo``, ``bench``, ``info``, ``warmup``,
``cache`` and ``playground``.

``fastnn`` alone prints the help (the list of commands) and exits with status 0. For
compatibility with the old ``python -m fastnn [--epochs N] [--cnn-epochs N]``, a command line
that starts with one of the demo's options runs the demo.
"""
import argparse
import os
import sys
import textwrap

import fastnn

DESCRIPTION = ("fastnn: neural networks on Numba (jitted CPU and CUDA kernels, layers, "
               "scikit-learn estimators).")
EPILOG = ("Run 'fastnn COMMAND --help' for the options of a command. Start with 'fastnn demo' "
          "(about a minute) or 'fastnn demo --quick' (a few seconds once the kernels are "
          "compiled). 'fastnn' without a command prints this help.")
BENCH_DESCRIPTION = (
    "Run fastnn's benchmark suite against the peers that are installed (PyTorch CPU, "
    "scikit-learn) and print the table of speed ratios (> 1: fastnn faster). A peer that is not "
    "installed is skipped with a note. A full run takes 15-20 minutes on two cores; --quick "
    "checks that everything runs in a few minutes (its figures mean nothing).")
BENCH_EPILOG = (
    "Benchmarks run one after the other, each quiet and again beside one busy competing "
    "process (--no-busy skips those). Results (one JSON file per benchmark and table.md) go to "
    "--out; the default is benchmarks/results/ of a repository checkout, otherwise "
    "./fastnn-bench-results/ in the current folder. 'fastnn bench' never rewrites README.md "
    "(in a checkout, 'python benchmarks/run_all.py' does). Timings mean something only on an "
    "otherwise idle machine: check the load average first ('fastnn info' prints it).")
INFO_DESCRIPTION = (
    "Print fastnn's version and what it runs on: Python and the libraries, platform and CPU, "
    "core counts, every thread pool (Numba and its threading layer, BLAS, OpenMP), the kernel "
    "cache folder, its size and whether it can be written, and whether CUDA is available. "
    "Paste it into bug reports. The same report comes from fastnn.show_versions() in Python.")
WARMUP_DESCRIPTION = (
    "Compile the kernels a use needs, so that later processes load them from Numba's kernel "
    "cache in milliseconds instead of compiling them for seconds on their first call. Run it "
    "once when you build a Docker image or fill a CI cache (the cache is tied to the CPU kind: "
    "build on the kind of machine that will run it). Prints what compiled and how long it "
    "took; a second run finds everything in the cache.")
WARMUP_EPILOG = (
    "Uses: mlp (MLPClassifier / MLPRegressor: adam, sgd, lbfgs, predict), cnn (convolution, "
    "pooling, batch norm, dropout layers in NeuralNetClassifier), rnn (SimpleRNN, LSTM, GRU), "
    "kernels (every public kernel of fastnn.kernels). Without a use: mlp and cnn. The kernel "
    "cache lives in __pycache__ beside fastnn's source, in NUMBA_CACHE_DIR when that is set, "
    "or in the user's cache folder when the install is read-only ('fastnn info' prints it).")
CACHE_DESCRIPTION = (
    "Show or empty fastnn's kernel cache. 'fastnn cache' (or 'fastnn cache info') prints the "
    "folder that keeps the compiled kernels, its size and whether it can be written. 'fastnn "
    "cache clear' removes fastnn's entries there (the .nbi and .nbc files of its kernels and "
    "files left by interrupted writes; nothing else) and prints what it removed; each kernel "
    "compiles again at its next call. The cache repairs damaged entries by itself (with a "
    "KernelCacheWarning): clearing is for freeing space or starting afresh.")
_LEGACY_DEMO = ("--epochs", "--cnn-epochs")


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout, without breaking words at hyphens (scikit-learn stays whole)."""

    def _split_lines(self, text, width):
        return textwrap.wrap(self._whitespace_matcher.sub(" ", text).strip(), width,
                             break_on_hyphens=False)

    def _fill_text(self, text, width, indent):
        return textwrap.fill(self._whitespace_matcher.sub(" ", text).strip(), width,
                             initial_indent=indent, subsequent_indent=indent,
                             break_on_hyphens=False)


def _demo(args):
    from . import demo
    argv = args.rest
    return demo.main(argv, prog="fastnn demo")


def _bench(args):
    from ._bench import run_all
    argv = args.rest
    run_all.main(argv, prog="fastnn bench", command=" ".join(["fastnn bench", *argv]), cli=True)
    return 0


def _info(args):
    from ._info import show_versions
    show_versions()
    return 0


def add_warmup_arguments(p):
    from .warmup_uses import USES
    p.add_argument("uses", nargs="*", metavar="USE",
                   help=f"what to warm: {', '.join(USES)} (default: mlp cnn)")
    p.add_argument("--all", action="store_true", help="every use, in float32 and float64")
    p.add_argument("--dtype", default=None, metavar="DTYPES",
                   help="float32, float64 or both (comma-separated); default: each use's own "
                        "(float64 for mlp, as X usually is; float32 for the layers)")
    p.add_argument("--list", action="store_true",
                   help="also list the functions that compiled, longest first")
    return p


def _warmup(args):
    from . import warmup_uses
    p = add_warmup_arguments(argparse.ArgumentParser(prog="fastnn warmup"))
    opts = p.parse_args(args.rest)
    unknown = [u for u in opts.uses if u not in warmup_uses.USES]
    if unknown:
        p.error(f"unknown use {unknown[0]!r}; choose from {', '.join(warmup_uses.USES)}")
    uses = list(warmup_uses.USES) if opts.all else (opts.uses or list(warmup_uses.DEFAULT_USES))
    dtypes = ("float32", "float64") if opts.all else None
    if opts.dtype:
        dtypes = [d.strip() for d in opts.dtype.split(",") if d.strip()]
        bad = [d for d in dtypes if d not in ("float32", "float64")]
        if bad or not dtypes:
            p.error(f"--dtype takes float32 and/or float64, got {opts.dtype!r}")
    logs = warmup_uses.warm(uses, dtypes)
    if opts.list:
        for use, log in logs.items():
            if log:
                print(f"\n{use}: {log.format(top=40)}")
    return 0


def add_cache_arguments(p):
    p.add_argument("action", nargs="?", choices=("info", "clear"), default="info",
                   help="info (the default): folder, size, writable; clear: remove the entries")
    p.add_argument("--all", action="store_true",
                   help="clear every folder fastnn's kernels may be cached in (NUMBA_CACHE_DIR's, "
                        "__pycache__ beside the source, the user's cache folder), not only the "
                        "one in use")
    return p


def _cache(args):
    from ._info import _kernel_cache, _size, clear_kernel_cache, format_kernel_cache
    opts = add_cache_arguments(argparse.ArgumentParser(prog="fastnn cache")).parse_args(args.rest)
    if opts.action == "info":
        pairs = format_kernel_cache(_kernel_cache())
        width = max(len(k) for k, _ in pairs)
        print("Kernel cache:")
        for k, v in pairs:
            print(f"  {k:>{width}}: {v}")
        return 0
    removed, errors = clear_kernel_cache(everywhere=opts.all)
    folders = {}
    for path, size in removed:
        n, total = folders.get(os.path.dirname(path), (0, 0))
        folders[os.path.dirname(path)] = (n + 1, total + size)
    for folder, (n, total) in folders.items():
        print(f"removed {n} files ({_size(total)}) from {folder}")
    total = sum(size for _, size in removed)
    print(f"removed {len(removed)} files, {total} bytes ({_size(total)}) in all"
          if removed else "nothing to remove: fastnn's kernel cache is empty")
    for path, why in errors:
        print(f"could not remove {path}: {why}", file=sys.stderr)
    return 1 if errors else 0


def _playground(args):
    from . import playground
    return playground.main(args.rest)


def build_parser():
    from . import demo, playground
    from ._bench import run_all

    parser = argparse.ArgumentParser(prog="fastnn", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"fastnn {fastnn.__version__}")
    sub = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")

    def command(name, run, summary, description, epilog=None, add_arguments=None):
        p = sub.add_parser(name, help=summary, description=description, epilog=epilog,
                           formatter_class=_Formatter)
        if add_arguments is not None:
            add_arguments(p)
        p.set_defaults(run=run)

    command("demo", _demo, "train fastnn beside scikit-learn on the bundled digits and compare "
            "accuracy and speed", demo.DESCRIPTION, demo.EPILOG, demo.add_arguments)
    command("bench", _bench, "run the benchmark suite against PyTorch and scikit-learn and print "
            "the table", BENCH_DESCRIPTION, BENCH_EPILOG,
            lambda p: run_all.add_arguments(p, cli=True))
    command("info", _info, "print versions, CPU, thread pools, kernel cache and CUDA",
            INFO_DESCRIPTION)
    command("warmup", _warmup, "compile the kernels a use needs into the kernel cache (for "
            "Docker images and CI caches)", WARMUP_DESCRIPTION, WARMUP_EPILOG,
            add_warmup_arguments)
    command("cache", _cache, "show the kernel cache (folder, size, writable) or clear it",
            CACHE_DESCRIPTION, add_arguments=add_cache_arguments)
    command("playground", _playground, "train a network live in the browser on your own points, "
            "and download it", playground.DESCRIPTION, playground.EPILOG,
            playground.add_arguments)
    return parser


def main(argv=None):
    """Entry point of the ``fastnn`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].split("=")[0] in _LEGACY_DEMO:
        argv = ["demo", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    # each command parses its own options again (the same definitions), so that it can also be
    # run on its own (python -m fastnn.demo, python benchmarks/run_all.py)
    args.rest = argv[argv.index(args.command) + 1:]
    try:
        return args.run(args) or 0
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # fastnn info | head: the reader left; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
