"""The playground app on Starlette's ``TestClient`` (no socket, no browser), and helpers that
wait for a session's worker thread with generous deadlines: a first run compiles fastnn's
kernels, which can take a minute on a new machine. The playground extra (Starlette) is
installed wherever these tests run (CI installs it), so nothing here is skipped."""
import time
import warnings

import pytest

with warnings.catch_warnings():
    # newer Starlette suggests httpx2 for its TestClient; httpx works the same
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from starlette.testclient import TestClient

from fastnn.playground._server import TOKEN_HEADER, allowed_hosts, create_app

PORT = 8765
TOKEN = "playground-test-token-0123456789"
BASE = f"http://127.0.0.1:{PORT}"
AUTH = {TOKEN_HEADER: TOKEN}
DEADLINE = 120.0        # seconds to wait for the worker (a first run compiles the kernels)
SMALL = {"points": 100}  # a small dataset keeps the tests fast


class Api:
    """One playground app (``create_app``) behind its guard, with a client that sends the
    token header unless told otherwise, and helpers for sessions."""

    def __init__(self, limits=None, raise_server_exceptions=True):
        self.app = create_app(TOKEN, allowed_hosts("127.0.0.1", PORT), limits)
        self.sessions = self.app.app.state.sessions
        self.client = TestClient(self.app, base_url=BASE,
                                 raise_server_exceptions=raise_server_exceptions)

    # -- raw requests (the token header unless ``token=False``) ------------------------------
    def get(self, path, headers=None, token=True, **kw):
        return self.client.get(path, headers={**(AUTH if token else {}), **(headers or {})},
                               **kw)

    def post(self, path, json=None, headers=None, token=True, **kw):
        return self.client.post(path, json=json,
                                headers={**(AUTH if token else {}), **(headers or {})}, **kw)

    # -- sessions --------------------------------------------------------------------------------
    def create(self):
        """A new session's ``create`` answer (state, limits, options), once its worker is idle."""
        r = self.post("/api/sessions", json={})
        assert r.status_code == 200, r.text
        out = r.json()
        self.settle(out["state"]["session"])
        out["state"] = self.state(out["state"]["session"])
        return out

    def session(self, sid):
        return self.sessions.sessions[sid]

    def state(self, sid, **params):
        r = self.get(f"/api/sessions/{sid}/state", params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def send(self, sid, what, body, status=200):
        """POST ``body`` to the session's ``what`` route; check the status; on success wait for
        the worker to take the change up and return the fresh state, else the error text."""
        r = self.post(f"/api/sessions/{sid}/{what}", json=body)
        assert r.status_code == status, r.text
        if status != 200:
            return r.json()["error"]
        self.settle(sid)
        return self.state(sid)

    def upload(self, sid, data, mode=None, content_type="text/csv"):
        params = {"mode": mode} if mode else None
        return self.post(f"/api/sessions/{sid}/upload", content=data, params=params,
                         headers={"content-type": content_type})

    def control(self, sid, action):
        return self.send(sid, "control", {"action": action})

    def settle(self, sid, timeout=DEADLINE):
        """Wait until the worker has taken up every change and finished a step."""
        s = self.session(sid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with s.cond:
                if (s.done_generation >= s.generation and s.done_data >= s.data_version
                        and not s.steps):
                    return
            time.sleep(0.01)
        pytest.fail(f"the session's worker did not take up a change in {timeout:.0f} s")

    def wait_for(self, sid, predicate, what, timeout=DEADLINE):
        """Poll the session's state until ``predicate(state)``; returns that state."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(sid, data=self.session(sid).data_version)
            if predicate(state):
                return state
            if time.monotonic() > deadline:
                pytest.fail(f"waited {timeout:.0f} s for {what}; last state: epoch "
                            f"{state['epoch']}, status {state['status']!r}, message "
                            f"{state['message']!r}, scores {state['scores']}")
            time.sleep(0.02)

    def step(self, sid):
        """Press step and wait for its epoch; returns the state."""
        before = self.state(sid)["epoch"]
        self.post(f"/api/sessions/{sid}/control", json={"action": "step"}).raise_for_status()
        self.settle(sid)
        return self.wait_for(sid, lambda s: s["epoch"] >= before + 1, "a step")

    def close(self, sid):
        return self.post(f"/api/sessions/{sid}/close")

    def shutdown(self):
        self.sessions.shutdown()
        self.client.close()


@pytest.fixture(scope="module")
def api():
    """An app shared by a module's tests (default limits: 8 sessions; tests close theirs)."""
    a = Api()
    yield a
    a.shutdown()


@pytest.fixture
def new_api():
    """Apps with limits of their own: ``new_api(Limits(...))``; shut down after the test."""
    made = []

    def make(limits=None, **kw):
        made.append(Api(limits, **kw))
        return made[-1]
    yield make
    for a in made:
        a.shutdown()


@pytest.fixture
def sid(api):
    """A fresh session of the shared app on a small circle dataset, closed after the test."""
    sid = api.create()["state"]["session"]
    api.send(sid, "data", SMALL)
    yield sid
    api.close(sid)
