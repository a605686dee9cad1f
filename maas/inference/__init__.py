"""Serving: per model-version runners (dynamic batching over ONNX Runtime / PyTorch) behind an LRU cache."""
