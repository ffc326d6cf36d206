"""A playground session: one page's points, network and training, and the registry of sessions.

Each session owns one worker thread, the only thread that touches its model: it builds the
network, trains it with ``fastnn.nn.fit`` (CPU kernels) and computes what the page draws. Requests
change the settings and wait for the worker to take them up; the page reads the last published
state. So a session runs at most one training task, and closing it (the page closes, or stops
asking for its state) ends the thread.
"""
import collections
import dataclasses
import secrets
import threading
import time

import numpy as np

from fastnn import nn

from . import _data, _model
from ._data import DataError, DataSpec

MAX_RUN_SECONDS = 600.0      # one press of play trains at most this long, then pauses
MAX_EPOCHS = 100_000         # epochs of one network
PUBLISH_EVERY = 0.1          # seconds between two states the page can read while training
HISTORY = 1000               # loss-curve points kept (halved by thinning when full)
WAIT_SECONDS = 60.0          # how long a request waits for the worker (the first run compiles)


class SessionError(ValueError):
    """A request the session refuses (bad settings, a model too large, unusable data)."""


@dataclasses.dataclass
class Limits:
    """The bounds of one server: sessions, training time and epochs (the data and model bounds
    are ``_data.MAX_POINTS``, ``_model.MAX_LAYERS``, ``MAX_UNITS`` and ``MAX_PARAMETERS``)."""

    max_sessions: int = 8
    idle_seconds: float = 60.0        # a session nobody asked about for this long is closed
    run_seconds: float = MAX_RUN_SECONDS
    max_epochs: int = MAX_EPOCHS

    def to_json(self):
        return {**dataclasses.asdict(self), "max_points": _data.MAX_POINTS,
                "max_layers": _model.MAX_LAYERS, "max_units": _model.MAX_UNITS,
                "max_parameters": _model.MAX_PARAMETERS, "max_batch": _model.MAX_BATCH}


@dataclasses.dataclass
class Published:
    """What the worker last published: the page's view and what an export needs."""

    spec: object = None               # ModelSpec of the network
    points: object = None             # Points it trains on
    params: object = None             # a copy of its flat parameters
    epoch: int = 0
    view: dict = None
    weights: list = None
    scores: dict = None


class _Stop(Exception):
    pass


