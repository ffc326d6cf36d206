"""The playground's points: TensorFlow Playground's datasets, scikit-learn's moons and blobs,
points added and deleted by hand, and CSV files of the user's own.

Every point lies in the view's square [-6, 6]^2 (as in TensorFlow Playground). Class labels are
indices 0..k-1 (with names for uploaded files); regression targets lie in [-1, 1]. Pure NumPy
(and scikit-learn for moons and blobs): nothing here trains or runs user text.
"""
import csv
import dataclasses
import io
import math
import re

import numpy as np

DOMAIN = 6.0                         # the view is [-DOMAIN, DOMAIN]^2
CLASSIFICATION = ("circle", "xor", "gauss", "spiral", "moons", "blobs")
REGRESSION = ("plane", "multigauss")
TWO_CLASS_ONLY = ("xor", "moons")    # datasets whose shape has two classes, whatever ``classes``
MIN_CLASSES, MAX_CLASSES = 2, 5
MAX_POINTS = 2000                    # points in a session, generated, added or uploaded
MAX_EDITS = 500                      # recorded additions and deletions (the link replays them)
DEFAULT_POINTS = 400
MAX_LABEL_CHARS = 40
_LABEL = re.compile(r"^[\w .+-]{1,40}$")


class DataError(ValueError):
    """Data the playground cannot take; the message says why, for the page to show."""


@dataclasses.dataclass
class DataSpec:
    """How the points were made: a named dataset with its sliders, or an uploaded file."""

    dataset: str = "circle"
    noise: float = 0.0               # 0 .. 0.5, TensorFlow Playground's noise (its 0-50 slider)
    classes: int = 2
    ratio: float = 0.5               # share of the points used for training
    seed: int = 0
    points: int = DEFAULT_POINTS
    regression: bool = False

    @classmethod
    def from_json(cls, d):
        """A checked spec from the page's JSON (unknown keys are refused)."""
        if not isinstance(d, dict):
            raise DataError("the data settings must be a JSON object")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)} - {"edits"})
        if unknown:
            raise DataError(f"unknown data setting {unknown[0]!r}")
        spec = cls()
        names = CLASSIFICATION + REGRESSION
        spec.dataset = _choice(d.get("dataset", spec.dataset), names, "dataset")
        spec.regression = spec.dataset in REGRESSION
        spec.noise = _number(d.get("noise", spec.noise), "noise", 0.0, 0.5)
        spec.classes = int(_number(d.get("classes", spec.classes), "classes", MIN_CLASSES,
                                   MAX_CLASSES, integer=True))
        if spec.dataset in TWO_CLASS_ONLY or spec.regression:
            spec.classes = 2 if not spec.regression else 0
        spec.ratio = _number(d.get("ratio", spec.ratio), "ratio", 0.1, 0.9)
        spec.seed = int(_number(d.get("seed", spec.seed), "seed", 0, 2**31 - 1, integer=True))
        spec.points = int(_number(d.get("points", spec.points), "points", 10, MAX_POINTS,
                                  integer=True))
        return spec


@dataclasses.dataclass
class Points:
    """The session's points: positions, labels (class indices or targets), the test mask."""

    X: np.ndarray                    # (n, 2) float64, in the view's square
    y: np.ndarray                    # (n,) int64 class indices, or float64 targets in [-1, 1]
    test: np.ndarray                 # (n,) bool: held out for the test loss
    regression: bool
    class_names: list                # one name per class ([] for regression)
    source: str = "generated"        # or "upload"

    @property
    def n_classes(self):
        return 0 if self.regression else len(self.class_names)

    def split(self):
        """(X_train, y_train, X_test, y_test)."""
        train = ~self.test
        return self.X[train], self.y[train], self.X[self.test], self.y[self.test]

    def to_json(self):
        return {"x": np.round(self.X[:, 0], 4).tolist(), "y": np.round(self.X[:, 1], 4).tolist(),
                "label": (np.round(self.y, 4) if self.regression else self.y).tolist(),
                "test": self.test.astype(int).tolist(), "regression": self.regression,
                "classes": list(self.class_names), "source": self.source,
                "count": len(self.y)}


