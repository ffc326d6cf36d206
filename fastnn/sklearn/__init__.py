"""scikit-learn estimators.

``MLPClassifier`` / ``MLPRegressor`` are drop-in replacements for scikit-learn's: the same
parameters, defaults, fitted attributes and algorithm (initialisation, batch order, Adam and
Nesterov-SGD updates, L-BFGS through SciPy, stopping rules), run by fused Numba kernels that
train a whole epoch per call, or by their numba.cuda twin on a GPU. Extra parameters: ``dtype``
(float32 by default; float64 reproduces scikit-learn to rounding), ``device`` and, for the
classifier, ``class_weight``; validation loss is recorded beside the validation score.
"""
from ._mlp import MLPClassifier, MLPRegressor
from ._neuralnet import NeuralNetClassifier, NeuralNetRegressor
from ._state import attach as _attach

__all__ = ["MLPClassifier", "MLPRegressor", "NeuralNetClassifier", "NeuralNetRegressor"]

for _cls in (MLPClassifier, MLPRegressor, NeuralNetClassifier, NeuralNetRegressor):
    _cls.__module__ = __name__  # saved files and pickles name fastnn.sklearn.<Class>
_attach()
del _cls, _attach
