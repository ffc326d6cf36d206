"""Shared pieces of the estimators: fastnn's own parameter constraints, small helpers."""
import functools

import numpy as np
from sklearn.utils._param_validation import StrOptions

_PREDICT_CHUNK = 8192
_CUDA_PREDICT_CHUNK = 16384


# fastnn's own estimator parameters, checked as scikit-learn checks its own (dtype in _fastnn_params)
FASTNN_CONSTRAINTS = {"device": [StrOptions({"auto", "cpu", "cuda"})], "dtype": "no_validation"}


def _shuffled(idx, rng):
    """``sklearn.utils.shuffle(idx, random_state=rng)`` (the same draws) without its per-call
    validation, which costs more than a small epoch."""
    perm = np.arange(idx.shape[0])
    rng.shuffle(perm)
    return idx[perm]


def unchanged_on_failure(fit):
    """A fit that fails, wherever and however (a bad input, a divergence, Ctrl-C), leaves the
    estimator exactly as it was: its attributes are put back (fits replace attributes, they
    never change an attribute's object in place)."""
    @functools.wraps(fit)
    def run(self, *args, **kwargs):
        before = dict(self.__dict__)
        try:
            return fit(self, *args, **kwargs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise
    return run