def _choice(value, options, what):
    if not isinstance(value, str) or value not in options:
        raise DataError(f"{what} must be one of {', '.join(options)}, got {_show(value)}")
    return value


def _number(value, what, lo, hi, integer=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            isinstance(value, float) and not math.isfinite(value):
        raise DataError(f"{what} must be a number, got {_show(value)}")
    if integer and value != int(value):
        raise DataError(f"{what} must be a whole number, got {_show(value)}")
    if not lo <= value <= hi:
        raise DataError(f"{what} must be between {lo} and {hi}, got {_show(value)}")
    return float(value)


def _show(value):
    """A short, harmless rendering of a value from the page for an error message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- the datasets ------------------------------------------------------------------------------

def generate(spec):
    """The points of a named dataset (``spec.points`` of them), split by ``spec.ratio``."""
    rng = np.random.default_rng(spec.seed)
    n, k, noise = spec.points, max(spec.classes, 2), spec.noise
    if spec.regression:
        X = rng.uniform(-DOMAIN, DOMAIN, (n, 2))
        shift = rng.uniform(-DOMAIN, DOMAIN, (n, 2)) * noise
        y = (_plane if spec.dataset == "plane" else _multigauss)(X + shift)
        names = []
    else:
        X, y = _CLASSIFIERS[spec.dataset](rng, n, k, noise, spec.seed)
        k = 2 if spec.dataset in TWO_CLASS_ONLY else k   # (a few noisy points may hold one)
        names = [str(c) for c in range(k)]
    X = np.clip(X, -DOMAIN, DOMAIN)
    return Points(X, y, _test_mask(len(y), spec.ratio, rng), spec.regression, names)


def _test_mask(n, ratio, rng):
    test = np.ones(n, dtype=bool)
    test[rng.permutation(n)[:round(ratio * n)]] = False
    return test


def _circle(rng, n, k, noise, seed):
    """k rings around the origin (two: TensorFlow Playground's disc inside a ring)."""
    radius = 5.0
    y = np.arange(n) % k
    width = radius / k
    r = rng.uniform(y * width + (y > 0) * 0.2 * width, (y + 1) * width - (y < k - 1) * 0.2 * width)
    angle = rng.uniform(0, 2 * np.pi, n)
    X = np.column_stack([r * np.sin(angle), r * np.cos(angle)])
    noisy = X + rng.uniform(-radius, radius, (n, 2)) * noise
    label = np.minimum(np.hypot(noisy[:, 0], noisy[:, 1]) // width, k - 1).astype(np.int64)
    return X, label


def _xor(rng, n, k, noise, seed):
    X = rng.uniform(-5, 5, (n, 2))
    X += np.where(X > 0, 0.3, -0.3)  # TensorFlow Playground's padding off the axes
    noisy = X + rng.uniform(-5, 5, (n, 2)) * noise
    return X, (noisy[:, 0] * noisy[:, 1] >= 0).astype(np.int64)


def _gauss(rng, n, k, noise, seed):
    """One Gaussian per class on a circle ((2, 2) and (-2, -2) for two classes)."""
    y = np.arange(n) % k
    angle = np.pi / 4 + 2 * np.pi * y / k
    centers = 2 * math.sqrt(2) * np.column_stack([np.cos(angle), np.sin(angle)])
    std = math.sqrt(0.5 + (4 - 0.5) * noise / 0.5)
    return centers + rng.normal(0, std, (n, 2)), y.astype(np.int64)


def _spiral(rng, n, k, noise, seed):
    """k interleaved spiral arms (two: TensorFlow Playground's spiral)."""
    y = np.arange(n) % k
    i = np.arange(n) // k
    per = max(1, (n + k - 1) // k)
    r = i / per * 5
    t = 1.75 * i / per * 2 * np.pi + 2 * np.pi * y / k
    X = np.column_stack([r * np.sin(t), r * np.cos(t)])
    return X + rng.uniform(-1, 1, (n, 2)) * noise, y.astype(np.int64)


def _moons(rng, n, k, noise, seed):
    from sklearn.datasets import make_moons
    X, y = make_moons(n, noise=noise * 0.6, random_state=seed)
    return (X - [0.5, 0.25]) * 3.5, y.astype(np.int64)


def _blobs(rng, n, k, noise, seed):
    from sklearn.datasets import make_blobs
    X, y = make_blobs(n, centers=k, cluster_std=0.4 + 2.0 * noise / 0.5, center_box=(-4, 4),
                      random_state=seed)
    return X, y.astype(np.int64)


_CLASSIFIERS = {"circle": _circle, "xor": _xor, "gauss": _gauss, "spiral": _spiral,
                "moons": _moons, "blobs": _blobs}


def _plane(X):
    return np.clip((X[:, 0] + X[:, 1]) / 10.0, -1.0, 1.0)


_GAUSSIANS = ((-4, 2.5, 1), (0, 2.5, -1), (4, 2.5, 1), (-4, -2.5, -1), (0, -2.5, 1), (4, -2.5, -1))


def _multigauss(X):
    """TensorFlow Playground's six bumps: the strongest signed bump at each point."""
    label = np.zeros(len(X))
    for cx, cy, sign in _GAUSSIANS:
        value = sign * np.clip(1 - np.hypot(X[:, 0] - cx, X[:, 1] - cy) / 2, 0, 1)
        label = np.where(np.abs(value) > np.abs(label), value, label)
    return label


# -- edits: points added by clicking, deleted by a dragged rectangle ---------------------------

def apply_edit(points, edit):
    """``points`` after one edit (a new ``Points``); the edit is checked first.

    ``{"add": [x, y, label]}`` adds a training point (label: a class index, or a target in
    [-1, 1]); ``{"delete": [x0, y0, x1, y1]}`` removes the points inside that rectangle."""
    if not isinstance(edit, dict) or len(edit) != 1:
        raise DataError('an edit is {"add": [x, y, label]} or {"delete": [x0, y0, x1, y1]}')
    (kind, value), = edit.items()
    if kind == "add":
        x, y, label = _numbers(value, 3, "add")
        for v, what in ((x, "x"), (y, "y")):
            _number(v, what, -DOMAIN, DOMAIN)
        if points.regression:
            label = _number(label, "the target", -1.0, 1.0)
        else:
            label = int(_number(label, "the class", 0, points.n_classes - 1, integer=True))
        if len(points.y) >= MAX_POINTS:
            raise DataError(f"too many points: the playground holds at most {MAX_POINTS}")
        return dataclasses.replace(
            points, X=np.vstack([points.X, [[x, y]]]),
            y=np.append(points.y, np.array([label], dtype=points.y.dtype)),
            test=np.append(points.test, False))
    if kind == "delete":
        x0, y0, x1, y1 = _numbers(value, 4, "delete")
        inside = ((points.X[:, 0] >= min(x0, x1)) & (points.X[:, 0] <= max(x0, x1))
                  & (points.X[:, 1] >= min(y0, y1)) & (points.X[:, 1] <= max(y0, y1)))
        keep = ~inside
        return dataclasses.replace(points, X=points.X[keep], y=points.y[keep],
                                   test=points.test[keep])
    raise DataError(f"unknown edit {_show(kind)}: expected 'add' or 'delete'")


def _numbers(value, count, what):
    if not isinstance(value, list) or len(value) != count:
        raise DataError(f"{what} takes a list of {count} numbers")
    for v in value:
        _number(v, what, -1e6, 1e6)
    return [float(v) for v in value]


def check_usable(points):
    """Refuse points a network cannot be trained on: too few, or a class missing from training."""
    n_train = int((~points.test).sum())
    if n_train < 2:
        raise DataError("too few training points: add points or raise the train ratio")
    if not points.regression and len(np.unique(points.y[~points.test])) < 2:
        raise DataError("the training points hold a single class: add points of another class")


# -- CSV files of the user's own ---------------------------------------------------------------

def parse_csv(data, regression, ratio=0.5, seed=0):
    """Points from CSV bytes: two numeric columns (x, y) and a label, an optional header line.

    Classification takes 2 to 5 distinct labels (numbers or short names); regression takes
    numeric labels. x and y are scaled column by column onto [-5.5, 5.5] (the view's square less
    a margin) and regression labels onto [-1, 1]. Raises ``DataError`` naming the line and
    column at fault."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError("the file is not UTF-8 text: save it as CSV (comma-separated values)") \
            from None
    if "\x00" in text:
        raise DataError("the file is binary, not CSV text")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    try:  # (newline=None reads the old Mac files' lone CR line ends too)
        rows = [(i, row) for i, row in enumerate(csv.reader(io.StringIO(text, newline=None),
                                                            dialect), start=1)
                if row and any(cell.strip() for cell in row)]
    except csv.Error as err:
        raise DataError(f"the file is not readable as CSV: {err}") from None
    if rows and not (_is_number(rows[0][1][0]) and _is_number(rows[0][1][1 % len(rows[0][1])])):
        rows = rows[1:]  # a header line
    if len(rows) > MAX_POINTS:
        raise DataError(f"too many points: the file has {len(rows)} rows, the playground holds "
                        f"at most {MAX_POINTS}")
    if len(rows) < 4:
        raise DataError("the file needs at least 4 rows of x, y, label")
    xs, labels = [], []
    for line, row in rows:
        if len(row) != 3:
            raise DataError(f"line {line}: expected 3 columns (x, y, label), found {len(row)}")
        point = []
        for col, cell in enumerate(row[:2], start=1):
            if not _is_number(cell):
                raise DataError(f"line {line}, column {col}: {_show(cell.strip())} is not a "
                                "number (columns 1 and 2 are the point's x and y)")
            point.append(float(cell))
        xs.append(point)
        labels.append(row[2].strip())
    X = _scale_columns(np.array(xs, dtype=np.float64))
    if regression:
        y, names = _regression_labels(rows, labels), []
    else:
        y, names = _class_labels(labels)
    rng = np.random.default_rng(seed)
    return Points(X, y, _test_mask(len(y), ratio, rng), regression, names, source="upload")


def _is_number(cell):
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def _scale_columns(X):
    lo, hi = X.min(axis=0), X.max(axis=0)
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    return (X - mid) / np.where(half > 0, half, 1.0) * (DOMAIN - 0.5)


def _regression_labels(rows, labels):
    for (line, _), label in zip(rows, labels):
        if not _is_number(label):
            raise DataError(f"line {line}, column 3: {_show(label)} is not a number (regression "
                            "takes numeric labels; switch to classification for class names)")
    y = np.array([float(v) for v in labels])
    lo, hi = y.min(), y.max()
    return (y - (lo + hi) / 2) / ((hi - lo) / 2 if hi > lo else 1.0)


def _class_labels(labels):
    names = sorted(set(labels))
    for name in names:
        if not _LABEL.match(name):
            raise DataError(f"the label {_show(name)} is not a short name (letters, digits, "
                            f"spaces and . _ + -, at most {MAX_LABEL_CHARS} characters)")
    if not MIN_CLASSES <= len(names) <= MAX_CLASSES:
        raise DataError(f"the label column has {len(names)} distinct values; the playground "
                        f"takes {MIN_CLASSES} to {MAX_CLASSES} classes (for numeric targets, "
                        "choose regression)")
    if all(_is_number(n) for n in names):
        names.sort(key=float)
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[v] for v in labels], dtype=np.int64), names
