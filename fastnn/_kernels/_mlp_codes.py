"""The fused MLP epoch's codes (activations, losses, solvers) and its flat parameter layout.

A neutral module shared by ``cpu/mlp.py``, ``cuda/mlp.py`` and the estimators; it imports
neither backend.
"""
import collections

import numpy as np

# activation codes (hidden and output)
IDENTITY, LOGISTIC, TANH, RELU, SOFTMAX, EXP = 0, 1, 2, 3, 4, 5
ACTIVATION_CODES = {"identity": IDENTITY, "logistic": LOGISTIC, "tanh": TANH, "relu": RELU,
                    "softmax": SOFTMAX, "exp": EXP}
# loss codes
SQUARED, LOG_LOSS, BINARY_LOG_LOSS, POISSON = 0, 1, 2, 3
LOSS_CODES = {"squared_error": SQUARED, "log_loss": LOG_LOSS,
              "binary_log_loss": BINARY_LOG_LOSS, "poisson": POISSON}
# solver codes
SGD, ADAM = 0, 1
# slots of the GPU workspace's float64 ``stats`` (``read_stats``): epoch loss sum, validation
# loss, non-finite validation outputs, weight of correctly classified validation rows, then
# per-output squared residuals
EPOCH_LOSS, VAL_LOSS, VAL_BAD, VAL_CORRECT, VAL_SSE = 0, 1, 2, 3, 4


# One model of the fused kernels: ``units`` (int64 ``[n_features, *hidden, n_outputs]``), the
# offsets of the flat layout, the activation and loss codes, the number of parameters, of units
# (the sum of ``units``) and of one row's forward multiply-adds.
Model = collections.namedtuple("Model",
                               "units w_off b_off hidden output loss_code size n_units macs")
# The solver's constants (Python scalars; ``solver`` a code above).
Hyper = collections.namedtuple("Hyper", "alpha solver momentum nesterov beta1 beta2 epsilon")
# What a workspace is made for: a training epoch (gathers its mini-batches), one batch passed
# whole (``loss_grad``), or forward passes.
WORKSPACE_PURPOSES = ("epoch", "batch", "forward")


def check_purpose(purpose):
    if purpose not in WORKSPACE_PURPOSES:
        raise ValueError(f"purpose must be one of {WORKSPACE_PURPOSES}, got {purpose!r}")


def layout(units):
    """Offsets of each coefficient matrix and intercept vector in the flat parameter buffer."""
    units = np.asarray(units, dtype=np.int64)
    n_layers = units.size - 1
    w_off = np.empty(n_layers, np.int64)
    b_off = np.empty(n_layers, np.int64)
    off = 0
    for i in range(n_layers):
        w_off[i] = off
        off += units[i] * units[i + 1]
    for i in range(n_layers):
        b_off[i] = off
        off += units[i + 1]
    return w_off, b_off, int(off)
