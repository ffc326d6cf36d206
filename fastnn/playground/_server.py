"""The playground's web server: a Starlette app behind a guard, served by uvicorn.

The guard refuses, before any route runs:

- a ``Host`` header that is not the server's own address (DNS rebinding: a foreign site whose
  name resolves to 127.0.0.1 sends its own name);
- an ``Origin`` that is not the server's own, or ``Sec-Fetch-Site: cross-site/same-site``
  (requests that other pages, another port of localhost included, make from a browser);
- an API request without the per-launch token (a header, or ``?token=`` as Jupyter's URL).

POST requests further need a JSON (or CSV) content type and the token in a header, which a form
or a simple cross-site request cannot send. Bodies are bounded (``MAX_JSON``, ``MAX_UPLOAD``:
413 beyond), and so are points, model size, sessions and training time (``_data``, ``_model``,
``_session``). No request text is evaluated: settings are checked against fixed names and
numeric ranges.
"""
import asyncio
import hmac
import json
import secrets
import socket
import threading
import webbrowser
from importlib.resources import files
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import _export
from ._data import DataError
from ._model import ModelError, onnx_support
from ._session import Limits, SessionError, Sessions, TooMany

MAX_JSON = 64 * 1024             # bytes of a JSON request
MAX_UPLOAD = 1024 * 1024         # bytes of an uploaded CSV file
TOKEN_HEADER = "x-playground-token"
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; "
       "base-uri 'none'; form-action 'none'")
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-resource-policy", b"same-origin"),
                    (b"cache-control", b"no-store")]


class HTTPError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


def allowed_hosts(host, port):
    """The ``Host`` values of the server's own address: loopback names, and ``host`` itself (all
    this machine's names and addresses when it listens on every interface)."""
    names = set(LOOPBACK)
    if host in ("0.0.0.0", "::", ""):
        names.add(socket.gethostname())
        try:
            for info in socket.getaddrinfo(socket.gethostname(), None):
                names.add(info[4][0])
        except OSError:
            pass
    else:
        names.add(host)
    names = {f"[{n}]" if ":" in n and not n.startswith("[") else n for n in names}
    return {f"{n}:{port}" for n in names} | ({n for n in names} if port == 80 else set())


class Guard:
    """ASGI middleware: the Host, Origin, fetch-site and token checks (see the module doc), and
    the security headers on every response."""

    def __init__(self, app, hosts, token):
        self.app, self.hosts, self.token = app, set(hosts), token
        self.origins = {f"http://{h}" for h in self.hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # no websockets here
            await send({"type": "websocket.close", "code": 1008})
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self.refusal(scope, headers)
        if refusal:
            await _plain(send, 403, refusal)
            return

        async def secured(message):
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)
        await self.app(scope, receive, secured)

    def refusal(self, scope, headers):
        """Why the request is refused (None: it may go on)."""
        host = headers.get("host", "")
        if host.lower() not in self.hosts:
            return (f"refused: Host {host[:80]!r} is not this server's address (open the URL "
                    "that 'fastnn playground' printed)")
        origin = headers.get("origin")
        if origin is not None and origin.lower() not in self.origins:
            return "refused: a request from another site"
        if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            return "refused: a request from another site"
        path = scope["path"]
        if path.startswith("/api/") or path == "/":
            given = headers.get(TOKEN_HEADER)
            if given is None:
                query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
                given = (query.get("token") or [None])[0]
            if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
                return ("refused: a missing or wrong token (open the URL with ?token= that "
                        "'fastnn playground' printed)")
            if scope["method"] == "POST" and path.startswith("/api/") \
                    and not path.endswith("/close") and TOKEN_HEADER not in headers:
                return "refused: POST requests carry the token in the X-Playground-Token header"
        return None


async def _plain(send, status, text):
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())] + SECURITY_HEADERS})
    await send({"type": "http.response.body", "body": body})


def _static(name):
    return files("fastnn.playground").joinpath("static", name).read_bytes()


