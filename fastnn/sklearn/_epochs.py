"""Training epochs of the MLP estimators: the fused CPU epoch and its CUDA twin, and the L-BFGS objective on the GPU."""
import math

import numpy as np
import scipy.sparse as sp
from sklearn.base import is_classifier

from ._common import _cuda_kernels, _dense, _kernels

def _cuda_objective(X, y, sw, units, hidden, output, loss_code, alpha):
    """L-BFGS objective on the GPU: X, y and the weights move to the device once; each call
    uploads the parameters and reads back the loss and the gradient."""
    from numba import cuda
    g = _cuda_kernels()
    w_off, b_off, size = g.layout(units)
    dtype = X.dtype
    x_d, y_d = cuda.to_device(X), cuda.to_device(y)
    sw_d = None if sw is None else cuda.to_device(sw)
    sw_sum = float(X.shape[0]) if sw is None else float(np.sum(sw, dtype=np.float64))
    params, grad = cuda.device_array(size, dtype), cuda.device_array(size, dtype)
    ws = g.workspace(units, X.shape[0], dtype, gather=False)
    host = np.empty(size, dtype)

    def fun(packed):
        host[:] = packed
        params.copy_to_device(host)
        loss = g.loss_grad(x_d, y_d, sw_d, sw_sum, params, grad, units, w_off, b_off, hidden,
                           output, loss_code, alpha, ws)


        return loss, grad.copy_to_host().astype(np.float64)

    return fun


class _CPUEpochs:
    """Training epochs on the CPU: the fused Numba kernels update ``state["params"]`` in place."""

    def __init__(self, est, state, X_train, y_train, sw_train, validation, batch_size):
        mlp = _kernels()
        self.est, self.state, self.validation = est, state, validation
        units = state["units"]
        w_off, b_off, size = mlp.layout(units)
        hidden, output, loss_code = est._codes(state)
        dtype = state["params"].dtype
        sparse = sp.issparse(X_train)
        if sparse:
            xd = np.zeros((1, 1), dtype)
            data = X_train.data
            indices, indptr = X_train.indices.astype(np.int64), X_train.indptr.astype(np.int64)
        else:
            xd = X_train
            data, indices, indptr = np.zeros(0, dtype), np.zeros(0, np.int64), np.zeros(1, np.int64)
        has_sw = sw_train is not None
        sw = sw_train.astype(dtype) if has_sw else np.ones(1, dtype)
        self.data_args = (xd, data, indices, indptr, sparse, y_train, sw, has_sw)
        self.model_args = (units, w_off, b_off, hidden, output, loss_code)
        self.batch_size = batch_size
        self.solver = mlp.ADAM if est.solver == "adam" else mlp.SGD
        self.grad = np.empty(size, dtype)
        self.xb = np.empty((batch_size, units[0]), dtype)
        self.yb = np.empty((batch_size, units[-1]), dtype)
        self.swb = np.empty(batch_size, dtype)
        self.acts, self.deltas = mlp.workspace(units, batch_size, dtype)
        self.part = mlp.grad_blocks(units, batch_size, dtype)

    def epoch(self, sample_idx, opt):
        """One epoch over ``sample_idx``; returns the sum of batch loss times batch rows."""
        mlp, est = _kernels(), self.est
        size = self.grad.size
        if opt["m"].shape != (size,) or (self.solver == mlp.ADAM and opt["v"].shape != (size,)):
            raise ValueError(f"the optimizer state does not match the {size} parameters of the "
                             "model (a corrupted or foreign file?)")
        total, t = mlp.train_epoch(
            *self.data_args, sample_idx, self.batch_size, self.state["params"], self.grad,
            *self.model_args, float(est.alpha), self.solver, opt["lr"], float(est.momentum),
            bool(est.nesterovs_momentum), float(est.beta_1), float(est.beta_2),
            float(est.epsilon), opt["t"], opt["m"],
            opt["v"] if self.solver == mlp.ADAM else opt["m"],
            self.xb, self.yb, self.swb, self.acts, self.deltas, self.part)
        opt["t"] = t
        return total

    def validation_score(self):
        return self.est._validation_score(self.state, *self.validation)

    def keep_best(self):
        self.state["best_params"] = self.state["params"].copy()

    def params_finite(self):
        return bool(np.isfinite(self.state["params"]).all())

    def finish(self, early_stopping):
        if early_stopping:
            self.state["params"][:] = self.state["best_params"]


