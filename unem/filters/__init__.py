"""Filters over layers: 2D/3D smoothing, and post-processing of predictions into
segmentations (threshold, watershed); their job kinds are in `unem.filters.jobs`."""
