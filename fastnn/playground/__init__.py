"""The fastnn playground: train a real network live in the browser, on your own points.

``fastnn playground`` (or ``fastnn.playground.serve()``) serves a page on 127.0.0.1 and opens
the browser. The page sets up data (TensorFlow Playground's datasets, scikit-learn's moons and
blobs, points clicked in or dragged out, a CSV file) and a network (layers, units, activations,
loss, optimizer, learning rate, batch size, L2, dropout, feature crosses); the server trains it
with ``fastnn.nn`` on the CPU kernels and the page draws the decision regions, each hidden
unit, the weights and the loss curves several times a second. The trained network downloads
as a ``fastnn.save`` file, as ONNX (where it is scikit-learn's MLP) and as a Python script that
retrains it with ``fastnn.sklearn``.

Needs the ``playground`` extra (Starlette and uvicorn): ``pip install "fastnn[playground]"``.
Importing this module is cheap; the server's libraries load when it starts.

The server is for one person on one machine: it listens on 127.0.0.1, wants the per-launch
token of its URL (as Jupyter does), refuses requests whose Host or Origin is not its own, and
bounds uploads, points, model size, sessions and training time.
"""
import sys

__all__ = ["add_arguments", "main", "run", "serve", "start"]

DEFAULT_PORT = 8765
DESCRIPTION = ("Serve the fastnn playground on this machine and open it in the browser: pick or "
               "draw 2-D data, build a small network, watch it train live (fastnn trains it on "
               "the CPU), and download it as a fastnn file, as ONNX or as a Python script.")
EPILOG = ("The page's URL carries a token that changes at every launch; the part after '#' "
          "holds the setup, so a link reproduces it. Press Ctrl+C to stop the server. Needs "
          "the playground extra: pip install \"fastnn[playground]\".")
_INSTALL = 'the playground needs Starlette and uvicorn: pip install "fastnn[playground]"'


def add_arguments(p):
    p.add_argument("--port", type=int, default=None, metavar="N",
                   help=f"port to listen on (default {DEFAULT_PORT}, or the next free one; "
                        "0: any free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--no-browser", action="store_true",
                   help="print the URL without opening a browser")
    return p


def _require():
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ImportError(_INSTALL) from exc


def start(host="127.0.0.1", port=0, open_browser=False, limits=None):
    """Start the playground in a background thread (for notebooks and tests) and return its
    ``Server``: ``server.url`` is the page with its token, ``server.stop()`` ends it (it is
    also a context manager). ``port=0`` picks a free port. ``limits``: a
    ``fastnn.playground._session.Limits`` (sessions, idle time, training time)."""
    _require()
    from ._server import start as _start
    return _start(host, port, open_browser, limits)


def serve(host="127.0.0.1", port=None, open_browser=True, limits=None):
    """Serve the playground until Ctrl+C (``fastnn playground``): print the URL, open the
    browser unless ``open_browser=False``. ``port=None`` tries 8765 and the next few ports."""
    _require()
    import asyncio
    import threading
    import webbrowser

    from ._server import make_server
    tries = 20 if port is None else 1
    server, sock, url, app = make_server(host, DEFAULT_PORT if port is None else port, tries,
                                         limits)
    print(f"fastnn playground: {url}", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: listening on {host}: other machines that can reach it and know the token "
              "can use the playground", flush=True)
    print("Press Ctrl+C to stop.", flush=True)
    if open_browser:
        def _open():
            while not server.started and not server.should_exit:
                threading.Event().wait(0.05)
            if server.started:
                webbrowser.open(url)
        threading.Thread(target=_open, daemon=True).start()
    try:
        asyncio.run(server.serve(sockets=[sock]))
    except KeyboardInterrupt:
        pass
    finally:
        app.app.state.sessions.shutdown()
    return 0


run = serve


def main(argv=None, prog="fastnn playground"):
    """``fastnn playground`` / ``python -m fastnn.playground``: parse the options and serve."""
    import argparse
    p = add_arguments(argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG))
    opts = p.parse_args(argv)
    if opts.port is not None and not 0 <= opts.port <= 65535:
        p.error(f"--port must be between 0 and 65535, got {opts.port}")
    try:
        return serve(opts.host, opts.port, not opts.no_browser)
    except ImportError as exc:
        print(f"fastnn playground: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"fastnn playground: cannot listen on {opts.host}:{opts.port}: {exc}",
              file=sys.stderr)
        return 1
