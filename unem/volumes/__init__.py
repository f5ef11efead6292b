"""Volumes: stack import/export, the chunked multi-resolution store, datasets and layers."""
