"""Tests of ``fastnn.sklearn``: the MLP drop-ins, the NeuralNet estimators, their files and ONNX."""
