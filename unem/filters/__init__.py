"""Filters over layers: 2D/3D smoothing now; pipelines and post-processing later."""
