"""mlc: turn a trained model into the fastest verified ONNX for a target, serve it, and size it."""

__version__ = "0.1.0"
