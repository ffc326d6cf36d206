"""Layers with forward/backward, Sequential, losses, optimizers, schedules and a training loop.

Importing ``fastnn.nn`` loads no Numba code; kernels compile when a layer first runs.
"""
from . import init, losses, optimizers, schedules
from ._array import to_device, to_host
from .base import FlatBuffer, Layer, Parameter, parameter_count
from .sequential import Sequential
from .layers import (ELU, GELU, PReLU, AvgPool1D, AvgPool2D, BatchNorm, Conv1D, Conv2D,
                     Conv2DTranspose, Dense, Dropout, Flatten, GlobalAvgPool2D, LeakyReLU,
                     MaxPool1D, MaxPool2D, ReLU, Reshape, Sigmoid, Softmax, StochasticPool2D, Tanh)
from .losses import BinaryCrossEntropyLoss, CrossEntropyLoss, Loss, MSELoss, l2_penalty
from .optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop, clip_grad_norm
from .schedules import (Constant, CosineAnnealing, ExponentialDecay, InverseScaling,
                        ReduceOnPlateau, StepDecay)
from .recurrent import GRU, LSTM, SimpleRNN
from .layers import Embedding, LayerNorm
from .recurrent import Bidirectional
from .layers import GlobalAvgPool1D, GlobalMaxPool1D, GlobalMaxPool2D
from .graph import Branches, Columns, Residual
from .summary import summary
from .augment import Compose, RandomFlip, RandomShift
from .callbacks import Callback, EarlyStopping, LambdaCallback
from .history import History
from .inference import evaluate, predict
from .training import DivergenceError, fit
from .checkpoint import ModelCheckpoint

__all__ = [
    "FlatBuffer", "Layer", "Parameter", "Sequential", "parameter_count",
    "Dense", "Conv1D", "Conv2D", "Conv2DTranspose", "MaxPool1D", "MaxPool2D", "AvgPool1D",
    "AvgPool2D", "StochasticPool2D", "GlobalAvgPool2D", "Flatten", "Reshape", "Dropout",
    "BatchNorm", "ReLU", "LeakyReLU", "PReLU", "ELU", "Sigmoid", "Tanh", "GELU", "Softmax",
    "Embedding", "LayerNorm",
    "SimpleRNN", "LSTM", "GRU", "Bidirectional",
    "GlobalAvgPool1D", "GlobalMaxPool1D", "GlobalMaxPool2D",
    "Residual", "Branches", "Columns", "summary",
    "Loss", "CrossEntropyLoss", "BinaryCrossEntropyLoss", "MSELoss", "l2_penalty",
    "Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "clip_grad_norm",
    "Constant", "StepDecay", "ExponentialDecay", "InverseScaling", "CosineAnnealing",
    "ReduceOnPlateau",
    "fit", "evaluate", "predict", "History", "Callback", "LambdaCallback", "EarlyStopping",
    "ModelCheckpoint", "RandomShift", "RandomFlip", "Compose", "DivergenceError",
    "init", "losses", "optimizers", "schedules", "to_device", "to_host",
]
