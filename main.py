"""Start UNEM: `python main.py` serves the app; `python main.py --help` lists the commands."""

import multiprocessing

if __name__ == "__main__":
    # In a frozen bundle a multiprocessing child re-runs this executable: let it be that child.
    multiprocessing.freeze_support()
    from unem.cli import main

    raise SystemExit(main())
