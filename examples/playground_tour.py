"""The fastnn playground, driven from Python: a tour that ends in a screenshot.

``fastnn playground`` serves a page on 127.0.0.1 where a network trains live (fastnn's CPU
kernels) on 2-D points. This script starts the same server in the background
(``fastnn.playground.start``), opens the page in headless Chromium through Playwright, picks the
three-arm spiral with the feature crosses, trains until the test loss falls, clicks in three
points of a class and saves what the page shows: the decision regions with the points, each
hidden unit's heatmap, the weights as links and the loss curves. It then downloads the model as
a ``fastnn.save`` file and checks that ``fastnn.load`` predicts what the page drew.

Needs the ``playground`` extra, Playwright for Python and a Chromium (``/usr/bin/chromium`` from
the operating system's packages, or ``--chromium PATH``). Figure ``playground.png``.
"""
import argparse
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
SETUP = ("#dataset=spiral&classes=3&noise=0.05&points=600&ratio=0.6&layers=12tanh,12tanh,8tanh"
         "&features=x,y,x2,y2,xy,sinx,siny&optimizer=adam&lr=0.01&batch_size=16")


def _wait(page, selector, ok, timeout):
    deadline = time.monotonic() + timeout
    while not ok(page.inner_text(selector)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{selector} reads {page.inner_text(selector)!r}; "
                               f"{page.inner_text('#message')!r}")
        page.wait_for_timeout(100)
    return page.inner_text(selector)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "out"))
    parser.add_argument("--quick", action="store_true", help="train a few seconds only")
    parser.add_argument("--chromium", default=CHROMIUM, help="the browser (%(default)s)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="training time (default 25 s, 3 s with --quick)")
    args = parser.parse_args(argv)
    seconds = args.seconds or (3.0 if args.quick else 25.0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    import fastnn
    from fastnn import playground

    with playground.start(port=0) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 860}, accept_downloads=True)
        page.goto(server.url + SETUP)
        page.wait_for_selector('body[data-ready="true"]', timeout=180_000)
        start = float(_wait(page, "#test-loss", lambda t: t != "\u2013", 60))
        page.click("#play")
        t0 = time.monotonic()
        _wait(page, "#epoch", lambda t: int(t) > 0, 180)    # a first run compiles
        page.wait_for_timeout(1000 * seconds)
        box = page.locator("#output").bounding_box()
        page.click('#add-class button[data-class="2"]')
        for fx, fy in ((0.9, 0.1), (0.93, 0.14), (0.87, 0.15)):
            page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
            page.wait_for_timeout(150)
        page.wait_for_timeout(1500)
        page.click("#play")
        page.wait_for_selector('body[data-status="paused"]')
        epochs = int(page.inner_text("#epoch"))
        loss = float(page.inner_text("#test-loss"))
        accuracy = page.inner_text("#test-accuracy")
        speed = epochs / (time.monotonic() - t0)
        shot = out / "playground.png"
        page.screenshot(path=str(shot))
        with page.expect_download() as info, tempfile.TemporaryDirectory() as tmp:
            page.click("#download-model")
            path = os.path.join(tmp, "model.npz")
            info.value.save_as(path)
            model = fastnn.load(path)
        points = np.random.default_rng(0).uniform(-6, 6, (5, 2))
        features = np.column_stack([points[:, 0], points[:, 1], points[:, 0] ** 2,
                                    points[:, 1] ** 2, points[:, 0] * points[:, 1],
                                    np.sin(points[:, 0]), np.sin(points[:, 1])])
        classes = model.forward(features.astype(np.float32), False).argmax(axis=1)
        browser.close()
    print(f"trained {epochs} epochs ({speed:.0f} epochs/s, the page polling), test loss "
          f"{start:.3f} -> {loss:.3f}, test accuracy {accuracy}")
    print(f"the downloaded model classifies 5 random points as {classes.tolist()}")
    print(f"saved {shot}")
    assert re.match(r"\d", accuracy)
    return [str(shot)]


if __name__ == "__main__":
    main()