class Session:
    """One page's playground (see the module docstring)."""

    def __init__(self, sid, limits):
        self.id = sid
        self.limits = limits
        self.cond = threading.Condition()
        self.last_seen = time.monotonic()
        self.data_spec = DataSpec()
        self.edits = []
        self.points = _data.generate(self.data_spec)
        self.model_spec = _model.ModelSpec()
        self.status, self.message = "paused", ""
        self.steps = 0                 # epochs to run while paused (the step button)
        self.closed = False
        self.generation = 0            # bumped when the network is to be rebuilt
        self.data_version = 0          # bumped when the points change
        self.done_generation = -1      # what the worker has taken up
        self.done_data = -1
        self.epoch = 0
        self.history = {"epoch": [], "train": [], "test": []}
        self.speed = collections.deque(maxlen=50)
        self.published = Published()
        self.run_started = None
        self.fits = 0
        self.training = False          # the worker is inside fit
        self.thread = threading.Thread(target=self._worker, daemon=True,
                                       name=f"fastnn-playground-{sid[:6]}")
        self.thread.start()

    # -- requests (any thread) ------------------------------------------------------------------
    def touch(self):
        self.last_seen = time.monotonic()

    def set_data(self, body):
        """New points from the data settings, then the recorded edits replayed on them."""
        spec = DataSpec.from_json(body)
        edits = body.get("edits", [])
        if not isinstance(edits, list) or len(edits) > _data.MAX_EDITS:
            raise DataError(f"edits must be a list of at most {_data.MAX_EDITS} edits")
        points = _data.generate(spec)
        for edit in edits:
            points = _data.apply_edit(points, edit)
        self._check_model(self.model_spec, points)
        with self.cond:
            self.data_spec, self.edits, self.points = spec, list(edits), points
            self._changed(rebuild=True)
        return self.wait()

    def upload(self, data, regression):
        points = _data.parse_csv(data, regression, self.data_spec.ratio, self.data_spec.seed)
        self._check_model(self.model_spec, points)
        with self.cond:
            self.points, self.edits = points, []
            self._changed(rebuild=True)
        return self.wait()

    def edit(self, body):
        """Add or delete points; the network keeps training on the new points."""
        edits = body.get("edits") if isinstance(body, dict) else None
        if not isinstance(edits, list) or not 1 <= len(edits) <= 100:
            raise DataError('send {"edits": [...]}: 1 to 100 edits')
        with self.cond:
            points = self.points
            for edit in edits:
                points = _data.apply_edit(points, edit)
            if len(self.edits) + len(edits) > _data.MAX_EDITS:
                raise DataError(f"too many edits ({_data.MAX_EDITS} at most): start from a "
                                "new dataset")
            if self.points.source == "generated":
                self.edits += edits
            self.points = points
            self._changed(rebuild=False)
        return self.wait()

    def set_model(self, body):
        spec = _model.ModelSpec.from_json(body)
        with self.cond:
            points = self.points
        self._check_model(spec, points)
        with self.cond:
            self.model_spec = spec
            self._changed(rebuild=True)
        return self.wait()

    def control(self, action):
        with self.cond:
            if action == "play":
                if self.status != "running":
                    self.run_started = None
                self.status, self.message = "running", ""
            elif action == "pause":
                self.status = "paused"
                self.cond.notify_all()
                deadline = time.monotonic() + WAIT_SECONDS
                while self.training and time.monotonic() < deadline:   # the epoch ends
                    self.cond.wait(deadline - time.monotonic())
            elif action == "step":
                self.status, self.steps, self.message = "paused", 1, ""
            elif action == "reset":
                self.status = "paused"
                self._changed(rebuild=True)
            else:
                raise SessionError(f"unknown action {_data._show(action)}: play, pause, step "
                                   "or reset")
            self.cond.notify_all()
        return self.wait() if action in ("reset", "step") else None

    def close(self):
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def wait(self, timeout=WAIT_SECONDS):
        """Wait until the worker has taken up every change (and a step has run)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.closed and (self.done_generation < self.generation
                                       or self.done_data < self.data_version or self.steps):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)

    def _check_model(self, spec, points):
        try:
            spec.check_size(_model.n_outputs(spec, points))
        except _model.ModelError as err:
            raise SessionError(str(err)) from None

    def _changed(self, rebuild):
        """(cond held) The points or the network changed: the worker takes it up."""
        self.data_version += 1
        if rebuild:
            self.generation += 1
        self.cond.notify_all()

    def state(self, known_data=None):
        """The page's view of the session (the points only when ``known_data`` is not the
        current data version)."""
        with self.cond:
            pub = self.published
            out = {"session": self.id, "status": self.status, "message": self.message,
                   "epoch": self.epoch, "generation": self.generation,
                   "data_version": self.data_version, "data": dataclasses.asdict(self.data_spec),
                   "edits": list(self.edits), "model": self.model_spec.to_json(),
                   "history": _thin(self.history, 400), **self._speed()}
            if known_data != self.data_version:
                out["points"] = self.points.to_json()
            out.update(view=pub.view, weights=pub.weights, scores=pub.scores,
                       onnx=_model.onnx_support(self.model_spec))
        return out

    def _speed(self):
        if len(self.speed) < 2:
            return {"epochs_per_s": 0.0, "samples_per_s": 0.0}
        (t0, e0, s0), (t1, e1, s1) = self.speed[0], self.speed[-1]
        dt = max(t1 - t0, 1e-9)
        running = self.status == "running" and time.monotonic() - t1 < 2.0
        return {"epochs_per_s": round((e1 - e0) / dt, 1) if running else 0.0,
                "samples_per_s": round((s1 - s0) / dt) if running else 0.0}

    def export_snapshot(self):
        """(ModelSpec, Points, a built model holding the published weights, epochs)."""
        with self.cond:
            pub = self.published
        if pub.params is None:
            raise SessionError("the network is not ready yet")
        model = _model.build(pub.spec, len(pub.spec.features), _model.n_outputs(pub.spec,
                                                                                 pub.points))
        model.flat.data[...] = pub.params
        return pub.spec, pub.points, model, pub.epoch

    # -- the worker thread ----------------------------------------------------------------------
    def _worker(self):
        model = optimizer = None
        while True:
            with self.cond:
                while not (self.closed or self.done_generation < self.generation
                           or self.done_data < self.data_version
                           or (self.status == "running" or self.steps) and model is not None):
                    self.cond.wait()
                if self.closed:
                    return
                generation, data_version = self.generation, self.data_version
                spec, points = self.model_spec, self.points
            try:
                if model is None or generation != self.done_generation:
                    model, optimizer = self._rebuild(spec, points)
                self._publish(spec, points, model, record=False)
                with self.cond:
                    self.done_generation, self.done_data = generation, data_version
                    self.cond.notify_all()
                    go = self.status == "running" or self.steps
                if go:
                    self._train(spec, points, model, optimizer, generation, data_version)
            except Exception as err:  # noqa: BLE001 (shown on the page; the session lives on)
                self._failed(err, generation, data_version)

    def _failed(self, err, generation, data_version):
        with self.cond:
            self.status = "paused"
            self.steps = 0
            if isinstance(err, nn.DivergenceError):
                self.message = (f"training diverged at epoch {self.epoch + 1}: lower the "
                                "learning rate (the network is back to its last finite state)")
            elif isinstance(err, (DataError, SessionError)):
                self.message = str(err)
            else:
                self.message = f"training stopped: {type(err).__name__}: {err}"
            self.done_generation = max(self.done_generation, generation)
            self.done_data = max(self.done_data, data_version)
            self.cond.notify_all()

    def _rebuild(self, spec, points):
        n_out = _model.n_outputs(spec, points)
        model = _model.build(spec, len(spec.features), n_out)
        with self.cond:
            self.epoch = 0
            self.history = {"epoch": [], "train": [], "test": []}
            self.speed.clear()
        self._publish(spec, points, model, record=True)
        return model, _model.make_optimizer(spec, model)

    def _publish(self, spec, points, model, record):
        """Compute the view, scores and a copy of the weights, and make them the page's."""
        X_tr, y_tr, X_te, y_te = points.split()
        train_loss, train_acc = _model.scores(spec, model, X_tr, y_tr, points)
        test_loss, test_acc = _model.scores(spec, model, X_te, y_te, points)
        view = _model.view(spec, model, points.regression)
        weights = _model.weights(model)
        params = np.array(model.flat.data, copy=True)
        with self.cond:
            if record:
                _record(self.history, self.epoch, train_loss, test_loss)
            self.published = Published(
                spec, points, params, self.epoch, view, weights,
                {"train_loss": train_loss, "test_loss": test_loss, "train_accuracy": train_acc,
                 "test_accuracy": test_acc, "train_points": len(y_tr),
                 "test_points": len(y_te)})

    def _train(self, spec, points, model, optimizer, generation, data_version):
        """Train until paused, stepped, changed, closed or out of time (one ``fit`` call)."""
        _data.check_usable(points)
        X_tr, y_tr, _, _ = points.split()
        x, y = _model.features(spec, X_tr), _model.targets(spec, points, y_tr)
        loss, _, _ = _model.fit_options(spec, points.regression)
        with self.cond:
            stepping = self.steps > 0 and self.status != "running"
            epochs = self.limits.max_epochs - self.epoch
            epochs = min(epochs, 1) if stepping else epochs
            if self.run_started is None:
                self.run_started = time.monotonic()
            first = self.fits == 0
            self.fits += 1
            if first and not stepping:
                self.message = ("starting: a first run on a new machine compiles fastnn's "
                                "kernels (up to a minute, once)")
        if epochs <= 0:
            with self.cond:
                self.status, self.message = "paused", (f"stopped at the limit of "
                                                       f"{self.limits.max_epochs} epochs")
            return
        watcher = _Watcher(self, spec, points, model, generation, data_version, len(y_tr))
        with self.cond:
            self.training = True
        try:
            nn.fit(model, x, y, loss=loss, optimizer=optimizer, batch_size=spec.batch_size,
                   epochs=epochs, alpha=spec.l2, callbacks=[watcher],
                   seed=spec.seed * 1_000_003 + self.fits)
        finally:
            with self.cond:
                self.training = False
                if stepping:
                    self.steps = 0
                if first and self.message.startswith("starting"):
                    self.message = ""
                self.cond.notify_all()


