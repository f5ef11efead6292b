"""Proofreading: fragments and mapping, the edit log, the tools, undo/redo, locks, marks.

Pure functions and classes over the workspace database and the Zarr store; the Dojo
web layer only parses requests and calls into here.
"""
