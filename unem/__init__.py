"""UNEM: segment electron-microscopy volumes with deep learning and proofread them together."""

__version__ = "0.1.0"
