"""Fuzzing fastnn.load with mutated and crafted files, run by tests/reliability/test_fuzz.py in a
process of its own under a memory limit: ``python fuzz_loader.py EXAMPLES SEED``. Prints a JSON
summary."""
import io
import json
import resource
import sys
import warnings
import zipfile

import numpy as np
from hypothesis import HealthCheck, given, settings, seed as hypothesis_seed
from hypothesis import strategies as st

import fastnn
import fastnn.nn as nn
from fastnn.sklearn import MLPClassifier

COUNTS = {"tried": 0, "rejected": 0, "loaded": 0}


def _sources():
    rng = np.random.default_rng(0)
    cnn = nn.Sequential(nn.Conv2D(2, 3, padding=1), nn.BatchNorm(), nn.ReLU(), nn.MaxPool2D(2),
                        nn.Flatten(), nn.Dense(3), seed=0)
    cnn.build((1, 6, 6))
    rnn = nn.Sequential(nn.LSTM(3), nn.Dense(2), seed=0)
    rnn.build((4, 2))
    est = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(rng.standard_normal((30, 4)), rng.integers(0, 3, 30))
    out = []
    for obj in (cnn, rnn, est):
        buf = io.BytesIO()
        fastnn.save(obj, buf)
        out.append(buf.getvalue())
    return out


SOURCES = _sources()
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=12)


def _try(data):
    COUNTS["tried"] += 1
    try:
        fastnn.load(io.BytesIO(data))
    except ValueError:
        COUNTS["rejected"] += 1
    else:
        COUNTS["loaded"] += 1


def _edit_json(node, path, value):
    """Replace the value at ``path`` (indices into dicts' keys / lists) by ``value``."""
    for step in path[:-1]:
        if isinstance(node, dict) and node:
            node = node[sorted(node)[step % len(node)]]
        elif isinstance(node, list) and node:
            node = node[step % len(node)]
        else:
            return
    if isinstance(node, dict) and node:
        node[sorted(node)[path[-1] % len(node)]] = value
    elif isinstance(node, list) and node:
        node[path[-1] % len(node)] = value


SETTINGS = dict(deadline=None, database=None, derandomize=False,
                suppress_health_check=list(HealthCheck))


def run(examples, seed):
    @hypothesis_seed(seed)
    @settings(max_examples=examples, **SETTINGS)
    @given(st.sampled_from(range(len(SOURCES))),
           st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 255)), min_size=1,
                    max_size=8),
           st.integers(0, 2**31) | st.none())
    def byte_mutations(which, flips, cut):
        data = bytearray(SOURCES[which])
        for pos, value in flips:
            data[pos % len(data)] = value
        _try(bytes(data[:cut % len(data)] if cut is not None else data))

    @hypothesis_seed(seed + 1)
    @settings(max_examples=examples, **SETTINGS)
    @given(st.sampled_from(range(len(SOURCES))),
           st.lists(st.integers(0, 50), min_size=1, max_size=6), JSON_VALUES)
    def description_edits(which, path, value):
        with zipfile.ZipFile(io.BytesIO(SOURCES[which])) as z:
            members = {name: z.read(name) for name in z.namelist()}
        meta = json.loads(np.load(io.BytesIO(members["__fastnn__.npy"])).tobytes().decode())
        _edit_json(meta, path, value)
        raw = io.BytesIO()
        np.save(raw, np.frombuffer(json.dumps(meta).encode(), np.uint8))
        members["__fastnn__.npy"] = raw.getvalue()
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as z:
            for name, blob in members.items():
                z.writestr(name, blob)
        _try(out.getvalue())

    byte_mutations()
    description_edits()


if __name__ == "__main__":
    examples, seed = int(sys.argv[1]), int(sys.argv[2])
    for source in SOURCES:  # compile what loading runs (the empty-batch build) before measuring
        fastnn.load(io.BytesIO(source))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run(examples, seed)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({**COUNTS, "rss_before_kib": before, "rss_peak_kib": after}))
