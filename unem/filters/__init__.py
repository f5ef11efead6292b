"""Filters over layers: 2D/3D smoothing, and post-processing of predictions into
segmentations (threshold, watershed); their job kinds are in `unem.filters.jobs`.
The filter catalog (`catalog`: `intensity`, `binary`, `labelling`) and pipelines of its
filters (`pipeline`, `runner`, `layer_runs`, `saved`; job kind in `pipeline_jobs`)."""
