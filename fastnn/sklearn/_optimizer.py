"""The stochastic solvers of the MLP estimators, as scikit-learn's ``_optimizer`` objects give
them: ``SolverState`` (learning rate, step count, moments: what is saved with the estimator) and
``Solver``, the learning-rate rules over it (``iteration_ends`` after each epoch,
``trigger_stopping`` when the loss stopped improving). The update itself runs in the fused epoch
kernels (``fastnn._kernels.mlp``), with the rules of ``_kernels/_optim_rules.py``.
"""
import dataclasses

import numpy as np


@dataclasses.dataclass
class SolverState:
    """``lr``: the current learning rate; ``t``: Adam's step count; ``m``: Adam's first moment
    or SGD's velocity; ``v``: Adam's second moment (empty for SGD)."""

    lr: float
    t: int
    m: np.ndarray
    v: np.ndarray

    @classmethod
    def new(cls, solver, size, dtype, lr):
        """A fresh state of ``size`` parameters (zero moments) for ``solver``."""
        return cls(float(lr), 0, np.zeros(size, dtype),
                   np.zeros(size if solver == "adam" else 0, dtype))

    def astype(self, dtype):
        """A copy with the moments in ``dtype`` (a refit may change the compute dtype)."""
        return SolverState(self.lr, self.t, self.m.astype(dtype), self.v.astype(dtype))


class Solver:
    """scikit-learn's ``SGDOptimizer`` / ``AdamOptimizer`` schedule over a ``SolverState``."""

    def __init__(self, est, state):
        self.state = state
        self.schedule = est.learning_rate if est.solver == "sgd" else "constant"
        self.learning_rate_init = float(est.learning_rate_init)
        self.power_t = est.power_t

    @property
    def learning_rate(self):
        return self.state.lr

    def iteration_ends(self, time_step):
        """After an epoch: 'invscaling' sets ``lr = learning_rate_init / (t + 1) ** power_t``."""
        if self.schedule == "invscaling":
            self.state.lr = self.learning_rate_init / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        """True to stop; 'adaptive' divides the learning rate by 5 instead, down to 1e-6."""
        if self.schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.state.lr <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.state.lr /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.state.lr)
        return False
