"""The WaveMAE online service: FastAPI + ONNX Runtime, no torch."""

__version__ = "0.1.0"
