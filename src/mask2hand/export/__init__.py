"""Files for other tools: meshes and JSON (`files`), figures (`figures`, `gallery`) and the ONNX
export (`onnx`)."""
