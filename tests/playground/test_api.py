"""The playground's HTTP API through its guard: security checks, sessions, training, data,
uploads, model settings and the three downloads (fastnn file, ONNX, Python script)."""
import ast
import io
import math
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from starlette.websockets import WebSocketDisconnect

import fastnn
from fastnn.playground import _data, _model
from fastnn.playground._server import CSP, MAX_JSON, MAX_UPLOAD, allowed_hosts
from fastnn.playground._session import Limits

from .conftest import BASE, PORT, SMALL, TOKEN

SECURITY = {"x-content-type-options": "nosniff", "x-frame-options": "DENY",
            "referrer-policy": "no-referrer", "cross-origin-resource-policy": "same-origin",
            "cache-control": "no-store"}


def _assert_secured(response):
    for name, value in SECURITY.items():
        assert response.headers.get(name) == value, (name, dict(response.headers))


def _csv(rows, header="x,y,label"):
    lines = ([header] if header else []) + [",".join(str(v) for v in row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def _named_rows(n=30, names=("cat", "dog", "fish"), seed=1):
    rng = np.random.default_rng(seed)
    return [(round(float(a), 3), round(float(b), 3), names[i % len(names)])
            for i, (a, b) in enumerate(rng.uniform(-20, 40, (n, 2)))]


# -- the guard ---------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["evil.example", f"evil.example:{PORT}", "127.0.0.1:9999",
                                  f"127.0.0.2:{PORT}", f"localhost.evil.example:{PORT}", ""])
def test_a_foreign_host_is_refused(api, sid, host):
    for path in (f"/api/sessions/{sid}/state", "/", "/static/playground.js", "/favicon.ico"):
        r = api.get(path, headers={"host": host})
        assert r.status_code == 403, (path, r.status_code)
        assert "Host" in r.text and "not this server's address" in r.text
        assert r.headers["content-type"].startswith("text/plain")
        _assert_secured(r)
    r = api.post("/api/sessions", json={}, headers={"host": host})
    assert r.status_code == 403 and "Host" in r.text


@pytest.mark.parametrize("host", [f"127.0.0.1:{PORT}", f"localhost:{PORT}", f"LOCALHOST:{PORT}",
                                  f"[::1]:{PORT}"])
def test_the_servers_own_host_names_are_accepted(api, sid, host):
    assert api.get(f"/api/sessions/{sid}/state", headers={"host": host}).status_code == 200
    assert api.get("/favicon.ico", headers={"host": host}).status_code == 204


def test_allowed_hosts():
    hosts = allowed_hosts("127.0.0.1", PORT)
    assert {f"127.0.0.1:{PORT}", f"localhost:{PORT}", f"[::1]:{PORT}"} <= hosts
    assert all(h.endswith(f":{PORT}") for h in hosts)  # no port-less names but on port 80
    assert "127.0.0.1" in allowed_hosts("127.0.0.1", 80)
    assert f"[::1]:{PORT}" in allowed_hosts("::1", PORT)
    assert f"192.168.1.5:{PORT}" in allowed_hosts("192.168.1.5", PORT)


@pytest.mark.parametrize("origin", ["http://evil.example", f"http://evil.example:{PORT}",
                                    "http://127.0.0.1:9999", f"https://127.0.0.1:{PORT}",
                                    "null"])
def test_a_foreign_origin_is_refused(api, sid, origin):
    r = api.get(f"/api/sessions/{sid}/state", headers={"origin": origin})
    assert r.status_code == 403 and "another site" in r.text
    r = api.post(f"/api/sessions/{sid}/control", json={"action": "play"},
                 headers={"origin": origin})
    assert r.status_code == 403 and "another site" in r.text
    assert api.state(sid)["status"] == "paused"  # the refused request did nothing


@pytest.mark.parametrize("origin", [BASE, f"http://localhost:{PORT}"])
def test_the_servers_own_origin_is_accepted(api, sid, origin):
    assert api.get(f"/api/sessions/{sid}/state", headers={"origin": origin}).status_code == 200


@pytest.mark.parametrize("site, status", [("cross-site", 403), ("same-site", 403),
                                          ("same-origin", 200), ("none", 200)])
def test_sec_fetch_site(api, sid, site, status):
    r = api.get(f"/api/sessions/{sid}/state", headers={"sec-fetch-site": site})
    assert r.status_code == status
    if status == 403:
        assert "another site" in r.text


def test_api_requests_need_the_token(api, sid):
    path = f"/api/sessions/{sid}/state"
    for r in (api.get(path, token=False),
              api.get(path, headers={"x-playground-token": "wrong"}),
              api.get(path, headers={"x-playground-token": ""}),
              api.get(path, token=False, params={"token": "wrong"}),
              api.get(path, token=False, params={"token": TOKEN[:-1]}),
              api.get("/", token=False),
              api.post("/api/sessions", json={}, token=False),
              api.post("/api/sessions", json={}, headers={"x-playground-token": "wrong"}),
              api.get(f"/api/sessions/{sid}/export/model", token=False)):
        assert r.status_code == 403
        assert "token" in r.text
        _assert_secured(r)
    # a wrong header is not rescued by a right query token
    r = api.get(path, headers={"x-playground-token": "wrong"}, params={"token": TOKEN})
    assert r.status_code == 403


def test_the_token_in_the_query_works_for_get(api, sid):
    r = api.get(f"/api/sessions/{sid}/state", token=False, params={"token": TOKEN})
    assert r.status_code == 200 and r.json()["session"] == sid
    r = api.get("/", token=False, params={"token": TOKEN})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")


def test_post_needs_the_token_header(api, sid):
    r = api.post("/api/sessions", json={}, token=False, params={"token": TOKEN})
    assert r.status_code == 403 and "X-Playground-Token header" in r.text
    r = api.post(f"/api/sessions/{sid}/control", json={"action": "play"}, token=False,
                 params={"token": TOKEN})
    assert r.status_code == 403
    assert api.state(sid)["status"] == "paused"


def test_close_takes_the_token_in_the_query(api):
    """The page closes its session with navigator.sendBeacon, which sends no headers."""
    sid = api.create()["state"]["session"]
    r = api.post(f"/api/sessions/{sid}/close", token=False)
    assert r.status_code == 403 and sid in api.sessions.sessions
    r = api.post(f"/api/sessions/{sid}/close", token=False, params={"token": TOKEN})
    assert r.status_code == 200 and r.json() == {"closed": True}
    assert sid not in api.sessions.sessions


