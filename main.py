"""Start UNEM: `python main.py` serves the app; `python main.py --help` lists the commands."""

from unem.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
