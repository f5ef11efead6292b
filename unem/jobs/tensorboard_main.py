"""TensorBoard's entry point without TensorFlow: `python -m unem.jobs.tensorboard_main ARGS`.

TensorBoard imports TensorFlow when it is installed (seconds of start-up, hundreds of MiB)
only to read files; its own stub reads local event files as well. The marker module
`tensorboard.compat.notf` is how TensorBoard's builds ask for the stub.
"""

from __future__ import annotations

import sys
import types


def main() -> None:
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from tensorboard.main import run_main

    run_main()


if __name__ == "__main__":
    main()
