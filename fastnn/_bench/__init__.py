"""fastnn's benchmark suite, installed with the package so that ``fastnn bench`` runs anywhere.

Each ``bench_*.py`` is a script (``python -m fastnn._bench.bench_kernels --help``, or by path);
``run_all.py`` runs them one after the other and prints the table. In a repository checkout,
``python benchmarks/<name>.py`` still runs the same scripts with the same flags and outputs.
Nothing here is public API.
"""
