"""Jobs: long computations (pyramids, filters, training, inference, FFN) in worker processes.

A job is a row of the `jobs` table (`table`); its kind — a function, an options schema and
a resource class — is registered like a plugin (`kinds`). A runner in the server starts
one worker subprocess per job (`runner`, `processes`); the worker (`worker`) runs the kind's
function and reports progress as JSON lines (`protocol`, `context`). Cancel, recovery after
a crash and the command line share `control`. TensorBoard runs beside it (`tensorboard`).
Nothing here imports the web framework.
"""
