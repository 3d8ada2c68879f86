"""Using a trained model: face detection, segmenting masks on whole photos, export (ONNX, folders)."""