class _CUDAEpochs:
    """Training epochs on the GPU (``fastnn._kernels.cuda.mlp``).

    The training and validation data, the parameters and the optimizer's moments move to the
    device once; each epoch uploads the shuffled sample order and reads back one small vector
    (the epoch's loss and, with early stopping, the validation sums computed on the device).
    ``finish`` brings the parameters (the best ones with early stopping) and the moments back.
    Sparse X is densified once on the host: the device keeps a dense copy.
    """

    def __init__(self, est, state, X_train, y_train, sw_train, validation, batch_size):
        from numba import cuda
        g = _cuda_kernels()
        self.est, self.state = est, state
        units = state["units"]
        dtype = state["params"].dtype
        w_off, b_off, size = g.layout(units)
        hidden, output, loss_code = est._codes(state)
        self.model_args = (units, w_off, b_off, hidden, output, loss_code)
        self.batch_size = batch_size
        self.solver = g.ADAM if est.solver == "adam" else g.SGD
        n = X_train.shape[0]
        self.x = cuda.to_device(_dense(X_train, dtype))
        self.y = cuda.to_device(np.ascontiguousarray(y_train, dtype=dtype))
        self.sw = None if sw_train is None else cuda.to_device(sw_train.astype(dtype))
        # each batch's weight sum (float64 of the model-dtype weights, as on the CPU)
        self.sw_host = None if sw_train is None else sw_train.astype(dtype).astype(np.float64)
        self.starts = np.arange(0, n, batch_size)
        self.order = cuda.device_array(n, np.int64)
        self.params = cuda.to_device(state["params"])
        self.grad = cuda.device_array(size, dtype)
        opt = state["optimizer"]
        self.m = cuda.to_device(opt["m"])
        self.v = cuda.to_device(opt["v"]) if self.solver == g.ADAM else self.m
        self.ws = g.workspace(units, batch_size, dtype)
        self.stats = None
        self.val = None
        if validation is not None:
            self._prepare_validation(validation, dtype)

    def _prepare_validation(self, validation, dtype):
        from numba import cuda
        g = _cuda_kernels()
        X_val, y_val, sw_val = validation
        est, state = self.est, self.state
        y_val = np.ascontiguousarray(y_val, dtype=dtype)
        n_val = X_val.shape[0]
        if is_classifier(est):
            task = "multiclass" if state["out_activation"] == "softmax" else "labels"
        else:
            task = "regression"
        sw = None if sw_val is None else sw_val.astype(dtype)
        w64 = None if sw_val is None else np.asarray(sw_val, dtype=np.float64)
        self.val = dict(
            x=cuda.to_device(_dense(X_val, dtype)), y=cuda.to_device(y_val),
            sw=None if sw is None else cuda.to_device(sw),
            sw_sum=float(n_val) if sw is None else float(np.sum(sw, dtype=np.float64)),
            sw64=None if w64 is None else cuda.to_device(w64),
            w64_sum=float(n_val) if w64 is None else float(np.sum(w64)),
            task=task,
            ws=g.workspace(state["units"], n_val, dtype, gather=False, train=False),
            best=cuda.to_device(state["best_params"]))
        if task == "regression":   # the denominators of R^2 do not change during training
            w = 1.0 if w64 is None else w64[:, None]
            yv = y_val.astype(np.float64)
            self.val["ss_tot"] = np.sum(w * (yv - np.average(yv, axis=0, weights=w64)) ** 2,
                                        axis=0)

    def epoch(self, sample_idx, opt):
        """One epoch over ``sample_idx``; returns the sum of batch loss times batch rows."""
        g, est = _cuda_kernels(), self.est
        sample_idx = np.ascontiguousarray(sample_idx, dtype=np.int64)
        self.order.copy_to_device(sample_idx)
        sums = (None if self.sw is None
                else np.add.reduceat(self.sw_host[sample_idx], self.starts))
        opt["t"] = g.train_epoch(
            self.x, self.y, self.sw, sums, self.order, self.batch_size, self.params, self.grad,
            *self.model_args, float(est.alpha), self.solver, opt["lr"], float(est.momentum),
            bool(est.nesterovs_momentum), float(est.beta_1), float(est.beta_2),
            float(est.epsilon), opt["t"], self.m, self.v, self.ws)
        if self.val is not None:
            v = self.val
            units, w_off, b_off, hidden, output, loss_code = self.model_args
            g.validation(v["x"], v["y"], v["sw"], v["sw_sum"], v["sw64"], self.params, units,
                         w_off, b_off, hidden, output, loss_code, v["task"], v["ws"],
                         stats=self.ws.stats)
        self.stats = g.read_stats(self.ws)
        return float(self.stats[g.EPOCH_LOSS])

    def params_finite(self):
        from .._kernels.arrayops import sum_squares
        return math.isfinite(sum_squares(self.params))

    def validation_score(self):
        """(score, loss) on the validation set after the last epoch, as ``_validation_score``."""
        g, s, v = _cuda_kernels(), self.stats, self.val
        val_loss = float(s[g.VAL_LOSS])
        if s[g.VAL_BAD] > 0:
            return np.nan, val_loss
        if v["task"] != "regression":
            return float(s[g.VAL_CORRECT] / v["w64_sum"]), val_loss
        num, den = s[g.VAL_SSE:], v["ss_tot"]
        scores = np.ones(num.size)     # r2_score's rules for constant targets
        valid = (num != 0) & (den != 0)
        scores[valid] = 1 - num[valid] / den[valid]
        scores[(num != 0) & (den == 0)] = 0.0
        return float(np.average(scores)), val_loss

    def keep_best(self):
        self.val["best"].copy_to_device(self.params)

    def finish(self, early_stopping):
        state, opt = self.state, self.state["optimizer"]
        state["params"] = (self.val["best"] if early_stopping else self.params).copy_to_host()
        opt["m"] = self.m.copy_to_host()
        if self.solver == _cuda_kernels().ADAM:
            opt["v"] = self.v.copy_to_host()