@pytest.mark.parametrize("headers, body", [
    ({"content-type": "text/plain"}, b'{"action": "play"}'),
    ({"content-type": "application/x-www-form-urlencoded"}, b"action=play"),
    ({"content-type": "multipart/form-data; boundary=x"}, b"--x--"),
    ({}, b'{"action": "play"}'),
])
def test_post_needs_a_json_content_type(api, sid, headers, body):
    r = api.post(f"/api/sessions/{sid}/control", content=body, headers=headers)
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    _assert_secured(r)
    assert api.state(sid)["status"] == "paused"


def test_a_json_body_beyond_max_json_is_refused(api, sid):
    body = b'{"dataset": "circle", "pad": "' + b"x" * MAX_JSON + b'"}'
    r = api.post(f"/api/sessions/{sid}/data", content=body,
                 headers={"content-type": "application/json"})
    assert r.status_code == 413 and "too large" in r.json()["error"]

    def chunks():  # no Content-Length: the server counts the bytes as they come
        yield b'{"pad": "'
        for _ in range(MAX_JSON // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'
    r = api.post(f"/api/sessions/{sid}/data", content=chunks(),
                 headers={"content-type": "application/json"})
    assert r.status_code == 413 and "too large" in r.json()["error"]


def test_a_json_body_within_max_json_is_read(api, sid):
    # just below the bound: read, then refused for its content (400), not its size
    body = b'{"pad": "' + b"x" * (MAX_JSON - 20) + b'"}'
    r = api.post(f"/api/sessions/{sid}/data", content=body,
                 headers={"content-type": "application/json"})
    assert r.status_code == 400 and "unknown data setting 'pad'" in r.json()["error"]


def test_an_upload_beyond_max_upload_is_refused(api, sid):
    row = b"1.0,2.0,a\n"
    r = api.upload(sid, row * (MAX_UPLOAD // len(row) + 1))
    assert r.status_code == 413 and "too large" in r.json()["error"]
    assert api.state(sid)["points"]["source"] == "generated"


def test_an_upload_needs_a_csv_content_type(api, sid):
    r = api.upload(sid, _csv(_named_rows()), content_type="application/json")
    assert r.status_code == 415 and "text/csv" in r.json()["error"]
    r = api.upload(sid, _csv(_named_rows()), mode="clustering")
    assert r.status_code == 400 and "classification or regression" in r.json()["error"]


@pytest.mark.parametrize("body", [b"{", b"{'a': 1}", b"[1, 2", b"\xff\xfe", b"[" * 50_000,
                                  b"NaN]"])
def test_invalid_json_is_refused(api, sid, body):
    r = api.post(f"/api/sessions/{sid}/model", content=body,
                 headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "the request body is not valid JSON"


@pytest.mark.parametrize("what, body, message", [
    ("data", [], "must be a JSON object"),
    ("model", [4, "tanh"], "must be a JSON object"),
    ("points", "add", '{"edits": [...]}'),
    ("control", ["play"], "unknown action None"),
    ("control", {"action": "fly"}, "unknown action 'fly': play, pause, step or reset"),
    ("control", {}, "unknown action None"),
])
def test_requests_of_the_wrong_shape_are_refused(api, sid, what, body, message):
    assert message in api.send(sid, what, body, status=400)


def test_security_headers(api, sid):
    r = api.get("/")
    assert r.status_code == 200
    _assert_secured(r)
    assert r.headers["content-security-policy"] == CSP
    for part in ("default-src 'none'", "script-src 'self'", "frame-ancestors 'none'",
                 "connect-src 'self'", "form-action 'none'"):
        assert part in r.headers["content-security-policy"]
    r = api.get("/static/playground.js", token=False)  # the page's script needs no token
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    _assert_secured(r)
    for r in (api.get(f"/api/sessions/{sid}/state"), api.get("/api/sessions/nope/state"),
              api.get("/no/such/page"), api.post(f"/api/sessions/{sid}/model", json=[])):
        _assert_secured(r)


def test_websockets_are_refused(api):
    with pytest.raises(WebSocketDisconnect) as exc, api.client.websocket_connect("/api/sessions"):
        pass
    assert exc.value.code == 1008


def test_an_unknown_session_is_404(api):
    for r in (api.get("/api/sessions/nope/state"),
              api.post("/api/sessions/nope/data", json={}),
              api.post("/api/sessions/nope/points", json={"edits": [{"add": [0, 0, 0]}]}),
              api.post("/api/sessions/nope/model", json={}),
              api.post("/api/sessions/nope/control", json={"action": "play"}),
              api.upload("nope", _csv(_named_rows())),
              api.get("/api/sessions/nope/export/model")):
        assert r.status_code == 404, r.text
        assert "expired" in r.json()["error"]
    assert api.post("/api/sessions/nope/close").json() == {"closed": True}


def test_an_unknown_export_is_404(api, sid):
    r = api.get(f"/api/sessions/{sid}/export/pickle")
    assert r.status_code == 404 and "model, onnx or python" in r.json()["error"]


def test_get_on_a_post_route_is_405(api, sid):
    assert api.get(f"/api/sessions/{sid}/control").status_code == 405
    assert api.get("/api/sessions").status_code == 405


# -- sessions ----------------------------------------------------------------------------------

def test_create_returns_state_limits_and_options(api):
    out = api.create()
    sid = out["state"]["session"]
    try:
        assert out["limits"] == Limits().to_json()
        assert out["limits"]["max_points"] == _data.MAX_POINTS
        assert out["limits"]["max_parameters"] == _model.MAX_PARAMETERS
        opts = out["options"]
        assert opts["classification"] == list(_data.CLASSIFICATION)
        assert opts["regression"] == list(_data.REGRESSION)
        assert opts["two_class_only"] == list(_data.TWO_CLASS_ONLY)
        assert opts["activations"] == list(_model.ACTIVATIONS)
        assert opts["optimizers"] == list(_model.OPTIMIZERS)
        assert opts["losses"] == list(_model.LOSSES)
        assert opts["features"] == list(_model.FEATURES)
        s = out["state"]
        assert s["status"] == "paused" and s["message"] == "" and s["epoch"] == 0
        assert s["data"] == {"dataset": "circle", "noise": 0.0, "classes": 2, "ratio": 0.5,
                             "seed": 0, "points": _data.DEFAULT_POINTS, "regression": False}
        assert s["model"] == _model.ModelSpec().to_json() and s["edits"] == []
        p = s["points"]
        assert p["count"] == _data.DEFAULT_POINTS == len(p["x"]) == len(p["label"])
        assert p["classes"] == ["0", "1"] and p["source"] == "generated"
        assert sum(p["test"]) == _data.DEFAULT_POINTS // 2
        assert s["scores"]["train_points"] == s["scores"]["test_points"] == 200
        assert 0 <= s["scores"]["test_accuracy"] <= 1 and s["scores"]["test_loss"] > 0
        assert s["history"] == {"epoch": [0], "train": [s["scores"]["train_loss"]],
                                "test": [s["scores"]["test_loss"]]}
        assert [np.array(w).shape for w in s["weights"]] == [(2, 4), (4, 2), (2, 2)]
        region = s["view"]["region"]
        assert region["kind"] == "classes" and region["n"] == _model.GRID
        assert [len(u["maps"]) for u in s["view"]["units"]] == [4, 2]
        assert s["onnx"] == {"ok": True, "why": ""}
        assert s["epochs_per_s"] == 0.0
    finally:
        api.close(sid)


def test_state_sends_the_points_only_when_they_changed(api, sid):
    s = api.state(sid)
    version = s["data_version"]
    assert "points" not in api.state(sid, data=version)
    assert api.state(sid, data=version + 1)["points"]["count"] == 100
    assert "points" in api.state(sid, data="not-a-number")
    s = api.send(sid, "points", {"edits": [{"add": [0, 0, 1]}]})
    assert s["data_version"] == version + 1
    assert api.state(sid, data=version)["points"]["count"] == 101


def test_max_sessions(new_api):
    a = new_api(Limits(max_sessions=2))
    first, second = (a.create()["state"]["session"] for _ in range(2))
    r = a.post("/api/sessions", json={})
    assert r.status_code == 503 and "too many open playground pages (2)" in r.json()["error"]
    assert len(a.sessions.sessions) == 2
    a.close(first)
    third = a.create()["state"]["session"]
    assert set(a.sessions.sessions) == {second, third}


def _ended(thread, timeout=10.0):
    thread.join(timeout)
    return not thread.is_alive()


def test_closing_a_session_ends_its_worker_thread(api):
    sid = api.create()["state"]["session"]
    thread = api.session(sid).thread
    assert thread.is_alive()
    assert api.close(sid).json() == {"closed": True}
    assert _ended(thread)
    assert api.get(f"/api/sessions/{sid}/state").status_code == 404


def test_closing_a_training_session_ends_its_worker_thread(api):
    sid = api.create()["state"]["session"]
    api.send(sid, "data", SMALL)
    thread = api.session(sid).thread
    api.control(sid, "play")
    api.wait_for(sid, lambda s: s["epoch"] >= 2, "two epochs")
    api.close(sid)
    assert _ended(thread)


def test_idle_sessions_are_reaped(new_api):
    a = new_api(Limits(idle_seconds=1.0))
    sid = a.create()["state"]["session"]
    thread = a.session(sid).thread
    a.sessions.reap()
    assert sid in a.sessions.sessions  # just created: not idle
    time.sleep(1.3)
    a.sessions.reap()  # (the reaper thread may have closed it already)
    assert sid not in a.sessions.sessions
    assert _ended(thread)
    r = a.get(f"/api/sessions/{sid}/state")
    assert r.status_code == 404 and "reload" in r.json()["error"]


def test_shutdown_ends_every_worker(new_api):
    a = new_api()
    threads = [a.session(a.create()["state"]["session"]).thread for _ in range(3)]
    a.sessions.shutdown()
    assert not a.sessions.sessions
    assert all(_ended(t) for t in threads)


# -- training ----------------------------------------------------------------------------------

def test_play_trains_until_the_test_loss_falls(api):
    sid = api.create()["state"]["session"]  # the default: circle, 400 points
    try:
        s = api.state(sid)
        assert s["data"]["dataset"] == "circle"
        initial = s["scores"]["test_loss"]
        s = api.control(sid, "play")
        assert s["status"] == "running"
        s = api.wait_for(sid, lambda s: s["epoch"] > 20 and s["scores"]["test_loss"] < initial,
                         "20 epochs and a lower test loss")
        assert s["status"] == "running"
        assert s["history"]["epoch"][0] == 0 and s["history"]["test"][0] == initial
        assert s["history"]["epoch"] == sorted(s["history"]["epoch"])
        assert len(s["history"]["train"]) == len(s["history"]["epoch"])
        s = api.wait_for(sid, lambda s: s["epochs_per_s"] > 0, "a training speed")
        assert s["samples_per_s"] > 0
    finally:
        api.close(sid)


def test_pause_stops_the_epochs(api, sid):
    api.control(sid, "play")
    api.wait_for(sid, lambda s: s["epoch"] >= 3, "three epochs")
    s = api.control(sid, "pause")
    assert s["status"] == "paused"
    paused_at = s["epoch"]
    # the epoch running when pause came may end; then a step runs exactly one more, and the
    # worker sits idle: the count stays
    s = api.step(sid)
    assert paused_at + 1 <= s["epoch"] <= paused_at + 2
    time.sleep(0.3)
    assert api.state(sid)["epoch"] == s["epoch"]
    assert api.state(sid)["status"] == "paused"


def test_step_runs_exactly_one_epoch(api, sid):
    before = api.state(sid)
    s = api.step(sid)
    assert s["epoch"] == 1 and s["status"] == "paused"
    assert s["weights"] != before["weights"]
    s = api.step(sid)
    assert s["epoch"] == 2
    time.sleep(0.2)
    s = api.state(sid)
    assert s["epoch"] == 2 and s["status"] == "paused"
    assert s["history"]["epoch"] == [0, 1, 2]


def test_reset_goes_back_to_epoch_zero_and_the_initial_weights(api, sid):
    initial = api.state(sid)
    api.step(sid)
    api.step(sid)
    s = api.control(sid, "reset")
    assert s["epoch"] == 0 and s["status"] == "paused"
    assert s["history"]["epoch"] == [0]
    assert s["weights"] == initial["weights"]  # the same seed builds the same network
    assert s["generation"] == initial["generation"] + 1


def test_reset_while_running_pauses(api, sid):
    api.control(sid, "play")
    api.wait_for(sid, lambda s: s["epoch"] >= 2, "two epochs")
    s = api.control(sid, "reset")
    assert s["status"] == "paused"
    assert api.wait_for(sid, lambda s: s["epoch"] == 0, "epoch 0")["history"]["epoch"] == [0]


def test_the_run_seconds_limit_pauses_with_a_message(new_api):
    a = new_api(Limits(run_seconds=1))
    sid = a.create()["state"]["session"]
    a.send(sid, "data", SMALL)
    a.control(sid, "play")
    s = a.wait_for(sid, lambda s: s["status"] == "paused", "the run-time limit",
                   timeout=120 + 30)
    assert "paused after 1 s of training" in s["message"]
    assert "press play to go on" in s["message"]
    stopped = s["epoch"]
    assert stopped >= 1
    s = a.control(sid, "play")  # a new run, with a new second
    assert s["status"] == "running" and s["message"] == ""
    s = a.wait_for(sid, lambda s: s["status"] == "paused", "the limit of the second run")
    assert s["epoch"] > stopped and "paused after 1 s" in s["message"]


def test_the_max_epochs_limit_stops_training(new_api):
    a = new_api(Limits(max_epochs=3))
    sid = a.create()["state"]["session"]
    a.send(sid, "data", SMALL)
    a.control(sid, "play")
    s = a.wait_for(sid, lambda s: s["status"] == "paused", "the epoch limit")
    assert s["epoch"] == 3 and "stopped at the limit of 3 epochs" in s["message"]
    a.control(sid, "play")
    s = a.wait_for(sid, lambda s: s["status"] == "paused", "play refused at the limit")
    assert s["epoch"] == 3 and "limit of 3 epochs" in s["message"]


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning",
                            "ignore:invalid value:RuntimeWarning")
def test_divergence_pauses_with_a_message(api, sid):
    api.send(sid, "data", {"dataset": "plane", "points": 100})
    api.send(sid, "model", {"optimizer": "sgd", "lr": 10, "layers": [[8, "relu"], [8, "relu"]]})
    api.control(sid, "play")
    s = api.wait_for(sid, lambda s: s["status"] == "paused", "divergence")
    assert "training diverged" in s["message"] and "lower the learning rate" in s["message"]


def test_play_without_training_points_pauses_with_a_message(api, sid):
    s = api.send(sid, "points", {"edits": [{"delete": [-6, -6, 6, 6]}]})
    assert s["points"]["count"] == 0
    assert s["scores"]["train_loss"] is None and s["scores"]["train_points"] == 0
    api.control(sid, "play")
    s = api.wait_for(sid, lambda s: s["status"] == "paused", "a refusal")
    assert "too few training points" in s["message"]
    # points of a single class: refused too
    api.send(sid, "points", {"edits": [{"add": [1, 1, 0]}, {"add": [2, 2, 0]}]})
    api.control(sid, "play")
    s = api.wait_for(sid, lambda s: s["status"] == "paused", "a refusal")
    assert "single class" in s["message"]
    # a point of the other class: it trains
    api.send(sid, "points", {"edits": [{"add": [-3, -3, 1]}]})
    assert api.step(sid)["epoch"] == 1
    s = api.control(sid, "play")
    assert s["status"] == "running" and s["message"] == ""
    api.wait_for(sid, lambda s: s["epoch"] >= 3, "epochs")
    api.control(sid, "pause")


def test_edits_keep_the_network_training(api, sid):
    api.step(sid)
    s = api.send(sid, "points", {"edits": [{"add": [1, 1, 1]}]})
    assert s["epoch"] == 1  # not rebuilt
    assert api.step(sid)["epoch"] == 2


# -- data --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dataset", _data.CLASSIFICATION + _data.REGRESSION)
def test_every_dataset_through_the_api(api, sid, dataset):
    s = api.send(sid, "data", {"dataset": dataset, "classes": 3, "points": 90, "ratio": 0.3,
                               "noise": 0.1, "seed": 7})
    p = s["points"]
    assert p["count"] == 90 and len(p["x"]) == 90
    assert max(map(abs, p["x"] + p["y"])) <= _data.DOMAIN
    assert 90 - sum(p["test"]) == 27
    regression = dataset in _data.REGRESSION
    assert p["regression"] is regression and s["data"]["regression"] is regression
    if regression:
        assert p["classes"] == [] and s["data"]["classes"] == 0
        assert all(-1 <= v <= 1 for v in p["label"])
        assert s["scores"]["train_accuracy"] is None
        assert np.array(s["weights"][-1]).shape == (2, 1)
    else:
        k = 2 if dataset in _data.TWO_CLASS_ONLY else 3
        assert p["classes"] == [str(c) for c in range(k)] and s["data"]["classes"] == k
        assert set(p["label"]) == set(range(k))
        assert np.array(s["weights"][-1]).shape == (2, k)


def test_noise_changes_the_points(api, sid):
    quiet = api.send(sid, "data", {"dataset": "gauss", "points": 100})["points"]
    noisy = api.send(sid, "data", {"dataset": "gauss", "points": 100, "noise": 0.5})["points"]
    assert quiet["x"] != noisy["x"]
    assert api.send(sid, "data", {"dataset": "gauss", "points": 100})["points"] == quiet


def test_add_and_delete_points(api, sid):
    s = api.state(sid)
    generation, count = s["generation"], s["points"]["count"]
    s = api.send(sid, "points", {"edits": [{"add": [1.5, -2.5, 1]}]})
    p = s["points"]
    assert p["count"] == count + 1
    assert (p["x"][-1], p["y"][-1], p["label"][-1], p["test"][-1]) == (1.5, -2.5, 1, 0)
    assert s["scores"]["train_points"] == count // 2 + 1
    assert s["edits"] == [{"add": [1.5, -2.5, 1]}]
    xy = np.column_stack([p["x"], p["y"]])
    inside = ((xy >= [0, -3]) & (xy <= [3, 0])).all(axis=1)
    assert inside.sum() >= 2
    s = api.send(sid, "points", {"edits": [{"delete": [3, 0, 0, -3]}]})  # corners any way round
    q = s["points"]
    assert q["count"] == count + 1 - inside.sum()
    kept = np.column_stack([q["x"], q["y"]])
    assert not ((kept >= [0, -3]) & (kept <= [3, 0])).all(axis=1).any()
    np.testing.assert_array_equal(kept, xy[~inside])
    assert q["label"] == np.array(p["label"])[~inside].tolist()
    assert s["edits"] == [{"add": [1.5, -2.5, 1]}, {"delete": [3, 0, 0, -3]}]
    assert s["generation"] == generation  # the network is kept


def test_add_a_regression_target(api, sid):
    api.send(sid, "data", {"dataset": "plane", "points": 50})
    s = api.send(sid, "points", {"edits": [{"add": [0.5, 0.5, -0.75]}]})
    assert s["points"]["label"][-1] == -0.75 and s["points"]["count"] == 51
    assert "between -1.0 and 1.0" in api.send(
        sid, "points", {"edits": [{"add": [0, 0, 1.5]}]}, status=400)


@pytest.mark.parametrize("body, message", [
    ({"edits": []}, "1 to 100 edits"),
    ({"edits": "add"}, "1 to 100 edits"),
    ({}, "1 to 100 edits"),
    ({"edits": [{"add": [0, 0, 0]}] * 101}, "1 to 100 edits"),
    ({"edits": [{"add": [6.5, 0, 0]}]}, "x must be between -6.0 and 6.0, got 6.5"),
    ({"edits": [{"add": [0, -7, 0]}]}, "y must be between -6.0 and 6.0, got -7.0"),
    ({"edits": [{"add": [0, 0, 2]}]}, "the class must be between 0 and 1, got 2.0"),
    ({"edits": [{"add": [0, 0, 0.5]}]}, "the class must be a whole number"),
    ({"edits": [{"add": [0, 0, True]}]}, "add must be a number, got True"),
    ({"edits": [{"add": [0, "1", 0]}]}, "add must be a number, got '1'"),
    ({"edits": [{"add": [0, 0]}]}, "add takes a list of 3 numbers"),
    ({"edits": [{"delete": [0, 0, 1]}]}, "delete takes a list of 4 numbers"),
    ({"edits": [{"delete": [0, 0, 1, 1e9]}]}, "delete must be between"),
    ({"edits": [{"move": [0, 0]}]}, "unknown edit 'move': expected 'add' or 'delete'"),
    ({"edits": [{"add": [0, 0, 0], "delete": [0, 0, 1, 1]}]}, 'an edit is {"add"'),
    ({"edits": [["add", [0, 0, 0]]]}, 'an edit is {"add"'),
])
def test_bad_edits_are_refused_with_a_reason(api, sid, body, message):
    before = api.state(sid)
    assert message in api.send(sid, "points", body, status=400)
    after = api.state(sid)
    assert after["points"] == before["points"] and after["edits"] == before["edits"]


def test_a_batch_of_edits_is_all_or_nothing(api, sid):
    count = api.state(sid)["points"]["count"]
    body = {"edits": [{"add": [0, 0, 0]}, {"add": [0, 0, 9]}]}
    assert "the class" in api.send(sid, "points", body, status=400)
    assert api.state(sid)["points"]["count"] == count


@pytest.mark.parametrize("body, message", [
    ({"dataset": "swirl"}, "dataset must be one of circle, xor"),
    ({"colour": "red"}, "unknown data setting 'colour'"),
    ({"noise": 0.6}, "noise must be between 0.0 and 0.5, got 0.6"),
    ({"classes": 6}, "classes must be between 2 and 5, got 6"),
    ({"classes": 2.5}, "classes must be a whole number"),
    ({"ratio": 0.05}, "ratio must be between 0.1 and 0.9"),
    ({"points": 9}, "points must be between 10 and 2000"),
    ({"points": _data.MAX_POINTS + 1}, "points must be between 10 and 2000"),
    ({"seed": -1}, "seed must be between 0 and"),
    ({"seed": "1"}, "seed must be a number, got '1'"),
    ({"edits": {"add": [0, 0, 0]}}, "edits must be a list of at most 500 edits"),
    ({"edits": [{"add": [0, 0, 0]}] * (_data.MAX_EDITS + 1)}, "at most 500 edits"),
    ({"edits": [{"add": [0, 0, 3]}]}, "the class must be between 0 and 1"),
])
def test_bad_data_settings_are_refused_with_a_reason(api, sid, body, message):
    before = api.state(sid)
    assert message in api.send(sid, "data", body, status=400)
    after = api.state(sid)
    assert after["data"] == before["data"] and after["points"] == before["points"]


def test_max_points(api, sid):
    s = api.send(sid, "data", {"points": _data.MAX_POINTS})
    assert s["points"]["count"] == _data.MAX_POINTS
    message = api.send(sid, "points", {"edits": [{"add": [0, 0, 0]}]}, status=400)
    assert f"at most {_data.MAX_POINTS}" in message
    # a deletion then makes room
    x, y = s["points"]["x"][0], s["points"]["y"][0]
    s = api.send(sid, "points", {"edits": [{"delete": [x - 1e-4, y - 1e-4, x + 1e-4, y + 1e-4]}]})
    room = _data.MAX_POINTS - s["points"]["count"]
    assert 1 <= room <= 100
    s = api.send(sid, "points", {"edits": [{"add": [0, 0, 0]}] * room})
    assert s["points"]["count"] == _data.MAX_POINTS
    rows = [(i, i % 7, "ab"[i % 2]) for i in range(_data.MAX_POINTS + 1)]
    r = api.upload(sid, _csv(rows))
    assert r.status_code == 400 and "too many points" in r.json()["error"]


def test_max_edits(api, sid):
    edits = [{"add": [0.01 * i, 0, i % 2]} for i in range(_data.MAX_EDITS)]
    s = api.send(sid, "data", {**SMALL, "edits": edits})
    assert len(s["edits"]) == _data.MAX_EDITS and s["points"]["count"] == 100 + _data.MAX_EDITS
    message = api.send(sid, "points", {"edits": [{"add": [0, 0, 0]}]}, status=400)
    assert "too many edits" in message


def test_a_data_link_replays_the_edits(api, sid):
    """The page's link holds the data settings and the edits: set_data replays them."""
    api.send(sid, "data", {"dataset": "spiral", "classes": 3, "points": 120, "noise": 0.2,
                           "ratio": 0.7, "seed": 5})
    api.send(sid, "points", {"edits": [{"add": [1, 2, 2]}, {"add": [-1, -2, 0]}]})
    api.send(sid, "points", {"edits": [{"delete": [-2, -2, 0, 0]}]})
    s = api.send(sid, "points", {"edits": [{"add": [-1, -1, 1]}]})
    assert len(s["edits"]) == 4
    link = {**s["data"], "edits": s["edits"]}
    api.send(sid, "data", {"dataset": "circle", "points": 50})
    replayed = api.send(sid, "data", link)
    assert replayed["points"] == s["points"]
    assert replayed["edits"] == s["edits"] and replayed["data"] == s["data"]
    # and in another session
    other = api.create()["state"]["session"]
    try:
        assert api.send(other, "data", link)["points"] == s["points"]
    finally:
        api.close(other)


# -- CSV uploads -------------------------------------------------------------------------------

def test_upload_a_csv_file_with_a_header_and_class_names(api, sid):
    rows = _named_rows()
    r = api.upload(sid, _csv(rows, header="length,width,species"))
    assert r.status_code == 200, r.text
    api.settle(sid)
    s = api.state(sid)
    p = s["points"]
    assert p["source"] == "upload" and p["classes"] == ["cat", "dog", "fish"]
    assert p["count"] == len(rows) and p["regression"] is False
    assert p["label"] == [["cat", "dog", "fish"].index(name) for _, _, name in rows]
    xy = np.column_stack([p["x"], p["y"]])
    np.testing.assert_allclose(xy.min(axis=0), -5.5)
    np.testing.assert_allclose(xy.max(axis=0), 5.5)
    assert s["edits"] == []
    assert np.array(s["weights"][-1]).shape == (2, 3)  # rebuilt for three classes
    assert api.step(sid)["epoch"] == 1
    # edits on an uploaded file change the points, but a link cannot replay them
    s = api.send(sid, "points", {"edits": [{"add": [0, 0, 2]}]})
    assert s["points"]["count"] == len(rows) + 1 and s["edits"] == []


def test_upload_a_regression_file(api, sid):
    rng = np.random.default_rng(3)
    rows = [(round(a, 3), round(b, 3), round(10 + 40 * c, 3)) for a, b, c in rng.random((40, 3))]
    r = api.upload(sid, _csv(rows, header=None), mode="regression")
    assert r.status_code == 200, r.text
    api.settle(sid)
    s = api.state(sid)
    p = s["points"]
    assert p["regression"] is True and p["classes"] == [] and p["count"] == 40
    assert min(p["label"]) == -1 and max(p["label"]) == 1
    assert s["view"]["region"]["kind"] == "regression"
    s = api.step(sid)
    assert s["scores"]["train_accuracy"] is None and math.isfinite(s["scores"]["train_loss"])


@pytest.mark.parametrize("data, mode, message", [
    (b"x,y,label\n1,2,a\n3,4\n5,6,b\n7,8,a\n", None,
     "line 3: expected 3 columns (x, y, label), found 2"),
    (b"1,2,a\n3,4,b\n5,6,a,9\n7,8,b\n", None, "line 3: expected 3 columns"),
    (b"x,y,label\n1,2,a\n3,oops,b\n5,6,a\n7,8,b\n", None,
     "line 3, column 2: 'oops' is not a number"),
    (b"1,2,a\n3,4,b\n\n5,6,a\nnan,8,b\n", None, "line 5, column 1: 'nan' is not a number"),
    (b"1,2,a\n3,4,a\n5,6,a\n7,8,a\n", None, "1 distinct values"),
    (b"1,2,a\n3,4,b\n5,6,c\n7,8,d\n9,1,e\n2,3,f\n", None, "6 distinct values"),
    (b"1,2,a\n3,4,b\n\x00\x01\x02\n5,6,a\n", None, "binary"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", None, "not UTF-8"),
    (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", None, "binary"),
    ("1,2,café\n3,4,thé\n5,6,café\n7,8,thé\n".encode("latin-1"), None, "not UTF-8"),
    (b"x,y,label\n1,2,a\n3,4,b\n5,6,a\n", None, "at least 4 rows"),
    (b"", None, "at least 4 rows"),
    (b"1,2,a\n3,4,b\n5,6,a\n7,8,b\n", "regression", "line 1, column 3: 'a' is not a number"),
])
def test_bad_csv_files_are_refused_with_a_reason(api, sid, data, mode, message):
    before = api.state(sid)
    r = api.upload(sid, data, mode=mode)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]
    assert api.state(sid)["points"] == before["points"]


@pytest.mark.parametrize("label", ["a'); import os", "os.system('ls')", '"; print(1) #',
                                   "__import__(\"os\")", "a\\nb", "x{y}", "<script>", "a" * 41])
def test_class_names_that_are_not_short_names_are_refused(api, sid, label):
    rows = [(i, i * 2 % 5, ["ok", label][i % 2]) for i in range(8)]
    text = "x,y,label\n" + "".join(f'{a},{b},"{c.replace(chr(34), chr(34) * 2)}"\n'
                                   for a, b, c in rows)
    r = api.upload(sid, text.encode())
    assert r.status_code == 400, r.text
    assert "is not a short name" in r.json()["error"]
    assert api.state(sid)["points"]["source"] == "generated"


# -- the model ---------------------------------------------------------------------------------

@pytest.mark.parametrize("body, message", [
    ({"colour": 1}, "unknown model setting 'colour'"),
    ({"layers": [[4, "tanh"]] * (_model.MAX_LAYERS + 1)},
     f"the model is too large: {_model.MAX_LAYERS + 1} hidden layers"),
    ({"layers": [[_model.MAX_UNITS + 1, "tanh"]]},
     f"too large: hidden layer 1 has {_model.MAX_UNITS + 1} units"),
    ({"layers": [[2, "tanh"], [0, "relu"]]}, "hidden layer 2: units must be a whole number"),
    ({"layers": [[2.0, "tanh"]]}, "units must be a whole number"),
    ({"layers": [[True, "tanh"]]}, "units must be a whole number"),
    ({"layers": [[4, "swish"]]}, "hidden layer 1's activation must be one of tanh, sigmoid"),
    ({"layers": [4]}, "hidden layer 1 must be [units, activation]"),
    ({"layers": "4,4"}, "layers must be a list"),
    ({"lr": 0}, "the learning rate must be between 1e-06 and 10.0, got 0"),
    ({"lr": 11}, "the learning rate must be between"),
    ({"lr": "fast"}, "the learning rate must be a number"),
    ({"optimizer": "lbfgs"}, "optimizer must be one of sgd, momentum"),
    ({"loss": "hinge"}, "loss must be one of cross_entropy, squared_error"),
    ({"features": []}, "choose at least one input feature"),
    ({"features": ["x", "z"]}, "a feature must be one of x, y"),
    ({"batch_size": 0}, "batch size must be between 1 and 256"),
    ({"batch_size": 257}, "batch size must be between 1 and 256"),
    ({"l2": -0.1}, "L2 must be between 0.0 and 10.0"),
    ({"dropout": 0.95}, "dropout must be between 0.0 and 0.9"),
    ({"seed": 0.5}, "seed must be a whole number"),
])
def test_bad_model_settings_are_refused_with_a_reason(api, sid, body, message):
    before = api.state(sid)
    assert message in api.send(sid, "model", body, status=400)
    after = api.state(sid)
    assert after["model"] == before["model"] and after["generation"] == before["generation"]


def test_a_model_over_max_parameters_is_refused(api, sid, monkeypatch):
    # MAX_LAYERS x MAX_UNITS alone stays under MAX_PARAMETERS: lower the bound to reach it
    monkeypatch.setattr(_model, "MAX_PARAMETERS", 30)
    assert _model.parameter_count(_model.ModelSpec(), 2) == 28
    message = api.send(sid, "model", {"layers": [[8, "tanh"]]}, status=400)
    assert message == ("the model is too large: 42 parameters, the playground trains at most "
                       "30")
    # more classes mean more outputs: the data change is refused for the model's size
    message = api.send(sid, "data", {"dataset": "gauss", "classes": 5}, status=400)
    assert "too large: 37 parameters" in message
    rows = [(i, i % 3, "abcde"[i % 5]) for i in range(20)]
    r = api.upload(sid, _csv(rows))
    assert r.status_code == 400 and "too large" in r.json()["error"]
    assert api.state(sid)["data"]["classes"] == 2


def test_the_model_settings_round_trip(api, sid):
    body = {"layers": [[3, "relu"], [5, "sigmoid"], [2, "leaky_relu"]],
            "features": ["sinx", "x", "xy", "x"], "loss": "squared_error",
            "optimizer": "rmsprop", "lr": 0.005, "batch_size": 7, "l2": 0.001,
            "dropout": 0.2, "seed": 3}
    s = api.send(sid, "model", body)
    assert s["model"] == {**body, "features": ["x", "xy", "sinx"]}  # FEATURES order, once
    assert api.send(sid, "model", s["model"])["model"] == s["model"]


def _trains(api, sid, steps=2):
    before = api.state(sid)
    for _ in range(steps):
        s = api.step(sid)
    assert s["epoch"] == before["epoch"] + steps
    assert s["message"] == "" and s["status"] == "paused"
    assert math.isfinite(s["scores"]["train_loss"]) and math.isfinite(s["scores"]["test_loss"])
    assert s["weights"] != before["weights"]
    return s


@pytest.mark.parametrize("optimizer", _model.OPTIMIZERS)
def test_every_optimizer_trains(api, sid, optimizer):
    s = api.send(sid, "model", {"optimizer": optimizer, "lr": 0.01})
    assert s["model"]["optimizer"] == optimizer and s["epoch"] == 0
    _trains(api, sid)


@pytest.mark.parametrize("activation", _model.ACTIVATIONS)
def test_every_activation_trains(api, sid, activation):
    s = api.send(sid, "model", {"layers": [[4, activation], [3, activation]]})
    assert [len(u["maps"]) for u in s["view"]["units"]] == [4, 3]
    assert s["onnx"]["ok"] is (activation != "leaky_relu")
    _trains(api, sid)


def test_dropout_l2_and_feature_crosses_train(api, sid):
    s = api.send(sid, "model", {"dropout": 0.3, "l2": 0.01,
                                "features": ["x", "y", "x2", "xy", "sinx"]})
    assert s["model"]["features"] == ["x", "y", "x2", "xy", "sinx"]
    assert np.array(s["weights"][0]).shape == (5, 4)
    _trains(api, sid, steps=3)
    s = api.send(sid, "model", {"features": ["x2", "y2", "siny"], "layers": []})
    assert [np.array(w).shape for w in s["weights"]] == [(3, 2)]
    assert s["view"]["units"] == []
    _trains(api, sid)


def test_squared_error_on_classes(api, sid):
    api.send(sid, "data", {"dataset": "blobs", "classes": 4, "points": 100})
    s = api.send(sid, "model", {"loss": "squared_error"})
    assert s["model"]["loss"] == "squared_error"
    s = _trains(api, sid, steps=3)
    assert 0 <= s["scores"]["train_accuracy"] <= 1
    assert s["view"]["region"]["kind"] == "classes"


@pytest.mark.parametrize("dataset", _data.REGRESSION)
def test_a_regression_dataset_trains_and_reports_losses_only(api, sid, dataset):
    api.send(sid, "data", {"dataset": dataset, "points": 100})
    s = _trains(api, sid)
    scores = s["scores"]
    assert scores["train_accuracy"] is None and scores["test_accuracy"] is None
    assert scores["train_loss"] >= 0 and scores["test_loss"] >= 0
    assert s["view"]["region"]["kind"] == "regression"
    assert all(isinstance(v, float) for v in s["history"]["train"])


# -- downloads ---------------------------------------------------------------------------------

def _trained(api, sid, data, model, steps=3):
    api.send(sid, "data", data)
    api.send(sid, "model", model)
    for _ in range(steps):
        api.step(sid)
    spec, points, net, epochs = api.session(sid).export_snapshot()
    assert epochs == steps
    return spec, points, net


def _grid_points(n=300, seed=0):
    return np.random.default_rng(seed).uniform(-6, 6, (n, 2)).astype(np.float32)


def test_export_the_fastnn_file(api, sid):
    spec, points, net = _trained(api, sid, {"dataset": "gauss", "classes": 3, **SMALL},
                                 {"features": ["x", "y", "xy"], "layers": [[5, "relu"]]})
    r = api.get(f"/api/sessions/{sid}/export/model")
    assert r.status_code == 200
    assert r.headers["content-disposition"] == 'attachment; filename="playground_model.npz"'
    assert r.headers["content-type"] == "application/octet-stream"
    _assert_secured(r)
    loaded = fastnn.load(io.BytesIO(r.content))
    x = _model.features(spec, np.vstack([points.X, _grid_points()]))
    expected, _ = _model.outputs(net, x)
    got, _ = _model.outputs(loaded, x)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert np.abs(expected).max() > 0
    # the file holds the trained weights, not the initial ones
    api.control(sid, "reset")
    initial, _ = _model.outputs(api.session(sid).export_snapshot()[2], x)
    assert not np.allclose(initial, got)


_ONNX_SETUPS = {
    "two classes": ({**SMALL}, {}),
    "three classes, crosses": ({"dataset": "gauss", "classes": 3, **SMALL},
                               {"layers": [[5, "relu"], [3, "relu"]],
                                "features": ["x", "y", "x2", "xy", "sinx"]}),
    "five classes, squared error": ({"dataset": "blobs", "classes": 5, **SMALL},
                                    {"loss": "squared_error", "layers": [[6, "sigmoid"]]}),
    "no hidden layer": ({"dataset": "xor", **SMALL}, {"layers": [], "features": ["xy"]}),
    "regression": ({"dataset": "multigauss", **SMALL},
                   {"layers": [[6, "tanh"], [4, "tanh"]], "features": ["x", "y", "y2", "siny"]}),
}


@pytest.mark.parametrize("setup", list(_ONNX_SETUPS))
def test_export_onnx_matches_the_network(api, sid, setup):
    ort = pytest.importorskip("onnxruntime")
    spec, points, net = _trained(api, sid, *_ONNX_SETUPS[setup])
    r = api.get(f"/api/sessions/{sid}/export/onnx")
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"] == 'attachment; filename="playground_model.onnx"'
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    sess = ort.InferenceSession(r.content, options, providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["X"]
    X = np.vstack([points.X.astype(np.float32), _grid_points()])
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"X": X})))
    raw, _ = _model.outputs(net, _model.features(spec, X.astype(np.float64)))
    if points.regression:
        assert set(outs) == {"variable"}
        np.testing.assert_allclose(outs["variable"].reshape(-1), raw[:, 0], rtol=1e-4, atol=1e-5)
        return
    assert set(outs) == {"label", "probabilities"}
    proba = _model.softmax(raw)
    assert outs["probabilities"].shape == proba.shape == (len(X), points.n_classes)
    np.testing.assert_allclose(outs["probabilities"], proba, rtol=1e-4, atol=1e-6)
    top = np.sort(proba, axis=1)
    clear = top[:, -1] - top[:, -2] > 1e-4  # no near-ties, where float32 may pick either
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(outs["label"][clear], raw.argmax(axis=1)[clear])


@pytest.mark.parametrize("layers, why", [
    ([[4, "leaky_relu"]], "no leaky ReLU"),
    ([[4, "leaky_relu"], [2, "tanh"]], "no leaky ReLU"),
    ([[4, "tanh"], [2, "relu"]], "share one activation"),
])
def test_onnx_is_refused_for_networks_sklearn_cannot_hold(api, sid, layers, why):
    s = api.send(sid, "model", {"layers": layers})
    assert s["onnx"]["ok"] is False and why in s["onnx"]["why"]
    r = api.get(f"/api/sessions/{sid}/export/onnx")
    assert r.status_code == 400 and why in r.json()["error"]
    # the other downloads still work
    assert api.get(f"/api/sessions/{sid}/export/model").status_code == 200
    assert api.get(f"/api/sessions/{sid}/export/python").status_code == 200


def test_export_the_python_script_and_run_it(api, sid, tmp_path):
    names = ["setosa", "versi color", "vir.gin-ica+"]
    rows = _named_rows(60, names, seed=4)
    assert api.upload(sid, _csv(rows)).status_code == 200
    api.send(sid, "model", {"optimizer": "nesterov", "dropout": 0.1, "l2": 0.001, "lr": 0.02,
                            "features": ["x", "y", "x2", "y2", "xy", "sinx", "siny"],
                            "layers": [[6, "leaky_relu"], [4, "relu"]], "batch_size": 8})
    for _ in range(3):
        api.step(sid)
    r = api.get(f"/api/sessions/{sid}/export/python")
    assert r.status_code == 200
    assert r.headers["content-disposition"] == 'attachment; filename="playground_model.py"'
    assert r.headers["content-type"].startswith("text/x-python")
    script = r.content.decode()
    compile(script, "playground_model.py", "exec")
    classes = re.search(r"^CLASSES = (.*?)  #", script, re.MULTILINE).group(1)
    assert ast.literal_eval(classes) == sorted(names)
    assert "max_iter=3," in script and "nn.LeakyReLU(0.1)" in script
    assert "'nesterov': True" in script and "nn.Dropout(0.1)" in script
    path = tmp_path / "playground_model.py"
    path.write_bytes(r.content)
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    run = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path, env=env, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    accuracy = re.search(r"^test accuracy (\S+)$", run.stdout, re.MULTILINE)
    assert accuracy, run.stdout
    assert 0.0 <= float(accuracy.group(1)) <= 1.0


def test_exports_while_training(api, sid):
    api.control(sid, "play")
    api.wait_for(sid, lambda s: s["epoch"] >= 2, "two epochs")
    for kind in ("model", "python"):
        assert api.get(f"/api/sessions/{sid}/export/{kind}").status_code == 200
    api.control(sid, "pause")


# -- inputs that once escaped as server errors, and a step's message ----------------------------

def test_a_non_ascii_digit_data_version_is_not_a_server_error(new_api):
    a = new_api(raise_server_exceptions=False)
    sid = a.create()["state"]["session"]
    r = a.get(f"/api/sessions/{sid}/state", params={"data": "\u00b2"})
    assert r.status_code == 200


def test_a_csv_file_with_cr_line_endings_is_not_a_server_error(new_api):
    a = new_api(raise_server_exceptions=False)
    sid = a.create()["state"]["session"]
    r = a.upload(sid, b"x,y,label\r1,2,a\r3,4,b\r5,6,a\r7,8,b\r")
    assert r.status_code in (200, 400), r.text


def test_a_successful_step_clears_an_old_message(api, sid):
    api.send(sid, "points", {"edits": [{"delete": [-6, -6, 6, 6]}]})
    api.control(sid, "play")
    assert "too few" in api.wait_for(sid, lambda s: s["status"] == "paused", "a refusal")[
        "message"]
    api.send(sid, "points", {"edits": [{"add": [1, 1, 0]}, {"add": [-1, -1, 1]}]})
    s = api.step(sid)
    assert s["epoch"] == 1
    assert s["message"] == ""


@pytest.mark.parametrize("what, body", [
    ("data", '{"points": 1%s}'), ("model", '{"lr": 1%s}'),
    ("points", '{"edits": [{"add": [0, 0, 1%s]}]}')], ids=["data", "model", "points"])
def test_a_huge_json_integer_is_not_a_server_error(new_api, what, body):
    a = new_api(raise_server_exceptions=False)
    sid = a.create()["state"]["session"]
    r = a.post(f"/api/sessions/{sid}/{what}", content=body % ("0" * 400),
               headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