def create_app(token, hosts, limits=None):
    """The playground's ASGI app behind its ``Guard``: ``token`` is the launch's secret,
    ``hosts`` the accepted ``Host`` values (``allowed_hosts(host, port)``)."""
    sessions = Sessions(limits or Limits())
    page = _static("index.html")
    script = _static("playground.js")

    def session_of(request):
        try:
            return sessions.get(request.path_params["sid"])
        except KeyError:
            raise HTTPError(404, "this playground page has expired: reload it") from None

    async def call(fn, *args):
        try:
            return await run_in_threadpool(fn, *args)
        except TooMany as err:
            raise HTTPError(503, str(err)) from None
        except (DataError, ModelError, SessionError) as err:
            raise HTTPError(400, str(err)) from None

    async def index(request):
        return Response(page, media_type="text/html; charset=utf-8",
                        headers={"content-security-policy": CSP})

    async def js(request):
        return Response(script, media_type="text/javascript; charset=utf-8")

    async def favicon(request):
        return Response(status_code=204)

    async def create(request):
        await _json(request)
        session = await call(sessions.create)
        return JSONResponse({"state": session.state(), "limits": sessions.limits.to_json(),
                             "options": _options()})

    async def state(request):
        known = request.query_params.get("data")
        known = int(known) if known and known.isascii() and known.isdigit() else None
        return JSONResponse(session_of(request).state(known))

    def change(method):
        """A route that hands the request's JSON to the session's ``method``, then answers
        with the session's state."""
        async def route(request):
            session, body = session_of(request), await _json(request)
            await call(getattr(session, method), body)
            return JSONResponse(session.state())
        return route

    async def upload(request):
        session = session_of(request)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in ("text/csv", "application/octet-stream", "text/plain"):
            raise HTTPError(415, "upload a CSV file (Content-Type text/csv)")
        body = await _body(request, MAX_UPLOAD, "the file is too large: the playground takes "
                                                f"CSV files up to {MAX_UPLOAD // 1024} KiB")
        mode = request.query_params.get("mode", "classification")
        if mode not in ("classification", "regression"):
            raise HTTPError(400, "mode must be classification or regression")
        await call(session.upload, body, mode == "regression")
        return JSONResponse(session.state())

    async def control(request):
        session, body = session_of(request), await _json(request)
        action = body.get("action") if isinstance(body, dict) else None
        await call(session.control, action)
        return JSONResponse(session.state())

    async def export(request):
        session, kind = session_of(request), request.path_params["kind"]
        if kind not in ("model", "onnx", "python"):
            raise HTTPError(404, "export model, onnx or python")
        content, name, media = await call(_export_file, session, kind)
        return Response(content, media_type=media,
                        headers={"content-disposition": f'attachment; filename="{name}"'})

    async def close(request):
        sessions.close(request.path_params["sid"])
        return JSONResponse({"closed": True})

    routes = [Route("/", index), Route("/static/playground.js", js),
              Route("/favicon.ico", favicon),
              Route("/api/sessions", create, methods=["POST"]),
              Route("/api/sessions/{sid}/state", state),
              Route("/api/sessions/{sid}/data", change("set_data"), methods=["POST"]),
              Route("/api/sessions/{sid}/points", change("edit"), methods=["POST"]),
              Route("/api/sessions/{sid}/upload", upload, methods=["POST"]),
              Route("/api/sessions/{sid}/model", change("set_model"), methods=["POST"]),
              Route("/api/sessions/{sid}/control", control, methods=["POST"]),
              Route("/api/sessions/{sid}/export/{kind}", export),
              Route("/api/sessions/{sid}/close", close, methods=["POST"])]

    async def http_error(request, exc):
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    app = Starlette(routes=routes, exception_handlers={HTTPError: http_error})
    app.state.sessions, app.state.token = sessions, token
    return Guard(app, hosts, token)


def _options():
    from . import _data, _model
    return {"classification": list(_data.CLASSIFICATION), "regression": list(_data.REGRESSION),
            "two_class_only": list(_data.TWO_CLASS_ONLY), "activations": list(_model.ACTIVATIONS),
            "optimizers": list(_model.OPTIMIZERS), "losses": list(_model.LOSSES),
            "features": list(_model.FEATURES)}


async def _body(request, limit, message):
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise HTTPError(413, message)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, message)
        chunks.append(chunk)
    return b"".join(chunks)


async def _json(request):
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise HTTPError(415, "send JSON (Content-Type application/json)")
    body = await _body(request, MAX_JSON, f"the request is too large ({MAX_JSON // 1024} KiB "
                                          "at most)")
    if not body:
        return {}
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise HTTPError(400, "the request body is not valid JSON") from None


def _export_file(session, kind):
    spec, points, model, epochs = session.export_snapshot()
    if kind == "model":
        return _export.fastnn_file(model), "playground_model.npz", "application/octet-stream"
    if kind == "python":
        return (_export.python_script(spec, points, epochs).encode(), "playground_model.py",
                "text/x-python; charset=utf-8")
    support = onnx_support(spec)
    if not support["ok"]:
        raise SessionError(support["why"])
    try:
        content = _export.onnx_file(spec, points, model)
    except ImportError:
        raise SessionError("ONNX export needs skl2onnx: pip install 'fastnn[onnx]'") from None
    return content, "playground_model.onnx", "application/octet-stream"


# -- running it --------------------------------------------------------------------------------

class Server:
    """A playground server running in a background thread (``start``): ``url``, ``stop()``."""

    def __init__(self, server, thread, url, app):
        self._server, self._thread, self.url, self.app = server, thread, url, app

    def stop(self, timeout=10.0):
        self._server.should_exit = True
        self._thread.join(timeout)
        self.app.app.state.sessions.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def bind(host, port, tries=1):
    """A listening socket on ``host``:``port`` (port 0: any free port; ``tries`` > 1: the next
    ports when that one is taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for attempt in range(max(1, tries)):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port + attempt if port else 0))
        except OSError:
            sock.close()
            if attempt == tries - 1:
                raise
            continue
        sock.listen(128)
        sock.set_inheritable(True)
        return sock
    raise OSError(f"no free port from {port}")


def make_server(host="127.0.0.1", port=0, tries=1, limits=None):
    """(uvicorn server, its socket, the page's URL with the token, the app)."""
    import uvicorn
    sock = bind(host, port, tries)
    port = sock.getsockname()[1]
    token = secrets.token_urlsafe(24)
    app = create_app(token, allowed_hosts(host, port), limits)
    config = uvicorn.Config(app, log_level="warning", access_log=False, proxy_headers=False,
                            server_header=False, lifespan="off", ws="none",
                            limit_concurrency=64, timeout_keep_alive=5)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return uvicorn.Server(config), sock, f"http://{shown}:{port}/?token={token}", app


def start(host="127.0.0.1", port=0, open_browser=False, limits=None):
    """Start a playground server in a background thread; returns a ``Server`` (``.url``,
    ``.stop()``, a context manager). For notebooks and tests."""
    server, sock, url, app = make_server(host, port, limits=limits)
    thread = threading.Thread(target=_run, args=(server, sock), daemon=True,
                              name="fastnn-playground-server")
    thread.start()
    while not server.started and thread.is_alive():
        thread.join(0.02)
    if not server.started:
        raise RuntimeError("the playground server did not start")
    if open_browser:
        webbrowser.open(url)
    return Server(server, thread, url, app)


def _run(server, sock):
    asyncio.run(server.serve(sockets=[sock]))