class _Watcher(nn.Callback):
    """fit's callback: records each epoch, publishes the view a few times a second and stops
    the fit when the page pauses, steps, changes something, closes or runs out of time."""

    def __init__(self, session, spec, points, model, generation, data_version, n_train):
        self.session, self.spec, self.points, self.net = session, spec, points, model
        self.generation, self.data_version, self.n_train = generation, data_version, n_train
        self.last = 0.0
        self.split = points.split()      # (X_train, y_train, X_test, y_test), as each epoch scores

    def on_epoch_end(self, epoch, logs=None):
        s = self.session
        with s.cond:
            changed = (s.closed or s.generation != self.generation
                       or s.data_version != self.data_version)
            if not changed:
                s.epoch += 1
                if s.message.startswith("starting"):
                    s.message = ""
                s.speed.append((time.monotonic(), s.epoch, s.epoch * self.n_train))
        if changed:
            self.trainer.stop_training = True
            return
        now = time.monotonic()
        with s.cond:
            out_of_time = now - s.run_started > s.limits.run_seconds
            out_of_epochs = s.epoch >= s.limits.max_epochs
            stop = s.status != "running" or out_of_time or out_of_epochs
            if out_of_time or out_of_epochs:
                s.status = "paused"
                s.message = (f"paused after {s.limits.run_seconds:.0f} s of training (the "
                             "limit of one run): press play to go on" if out_of_time else
                             f"stopped at the limit of {s.limits.max_epochs} epochs")
        if stop or now - self.last >= PUBLISH_EVERY:
            s._publish(self.spec, self.points, self.net, record=True)
            self.last = now
        else:  # the loss curve gets every epoch, the heavier view a few times a second
            X_tr, y_tr, X_te, y_te = self.split
            train, _ = _model.scores(self.spec, self.net, X_tr, y_tr, self.points)
            test, _ = _model.scores(self.spec, self.net, X_te, y_te, self.points)
            with s.cond:
                _record(s.history, s.epoch, train, test)
        if stop:
            self.trainer.stop_training = True


