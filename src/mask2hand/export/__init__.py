"""Files for other tools: meshes and JSON (`files`), figures (`figures`, `gallery`, `animation`), MANO
parameters for smplx (`mano`) and the ONNX export (`onnx`)."""
