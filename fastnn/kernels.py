"""fastnn's jitted kernels, callable directly.

Each function dispatches on its input: NumPy arrays run the Numba CPU kernel, CUDA arrays (numba
device arrays or anything with ``__cuda_array_interface__``) run the numba.cuda kernel and return
device arrays. ``fastnn.kernels.cpu`` and ``fastnn.kernels.cuda`` pick a backend explicitly
(inputs are copied to it). Semantics follow ``torch.nn.functional`` and ``torch.optim``.

Names resolve lazily, so ``import fastnn.kernels`` loads no Numba code until a kernel is used.
"""
import functools
import importlib
import types

_FAMILIES = {
    "conv": ("conv2d", "conv2d_backward", "conv1d", "conv1d_backward",
             "conv_transpose2d", "conv_transpose2d_backward"),
    "pool": ("max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
             "max_pool1d", "max_pool1d_backward", "avg_pool1d", "avg_pool1d_backward",
             "global_avg_pool2d", "global_avg_pool2d_backward",
             "global_avg_pool1d", "global_avg_pool1d_backward",
             "global_max_pool2d", "global_max_pool2d_backward",
             "global_max_pool1d", "global_max_pool1d_backward",
             "stochastic_pool2d", "stochastic_pool2d_backward"),
    "activation": ("relu", "relu_backward", "leaky_relu", "leaky_relu_backward",
                   "elu", "elu_backward", "sigmoid", "sigmoid_backward", "tanh", "tanh_backward",
                   "gelu", "gelu_backward", "prelu", "prelu_backward",
                   "softmax", "softmax_backward", "log_softmax", "log_softmax_backward"),
    "linear": ("linear", "linear_backward"),
    "loss": ("softmax_cross_entropy", "binary_cross_entropy_with_logits", "mse_loss"),
    "norm": ("batch_norm", "batch_norm_backward"),
    "layernorm": ("layer_norm", "layer_norm_backward"),
    "embedding": ("embedding", "embedding_backward"),
    "dropout": ("dropout", "dropout_backward"),
    "optim": ("sgd_step", "adam_step", "rmsprop_step", "adagrad_step"),
    "rnn": ("rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward", "gru_forward",
            "gru_backward"),
}
_FAMILY_OF = {name: family for family, names in _FAMILIES.items() for name in names}
# Who owns the CPU cores (fastnn._kernels.cpu._threads): thread count, and the scope in which
# BLAS runs on one thread and Numba's pool does the parallel work.
_THREADS = ("set_num_threads", "get_num_threads", "cpu_work", "cpu_bound")
# What the CPU kernels are compiled for: instruction set, register tiles (fastnn._kernels.cpu._isa).
_TARGET = ("cpu_target",)
# Output arrays reused across training steps (fastnn._kernels.cpu._workspace).
_WORKSPACE = ("reuse_buffers",)
# fastnn's caching CUDA allocator (fastnn._kernels.cuda._alloc): its counters, releasing what it
# caches, its bound.
_CUDA_MEMORY = ("cuda_cache_info", "empty_cuda_cache", "set_cuda_cache_limit")
# Checks the kernels make, for callers that check once and then call with checks off
# (fastnn._kernels.loss).
_CHECKS = ("check_class_indices",)
# The warning of the kernel cache (fastnn._kernels.cpu._cache): a damaged entry repaired, or a
# folder that cannot be written (kernels compile in memory).
_CACHE = ("KernelCacheWarning",)
__all__ = (sorted(_FAMILY_OF) + list(_THREADS) + list(_TARGET) + list(_WORKSPACE) + list(_CUDA_MEMORY)
           + list(_CHECKS) + list(_CACHE) + ["cpu", "cuda"])


def _public(name):
    module = importlib.import_module(f"fastnn._kernels.{_FAMILY_OF[name]}")
    return getattr(module, name)


def _on_backend(backend, fn):
    from ._kernels._dispatch import forced_backend

    @functools.wraps(fn)
    def call(*args, **kwargs):
        with forced_backend(backend):
            return fn(*args, **kwargs)
    call.__doc__ = f"{fn.__doc__ or ''}\n\nRuns on the {backend.upper()} backend (inputs copied there)."
    return call


class _BackendNamespace(types.ModuleType):
    """``fastnn.kernels.cpu`` / ``fastnn.kernels.cuda``: every kernel, pinned to one backend."""

    def __init__(self, backend):
        super().__init__(f"fastnn.kernels.{backend}")
        self._backend = backend
        self.__all__ = sorted(_FAMILY_OF)

    def __getattr__(self, name):
        if name not in _FAMILY_OF:
            raise AttributeError(f"fastnn.kernels.{self._backend} has no kernel {name!r}")
        fn = _on_backend(self._backend, _public(name))
        setattr(self, name, fn)
        return fn

    def __dir__(self):
        return self.__all__


# The modules that hold the public names beyond the kernels, imported when a name is first used.
_HOMES = ((_THREADS, "fastnn._kernels.cpu._threads"), (_TARGET, "fastnn._kernels.cpu._isa"),
          (_WORKSPACE, "fastnn._kernels.cpu._workspace"),
          (_CUDA_MEMORY, "fastnn._kernels.cuda._alloc"), (_CHECKS, "fastnn._kernels.loss"),
          (_CACHE, "fastnn._kernels.cpu._cache"))


def __getattr__(name):
    if name in ("cpu", "cuda"):
        ns = _BackendNamespace(name)
    elif name in _FAMILY_OF:
        ns = _public(name)
    else:
        home = next((module for names, module in _HOMES if name in names), None)
        if home is None:
            raise AttributeError(f"module 'fastnn.kernels' has no attribute {name!r}")
        ns = getattr(importlib.import_module(home), name)
    globals()[name] = ns
    return ns


def __dir__():
    return __all__
