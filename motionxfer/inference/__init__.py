"""Running a trained model: backends (PyTorch, ONNX Runtime), ONNX export, the overlapped
pipeline, transfer, preview and the speed benchmark."""
