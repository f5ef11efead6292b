"""Models: the `ModelSpec` API (`spec`), the built-in 2D CNNs and their shared blocks.

Importing this package (or a spec module) never imports Keras: the server reads the models'
option schemas, and Keras is imported inside `build`, in worker processes.
"""