def _record(history, epoch, train, test):
    if history["epoch"] and history["epoch"][-1] == epoch:
        for key in ("epoch", "train", "test"):
            history[key].pop()
    history["epoch"].append(epoch)
    history["train"].append(train)
    history["test"].append(test)
    if len(history["epoch"]) > HISTORY:  # keep every other point, and the last
        for key in history:
            history[key][:] = history[key][:-1:2] + history[key][-1:]


def _thin(history, n):
    size = len(history["epoch"])
    if size <= n:
        return {k: list(v) for k, v in history.items()}
    idx = sorted(set(np.linspace(0, size - 1, n).round().astype(int).tolist()))
    return {k: [v[i] for i in idx] for k, v in history.items()}


class Sessions:
    """The server's sessions, at most ``limits.max_sessions``; idle ones are closed."""

    def __init__(self, limits=None):
        self.limits = limits or Limits()
        self.lock = threading.Lock()
        self.sessions = {}
        self._stop = threading.Event()
        self._reaper = None

    def create(self):
        self.reap()
        with self.lock:
            if len(self.sessions) >= self.limits.max_sessions:
                raise TooMany(f"too many open playground pages ({self.limits.max_sessions}): "
                              "close one and reload")
            sid = secrets.token_urlsafe(16)
            session = self.sessions[sid] = Session(sid, self.limits)
            if self._reaper is None:
                self._reaper = threading.Thread(target=self._reap_loop, daemon=True,
                                                name="fastnn-playground-reaper")
                self._reaper.start()
        session.wait()
        return session

    def get(self, sid):
        with self.lock:
            session = self.sessions.get(sid)
        if session is None:
            raise KeyError(sid)
        session.touch()
        return session

    def close(self, sid):
        with self.lock:
            session = self.sessions.pop(sid, None)
        if session is not None:
            session.close()
        return session is not None

    def reap(self):
        now = time.monotonic()
        with self.lock:
            idle = [sid for sid, s in self.sessions.items()
                    if now - s.last_seen > self.limits.idle_seconds]
        for sid in idle:
            self.close(sid)

    def _reap_loop(self):
        while not self._stop.wait(min(5.0, max(0.05, self.limits.idle_seconds / 2))):
            self.reap()

    def shutdown(self):
        self._stop.set()
        with self.lock:
            sids = list(self.sessions)
        for sid in sids:
            self.close(sid)


class TooMany(SessionError):
    pass

