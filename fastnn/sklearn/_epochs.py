"""Training epochs of the MLP estimators (the fused CPU epoch and its CUDA twin, through the
kernel API ``fastnn._kernels.mlp``), and the L-BFGS objective on the GPU."""
import math

import numpy as np
from sklearn.base import is_classifier

from .._kernels import mlp as kmlp
from .._kernels.arrayops import sum_squares


def _model(est, state):
    return kmlp.model(state.units, *est._codes(state))


def _hyper(est):
    return kmlp.hyper(est.alpha, est.solver, est.momentum, est.nesterovs_momentum, est.beta_1,
                      est.beta_2, est.epsilon)


def _cuda_objective(X, y, sw, m, alpha):
    """L-BFGS objective on the GPU: X, y and the weights move to the device once; each call
    uploads the parameters and reads back the loss and the gradient."""
    from numba import cuda
    dtype = X.dtype
    x_d, y_d = cuda.to_device(X), cuda.to_device(y)
    sw_d = None if sw is None else cuda.to_device(sw)
    params, grad = cuda.device_array(m.size, dtype), cuda.device_array(m.size, dtype)
    ws = kmlp.workspace(m, X.shape[0], dtype, "batch", "cuda")
    host = np.empty(m.size, dtype)

    def fun(packed):
        host[:] = packed
        params.copy_to_device(host)
        loss = kmlp.loss_grad(x_d, y_d, sw_d, params, grad, m, alpha, ws)
        return loss, grad.copy_to_host().astype(np.float64)

    return fun


class _CPUEpochs:
    """Training epochs on the CPU: the fused Numba kernels update ``state.params`` in place."""

    def __init__(self, est, state, X_train, y_train, sw_train, validation, batch_size):
        self.est, self.state, self.validation = est, state, validation
        self.model, self.hyper = _model(est, state), _hyper(est)
        dtype = state.params.dtype
        self.data = kmlp.epoch_data(X_train, y_train, sw_train, dtype, "cpu")
        self.batch_size = batch_size
        self.grad = np.empty(self.model.size, dtype)
        self.ws = kmlp.workspace(self.model, batch_size, dtype, "epoch", "cpu")

    def epoch(self, sample_idx, opt):
        """One epoch over ``sample_idx``; returns the sum of batch loss times batch rows."""
        opt.t, total = kmlp.train_epoch(
            self.data, sample_idx, self.batch_size, self.state.params, self.grad, self.model,
            self.hyper, opt.lr, opt.t, (opt.m, opt.v), self.ws)
        return total

    def validation_score(self):
        return self.est._validation_score(self.state, *self.validation)

    def keep_best(self):
        self.state.best_params = self.state.params.copy()

    def params_finite(self):
        return bool(np.isfinite(self.state.params).all())

    def finish(self, early_stopping):
        if early_stopping:
            self.state.params[:] = self.state.best_params


class _CUDAEpochs:
    """Training epochs on the GPU (``fastnn._kernels.mlp`` on device arrays).

    The training and validation data, the parameters and the optimizer's moments move to the
    device once; each epoch uploads the shuffled sample order and reads back one small vector
    (the epoch's loss and, with early stopping, the validation sums computed on the device).
    ``finish`` brings the parameters (the best ones with early stopping) and the moments back.
    Sparse X is densified once on the host: the device keeps a dense copy.
    """

    def __init__(self, est, state, X_train, y_train, sw_train, validation, batch_size):
        from numba import cuda
        self.est, self.state = est, state
        self.model, self.hyper = _model(est, state), _hyper(est)
        dtype = state.params.dtype
        self.data = kmlp.epoch_data(X_train, y_train, sw_train, dtype, "cuda")
        self.batch_size = batch_size
        self.params = cuda.to_device(state.params)
        self.grad = cuda.device_array(self.model.size, dtype)
        opt = state.optimizer
        self.adam = self.hyper.solver == kmlp.ADAM
        self.m = cuda.to_device(opt.m)
        self.v = cuda.to_device(opt.v) if self.adam else self.m
        self.ws = kmlp.workspace(self.model, batch_size, dtype, "epoch", "cuda")
        self.stats = None
        self.val = None
        if validation is not None:
            self._prepare_validation(validation, dtype)

    def _prepare_validation(self, validation, dtype):
        from numba import cuda
        X_val, y_val, sw_val = validation
        est, state = self.est, self.state
        n_val = X_val.shape[0]
        if is_classifier(est):
            task = "multiclass" if state.out_activation == "softmax" else "labels"
        else:
            task = "regression"
        self.val = kmlp.validation_data(X_val, y_val, sw_val, task, self.model, dtype)
        self.best = cuda.to_device(state.best_params)
        w64 = None if sw_val is None else np.asarray(sw_val, dtype=np.float64)
        self.w64_sum = float(n_val) if w64 is None else float(np.sum(w64))
        if task == "regression":   # the denominators of R^2 do not change during training
            w = 1.0 if w64 is None else w64[:, None]
            yv = np.asarray(y_val, dtype=dtype).astype(np.float64)
            self.ss_tot = np.sum(w * (yv - np.average(yv, axis=0, weights=w64)) ** 2, axis=0)

    def epoch(self, sample_idx, opt):
        """One epoch over ``sample_idx``; returns the sum of batch loss times batch rows."""
        opt.t, _ = kmlp.train_epoch(
            self.data, sample_idx, self.batch_size, self.params, self.grad, self.model,
            self.hyper, opt.lr, opt.t, (self.m, self.v), self.ws)
        if self.val is not None:
            kmlp.validation(self.val, self.params, self.model, self.ws.stats)
        self.stats = kmlp.read_stats(self.ws)
        return float(self.stats[kmlp.EPOCH_LOSS])

    def params_finite(self):
        return math.isfinite(sum_squares(self.params))

    def validation_score(self):
        """(score, loss) on the validation set after the last epoch, as ``_validation_score``."""
        s, v = self.stats, self.val
        val_loss = float(s[kmlp.VAL_LOSS])
        if s[kmlp.VAL_BAD] > 0:
            return np.nan, val_loss
        if v.task != "regression":
            return float(s[kmlp.VAL_CORRECT] / self.w64_sum), val_loss
        num, den = s[kmlp.VAL_SSE:], self.ss_tot
        scores = np.ones(num.size)     # r2_score's rules for constant targets
        valid = (num != 0) & (den != 0)
        scores[valid] = 1 - num[valid] / den[valid]
        scores[(num != 0) & (den == 0)] = 0.0
        return float(np.average(scores)), val_loss

    def keep_best(self):
        self.best.copy_to_device(self.params)

    def finish(self, early_stopping):
        state, opt = self.state, self.state.optimizer
        state.params = (self.best if early_stopping else self.params).copy_to_host()
        opt.m = self.m.copy_to_host()
        if self.adam:
            opt.v = self.v.copy_to_host()
