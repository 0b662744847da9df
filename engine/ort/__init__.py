"""The ONNX Runtime half of the engine: feature extractor and step sessions, providers, Winograd,
graph helpers. Nothing here imports TensorFlow, so it runs where only onnxruntime(-gpu), numpy and
Pillow are installed (a GPU machine fed exported models)."""
