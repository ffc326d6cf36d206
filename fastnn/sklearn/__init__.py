"""scikit-learn estimators.

``MLPClassifier`` / ``MLPRegressor`` are drop-in replacements for scikit-learn's: the same
parameters, defaults, fitted attributes and algorithm (initialisation, batch order, Adam and
Nesterov-SGD updates, L-BFGS through SciPy, stopping rules), run by fused Numba kernels that
train a whole epoch per call, or by their numba.cuda twin on a GPU. Extra parameters: ``dtype``
(None by default: X's float dtype, as scikit-learn; ``np.float32`` forces float32 for speed),
``device`` and, for the
classifier, ``class_weight``; validation loss is recorded beside the validation score.

``register_onnx_converters()`` lets skl2onnx export the two MLPs, and the NeuralNet estimators
of dense layers (graphs included), to ONNX (the ``onnx`` extra); it runs by itself here when
skl2onnx is already imported.
"""
import sys as _sys

from ._mlp import MLPClassifier, MLPRegressor
from ._neuralnet import NeuralNetClassifier, NeuralNetRegressor
from ._onnx import register_onnx_converters
from ._state import attach as _attach

__all__ = ["MLPClassifier", "MLPRegressor", "NeuralNetClassifier", "NeuralNetRegressor",
           "register_onnx_converters"]

for _cls in (MLPClassifier, MLPRegressor, NeuralNetClassifier, NeuralNetRegressor):
    _cls.__module__ = __name__  # saved files and pickles name fastnn.sklearn.<Class>
_attach()
del _cls, _attach
if "skl2onnx" in _sys.modules:  # never imported from here: import fastnn.sklearn stays light
    from ._onnx import _register_if_loaded
    _register_if_loaded()
    del _register_if_loaded
del _sys
