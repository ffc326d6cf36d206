"""The playground in a real browser: headless Chromium from the operating system's packages,
driven by Playwright. Skipped on a machine without them, never in CI (``CI=true``), where
``.ci/run`` installs both."""
import io
import os
import re
import subprocess
import sys
import time
import urllib.parse

import numpy as np
import pytest

import fastnn

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
FOREIGN = "rebound.example"     # a name that resolves to 127.0.0.1: DNS rebinding
TIMEOUT = 180.0                 # seconds: a first run on a new machine compiles the kernels


def _browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    missing = [what for what, ok in (("playwright", sync_playwright is not None),
                                     (CHROMIUM, os.path.exists(CHROMIUM))) if not ok]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI runs the browser tests: install {', '.join(missing)} "
                        "(.ci/run does)")
        pytest.skip(f"needs {', '.join(missing)}")
    return sync_playwright


@pytest.fixture(scope="module")
def server():
    from fastnn import playground
    srv = playground.start(port=0)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser(server):
    sync_playwright = _browser_or_skip()
    port = urllib.parse.urlsplit(server.url).port
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS + [
            f"--host-resolver-rules=MAP {FOREIGN} 127.0.0.1, MAP other.example 127.0.0.1"])
        b.port = port
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    yield page
    context.close()
    assert not errors, errors


def _open(page, url):
    page.goto(url)
    page.wait_for_selector('body[data-ready="true"]', timeout=TIMEOUT * 1000)
    _wait_text(page, "#test-loss", lambda t: t != "\u2013")


