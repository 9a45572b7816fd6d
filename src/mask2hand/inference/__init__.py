"""Using a trained model: the `Mask2Hand` API and its `Prediction`, the network runners (torch,
ONNX), input preparation and cameras, fitting inside predict, sequences and smoothing."""
