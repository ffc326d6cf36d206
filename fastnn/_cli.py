"""The ``fastnn`` command (also ``python -m fastnn``): ``demo``, ``bench`` and ``info``.

``fastnn`` alone prints the help (the list of commands) and exits with status 0. For
compatibility with the old ``python -m fastnn [--epochs N] [--cnn-epochs N]``, a command line
that starts with one of the demo's options runs the demo.
"""
import argparse
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
    "cache folder and its size, and whether CUDA is available. Paste it into bug reports. The "
    "same report comes from fastnn.show_versions() in Python.")
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


def build_parser():
    from . import demo
    from ._bench import run_all

    parser = argparse.ArgumentParser(prog="fastnn", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"fastnn {fastnn.__version__}")
    sub = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    p = sub.add_parser("demo", help="train fastnn beside scikit-learn on the bundled digits and "
                                    "compare accuracy and speed",
                       description=demo.DESCRIPTION, epilog=demo.EPILOG,
                       formatter_class=_Formatter)
    demo.add_arguments(p)
    p.set_defaults(run=_demo)
    p = sub.add_parser("bench", help="run the benchmark suite against PyTorch and scikit-learn "
                                     "and print the table",
                       description=BENCH_DESCRIPTION, epilog=BENCH_EPILOG,
                       formatter_class=_Formatter)
    run_all.add_arguments(p, cli=True)
    p.set_defaults(run=_bench)
    p = sub.add_parser("info", help="print versions, CPU, thread pools, kernel cache and CUDA",
                       description=INFO_DESCRIPTION, formatter_class=_Formatter)
    p.set_defaults(run=_info)
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
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