def _wait_text(page, selector, ok, timeout=30.0):
    """The text of ``selector`` once ``ok(text)`` holds (fails after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        text = page.inner_text(selector)
        if ok(text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector} still reads {text!r} after {timeout} s; message: "
                                 f"{page.inner_text('#message')!r}")
        page.wait_for_timeout(100)


def _count(page):
    return int(page.inner_text("#point-count").split()[0])


def _hash(page):
    return urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).fragment)


def test_train_and_watch_the_test_loss_fall(page, server):
    _open(page, server.url)
    start = float(page.inner_text("#test-loss"))
    assert int(page.inner_text("#epoch")) == 0
    page.click("#play")
    _wait_text(page, "#epoch", lambda t: int(t) >= 30, TIMEOUT)
    loss = float(_wait_text(page, "#test-loss", lambda t: float(t) < 0.5 * start, TIMEOUT))
    assert page.get_attribute("body", "data-status") == "running"
    assert "epochs/s" in page.inner_text("#speed")
    # a hidden unit's heatmap and the weights are drawn
    assert page.locator("#network canvas.unit").count() == 7 + 4 + 2
    assert page.locator("#network svg line").count() == 2 * 4 + 4 * 2 + 2 * 2
    page.click("#play")                                   # pause
    _wait_text(page, "body", lambda t: page.get_attribute("body", "data-status") == "paused")
    epoch = int(page.inner_text("#epoch"))
    page.wait_for_timeout(600)
    assert int(page.inner_text("#epoch")) == epoch        # paused: no more epochs
    page.click("#step")
    _wait_text(page, "#epoch", lambda t: int(t) == epoch + 1)
    page.click("#reset")
    _wait_text(page, "#epoch", lambda t: int(t) == 0)
    assert float(page.inner_text("#test-loss")) > loss


def test_click_adds_points_and_a_dragged_rectangle_deletes_them(page, server):
    _open(page, server.url + "#dataset=gauss&points=100&classes=3")
    _wait_text(page, "#point-count", lambda t: t.startswith("100 "))
    box = page.locator("#output").bounding_box()
    page.click('#add-class button[data-class="2"]')
    corner = (box["x"] + box["width"] * 0.08, box["y"] + box["height"] * 0.08)
    page.mouse.click(*corner)
    _wait_text(page, "#point-count", lambda t: t.startswith("101 "))
    page.mouse.click(corner[0] + 10, corner[1] + 6)
    _wait_text(page, "#point-count", lambda t: t.startswith("102 (52 training"))
    edits = _hash(page)["edits"][0].split(";")
    assert len(edits) == 2 and all(e.startswith("a") and e.endswith(",2") for e in edits)
    # drag a rectangle over the two new points (the Gaussians lie far from that corner)
    page.mouse.move(box["x"] + 2, box["y"] + 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.15, box["y"] + box["height"] * 0.15, steps=5)
    page.mouse.up()
    _wait_text(page, "#point-count", lambda t: t.startswith("100 "))
    # a link replays the edits: a new page with this URL has the same points
    url = page.url
    other = page.context.new_page()
    _open(other, url)
    assert other.inner_text("#point-count") == page.inner_text("#point-count")
    other.close()


def test_changing_the_dataset_the_layers_and_the_activation(page, server):
    _open(page, server.url)
    page.click('#datasets button[data-dataset="spiral"]')
    _wait_text(page, "#message", lambda t: True)
    page.wait_for_selector('#datasets button[data-dataset="spiral"].on')
    assert _hash(page)["dataset"] == ["spiral"]
    page.click("#add-layer")
    _wait_text(page, "#layer-count", lambda t: t == "3")
    page.click('#network button.unit-plus[data-layer="0"]')
    _wait_text(page, "#network", lambda t: _hash(page)["layers"] == ["5tanh,2tanh,2tanh"])
    page.select_option('#network select.activation[data-layer="1"]', "relu")
    _wait_text(page, "#network", lambda t: _hash(page)["layers"] == ["5tanh,2relu,2tanh"])
    page.wait_for_selector("#download-onnx:disabled")   # mixed activations: not sklearn's MLP
    page.check('#network input[data-feature="sinx"]')
    _wait_text(page, "#network", lambda t: _hash(page)["features"] == ["x,y,sinx"])
    assert page.locator("#network canvas.unit").count() == 7 + 5 + 2 + 2
    # more classes, then regression
    page.click('#datasets button[data-dataset="blobs"]')
    page.wait_for_selector('#datasets button[data-dataset="blobs"].on')
    page.locator("#classes").fill("4")
    page.locator("#classes").dispatch_event("change")
    page.wait_for_selector('#add-class button[data-class="3"]')
    assert page.locator("#network .out").count() == 4
    page.click('#problem button[data-problem="regression"]')
    page.wait_for_selector('#datasets button[data-dataset="plane"].on')
    assert page.locator("#network .out").count() == 1
    assert page.is_hidden("#test-accuracy")
    # the limits: 16 units a layer, 6 hidden layers
    for _ in range(12):
        page.click('#network button.unit-plus[data-layer="0"]')
    _wait_text(page, "#network", lambda t: _hash(page)["layers"] == ["16tanh,2relu,2tanh"])
    page.click('#network button.unit-plus[data-layer="0"]')
    page.wait_for_timeout(300)
    assert _hash(page)["layers"] == ["16tanh,2relu,2tanh"]
    for n in (4, 5, 6):
        page.click("#add-layer")
        _wait_text(page, "#layer-count", lambda t, n=n: t == str(n))
    assert page.is_disabled("#add-layer")


def test_a_link_with_a_model_over_the_limits_says_why(page, server):
    _open(page, server.url + "#layers=20tanh")
    message = _wait_text(page, "#message", lambda t: "too large" in t)
    assert "20 units" in message and "at most 16" in message
    assert page.inner_text("#layer-count") == "2"     # the session keeps its network


def test_a_link_reproduces_a_setup(page, server):
    _open(page, server.url + "#dataset=xor&noise=0.2&ratio=0.7&points=200&layers=3relu"
                             "&features=x,y,xy&optimizer=rmsprop&lr=0.01&batch_size=16")
    assert _hash(page)["dataset"] == ["xor"]
    page.wait_for_selector('#datasets button[data-dataset="xor"].on')
    assert page.inner_text("#layer-count") == "1"
    assert page.input_value('#network select.activation[data-layer="0"]') == "relu"
    assert page.is_checked('#network input[data-feature="xy"]')
    assert page.input_value("#optimizer") == "rmsprop"
    assert page.input_value("#lr") == "0.01"
    assert page.input_value("#batch_size") == "16"
    assert page.input_value("#noise") == "20"
    assert page.inner_text("#point-count") == "200 (140 training, 60 test)"


def test_upload_a_csv_of_your_own(page, server, tmp_path):
    _open(page, server.url)
    rng = np.random.default_rng(0)
    rows = ["sepal,petal,species"] + [f"{a:.3f},{b:.3f},{'setosa' if a < 0 else 'virginica'}"
                                      for a, b in rng.normal(size=(60, 2))]
    good = tmp_path / "mine.csv"
    good.write_text("\n".join(rows))
    page.set_input_files("#upload", str(good))
    _wait_text(page, "#message", lambda t: "60 points" in t)
    assert "classes setosa, virginica" in page.inner_text("#message")
    assert page.inner_text("#add-class") == "setosa\nvirginica"
    assert _hash(page)["data"] == ["upload"]
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y,label\n1,2,a\n3,oops,b\n1,1,a\n2,2,b\n")
    page.set_input_files("#upload", str(bad))
    message = _wait_text(page, "#message", lambda t: "bad.csv" in t)
    assert "line 3, column 2" in message and "not a number" in message
    assert page.inner_text("#point-count").startswith("60 ")   # the data stays as it was


def test_downloads_load_in_fastnn_onnx_runtime_and_python(page, server, tmp_path):
    _open(page, server.url + "#dataset=moons&points=200&layers=6relu,4relu")
    page.click("#play")
    _wait_text(page, "#epoch", lambda t: int(t) >= 20, TIMEOUT)
    page.click("#play")
    page.wait_for_selector('body[data-status="paused"]')
    with page.expect_download() as info:
        page.click("#download-model")
    path = tmp_path / "model.npz"
    info.value.save_as(path)
    model = fastnn.load(str(path))
    assert [type(layer).__name__ for layer in model.layers] == [
        "Dense", "ReLU", "Dense", "ReLU", "Dense"]
    grid = np.random.default_rng(0).uniform(-6, 6, (50, 2)).astype(np.float32)
    out = model.predict(grid) if hasattr(model, "predict") else model.forward(grid, False)
    assert np.asarray(out).shape == (50, 2)

    with page.expect_download() as info:
        page.click("#download-onnx")
    onnx_path = tmp_path / "model.onnx"
    info.value.save_as(onnx_path)
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    labels = sess.run(None, {"X": grid})[0]
    np.testing.assert_array_equal(labels, np.asarray(out).argmax(axis=1))

    with page.expect_download() as info:
        page.click("#download-python")
    script = tmp_path / "retrain.py"
    info.value.save_as(script)
    text = script.read_text()
    assert "NeuralNetClassifier" in text and "nn.Dense(6), nn.ReLU()" in text
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert re.search(r"test accuracy 0\.\d+|test accuracy 1\.0", done.stdout)


def test_requests_from_a_foreign_host_or_site_are_refused(page, browser, server):
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(server.url).query)["token"][0]
    # DNS rebinding: a foreign name that resolves to this machine
    response = page.goto(f"http://{FOREIGN}:{browser.port}/?token={token}")
    assert response.status == 403
    assert "Host" in page.inner_text("body") and "not this server's address" in page.inner_text("body")
    # a page of another site, calling the API from the browser
    page.route("http://other.example/", lambda route: route.fulfill(
        status=200, content_type="text/html", body="<html><body>another site</body></html>"))
    page.goto("http://other.example/")
    outcome = page.evaluate(
        """async ([port, token]) => {
             try {
               const r = await fetch(`http://127.0.0.1:${port}/api/sessions`, {
                 method: "POST", body: "{}",
                 headers: {"Content-Type": "application/json", "X-Playground-Token": token}});
               return "status " + r.status;
             } catch (e) { return "blocked"; }
           }""", [browser.port, token])
    assert outcome == "blocked"
    # without the token the page itself is refused
    response = page.goto(f"http://127.0.0.1:{browser.port}/")
    assert response.status == 403 and "token" in page.inner_text("body")


def test_closing_the_page_ends_its_session(browser, server):
    sessions = server.app.app.state.sessions
    context = browser.new_context()
    page = context.new_page()
    _open(page, server.url)
    sid = page.url and _session_id(page)
    thread = sessions.sessions[sid].thread
    page.close()
    context.close()
    deadline = time.monotonic() + 10
    while sid in sessions.sessions and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sid not in sessions.sessions
    thread.join(10)
    assert not thread.is_alive()


def _session_id(page):
    return page.evaluate("() => window.fastnnPlayground.sid")


def test_the_page_is_served_by_the_command(tmp_path):
    """``fastnn playground --no-browser --port 0`` prints the URL and serves the page."""
    _browser_or_skip()
    proc = subprocess.Popen([sys.executable, "-m", "fastnn", "playground", "--no-browser",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", line).group(0)
        import urllib.request
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    page = r.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert "<title>fastnn playground</title>" in page
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_views_are_drawn(page, server):
    """The decision regions, the points and the unit heatmaps are painted (not blank)."""
    from PIL import Image
    _open(page, server.url + "#dataset=blobs&classes=3")
    page.wait_for_selector('#add-class button[data-class="2"]')
    output = np.asarray(Image.open(io.BytesIO(page.locator("#output").screenshot())).convert("RGB"))
    colours = {tuple(c) for c in output.reshape(-1, 3)[::7]}
    assert len(colours) > 50
    for name in ("#f59322", "#0877bd", "#2ca02c"):       # the three classes' points
        rgb = np.array([int(name[i:i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(output.reshape(-1, 3).astype(int) - rgb).sum(axis=1) < 30).sum() > 20
    unit = np.asarray(Image.open(io.BytesIO(
        page.locator("#network canvas.unit").nth(7).screenshot())).convert("RGB"))
    assert unit.reshape(-1, 3).std(axis=0).max() > 10
