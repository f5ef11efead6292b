"""The command line: `python main.py [serve]`, `import`, `export`, `datasets`, `users`, `demo`,
`jobs`.

Flags of `serve` are generated from `unem.config.SETTINGS`, so every setting is also a flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from unem import auth
from unem.config import SETTINGS, Settings, env_name, load_settings
from unem.errors import UnemError
from unem.progress import Progress
from unem.workspace import Workspace

if TYPE_CHECKING:
    from unem.jobs.table import Job
    from unem.volumes.datasets import Dataset

COMMANDS = ("serve", "import", "export", "datasets", "users", "demo", "jobs")
LAYER_FLAGS = ("segmentation", "groundtruth", "prediction")


def add_setting_flags(
    parser: argparse.ArgumentParser, names: Sequence[str] | None = None, default: Any = None
) -> None:
    """One flag per setting, with the setting's help and its environment variable.

    Actions (`datasets list`, `users add`) repeat their command's flags with
    `default=argparse.SUPPRESS`, so `datasets list --workspace W` works and a flag given
    before the action is not reset by the action's default.
    """
    parser.add_argument(
        "--config", type=Path, default=default, help="a unem.toml file to read settings from"
    )
    for f in SETTINGS:
        if names is None or f.name in names:
            flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
            parser.add_argument(flag, dest=f.name, default=default, **flag_options(f))


def flag_options(f: dataclasses.Field[Any]) -> dict[str, Any]:
    help_text = f"{f.metadata['help']} (env {env_name(f.name)})"
    if isinstance(f.default, bool):
        return {"action": "store_const", "const": not f.default, "help": help_text}
    if isinstance(f.default, tuple):
        return {"action": "append", "type": Path, "metavar": "DIR",
                "help": help_text + "; repeat for several"}  # fmt: skip
    return {"type": type(f.default), "help": f"{help_text}; default {f.default}"}


def add_action(actions: Any, name: str, help: str) -> argparse.ArgumentParser:
    """A sub-action parser that also takes `--workspace` after the action's name."""
    parser: argparse.ArgumentParser = actions.add_parser(name, help=help)
    add_setting_flags(parser, ["workspace"], default=argparse.SUPPRESS)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py",
        description=(
            "UNEM: segment EM volumes with deep learning and proofread them in the browser."
        ),
    )
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="start the server and open the browser (default)")
    add_setting_flags(serve)
    add_import_parser(commands)
    add_export_parser(commands)
    add_datasets_parser(commands)
    add_users_parser(commands)
    demo = commands.add_parser("demo", help="create the generated demo dataset")
    add_setting_flags(demo, ["workspace"])
    add_jobs_parser(commands)
    return parser


def add_import_parser(commands: Any) -> None:
    parser = commands.add_parser("import", help="import an image stack (and labels) as a dataset")
    add_setting_flags(parser, ["workspace"])
    parser.add_argument("name", help="name of the new dataset")
    parser.add_argument(
        "image",
        type=Path,
        help="folder of PNG/TIFF/JPEG slices, multi-page TIFF, HDF5, NPY/NPZ or Zarr",
    )
    parser.add_argument("--key", help="array name inside an HDF5/NPZ/Zarr image file")
    for layer in LAYER_FLAGS:
        parser.add_argument(f"--{layer}", type=Path, help=f"{layer} stack, same size as the image")
        parser.add_argument(f"--{layer}-key", help=f"array name inside the {layer} file")
    parser.add_argument(
        "--voxel-size",
        type=float,
        nargs=3,
        metavar=("Z", "Y", "X"),
        default=(1.0, 1.0, 1.0),
        help="voxel size in nm (default 1 1 1)",
    )


def add_export_parser(commands: Any) -> None:
    from unem.volumes.export import FORMATS

    parser = commands.add_parser("export", help="export a layer of a dataset to files")
    add_setting_flags(parser, ["workspace"])
    parser.add_argument("dataset", help="dataset id (see `datasets list`)")
    parser.add_argument("layer", help="layer name: image, segmentation, groundtruth, prediction")
    parser.add_argument("out", type=Path, help="file or folder to create")
    parser.add_argument(
        "--format",
        choices=sorted(FORMATS),
        default="tiff-multipage",
        help="; ".join(f"{k}: {v}" for k, v in FORMATS.items()),
    )


def add_datasets_parser(commands: Any) -> None:
    parser = commands.add_parser("datasets", help="list, show, rename or delete datasets")
    add_setting_flags(parser, ["workspace"])
    actions = parser.add_subparsers(dest="action")
    add_action(actions, "list", "list datasets (default)")
    for action in ("show", "delete"):
        add_action(actions, action, f"{action} a dataset").add_argument("dataset")
    rename = add_action(actions, "rename", "give a dataset a new display name")
    rename.add_argument("dataset")
    rename.add_argument("name")


def add_users_parser(commands: Any) -> None:
    parser = commands.add_parser("users", help="manage user accounts")
    add_setting_flags(parser, ["workspace"])
    actions = parser.add_subparsers(dest="action")
    add_action(actions, "list", "list users (default)")
    add = add_action(actions, "add", "add a user (asks for the password)")
    add.add_argument("name")
    add.add_argument("--role", choices=auth.ROLES, default="proofreader")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    passwd = add_action(actions, "passwd", "set a user's password")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    role = add_action(actions, "role", "change a user's role")
    role.add_argument("name")
    role.add_argument("role", choices=auth.ROLES)
    add_action(actions, "remove", "delete a user").add_argument("name")


def add_jobs_parser(commands: Any) -> None:
    parser = commands.add_parser("jobs", help="list, show, cancel jobs or print their logs")
    add_setting_flags(parser, ["workspace"])
    actions = parser.add_subparsers(dest="action")
    listing = add_action(actions, "list", "list jobs, newest first (default)")
    listing.add_argument("--state", action="append", help="only jobs in this state; repeat")
    add_action(actions, "show", "show a job").add_argument("job", type=int)
    add_action(actions, "cancel", "cancel a queued or running job").add_argument("job", type=int)
    log = add_action(actions, "log", "print a job's log")
    log.add_argument("job", type=int)
    log.add_argument("--tail", type=int, metavar="N", help="only the last N lines")


def settings_from(args: argparse.Namespace) -> Settings:
    cli = {f.name: getattr(args, f.name, None) for f in SETTINGS}
    roots = cli.get("import_roots")
    if roots is not None:
        cli["import_roots"] = [str(p) for p in roots]
    return load_settings(cli, config_file=getattr(args, "config", None))


def workspace_from(args: argparse.Namespace) -> Workspace:
    settings = settings_from(args)
    return Workspace(settings.workspace, settings.import_roots)


class Bar:
    """A tqdm progress bar as a Progress callback."""

    def __init__(self, description: str) -> None:
        self.bar = tqdm(desc=description, unit="slice", file=sys.stderr)

    def __call__(self, step: int, total: int, message: str = "") -> None:
        self.bar.total = total
        self.bar.n = step
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def with_bar(description: str, work: Callable[[Progress], Any]) -> Any:
    bar = Bar(description)
    try:
        return work(bar)
    finally:
        bar.close()


def run_import(args: argparse.Namespace) -> int:
    from unem.volumes.datasets import check_shapes, import_dataset
    from unem.volumes.sources import open_source

    # Every source is opened and checked before the workspace is touched (or created).
    sources = {"image": open_source(args.image, args.key)}
    for layer in LAYER_FLAGS:
        path = getattr(args, layer)
        if path is not None:
            sources[layer] = open_source(path, getattr(args, f"{layer}_key"))
    check_shapes(sources)
    ws = workspace_from(args)
    dataset = with_bar(
        f"import {args.name}",
        lambda bar: import_dataset(
            ws, args.name, sources, args.voxel_size, user=getpass.getuser(), progress=bar
        ),
    )
    index_for_proofreading(ws, dataset.id)
    print(f"Imported {dataset.name!r} as dataset {dataset.id} {tuple(dataset.shape)}")
    return 0


def index_for_proofreading(ws: Workspace, dataset_id: str) -> None:
    from unem.proofread.edits import prepare_for_proofreading

    with_bar("index segmentation", lambda bar: prepare_for_proofreading(ws, dataset_id, bar))


def run_export(args: argparse.Namespace) -> int:
    from unem.proofread.exporting import export_current

    ws = workspace_from(args)
    target = with_bar(
        f"export {args.dataset}/{args.layer}",
        lambda bar: export_current(ws, args.dataset, args.layer, args.format,
                                   args.out.resolve(), bar),
    )
    print(f"Wrote {target}")
    return 0


def run_datasets(args: argparse.Namespace) -> int:
    from unem.volumes import datasets

    ws = workspace_from(args)
    if args.action == "show":
        print_dataset(datasets.get_dataset(ws, args.dataset))
    elif args.action == "delete":
        datasets.delete_dataset(ws, args.dataset)
        print(f"Deleted dataset {args.dataset}")
    elif args.action == "rename":
        dataset = datasets.rename_dataset(ws, args.dataset, args.name)
        print(f"Renamed dataset {dataset.id} to {dataset.name!r}")
    else:
        for dataset in datasets.list_datasets(ws):
            shape = "×".join(str(s) for s in dataset.shape)
            layers = ", ".join(dataset.layers)
            print(f"{dataset.id:24} {dataset.name:30} {shape:16} {layers}")
    return 0


def print_dataset(dataset: Dataset) -> None:
    info = dataset.to_json()
    for key in ("id", "name", "shape", "voxel_size", "source", "created_at", "created_by"):
        print(f"{key:12} {info[key]}")
    for layer in dataset.layers.values():
        levels = "  ".join("×".join(map(str, level.shape)) for level in layer.levels)
        print(f"layer        {layer.name:14} {layer.kind:14} {layer.dtype:8} levels {levels}")


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass("Password: ")
    if password != getpass.getpass("Again: "):
        raise UnemError("The two passwords differ.")
    return password


def run_users(args: argparse.Namespace) -> int:
    db = workspace_from(args).db
    if args.action == "add":
        user = auth.create_user(db, args.name, args.role, read_password(args.password_stdin))
        print(f"Added {user.name} ({user.role})")
    elif args.action == "passwd":
        auth.set_password(db, args.name, read_password(args.password_stdin))
        print(f"Changed the password of {args.name}")
    elif args.action == "role":
        user = auth.set_role(db, args.name, args.role)
        print(f"{user.name} is now {user.role}")
    elif args.action == "remove":
        auth.delete_user(db, args.name)
        print(f"Removed {args.name}")
    else:
        for user in auth.list_users(db):
            print(f"{user.name:24} {user.role}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from unem.demo import create_demo_dataset

    ws = workspace_from(args)
    dataset = with_bar("demo", lambda bar: create_demo_dataset(ws, progress=bar))
    index_for_proofreading(ws, dataset.id)
    print(f"Created dataset {dataset.id}")
    return 0


def run_jobs(args: argparse.Namespace) -> int:
    from unem.jobs import control, table

    ws = workspace_from(args)
    if args.action == "show":
        print_job(table.get_job(ws.db, args.job))
    elif args.action == "cancel":
        job = control.cancel_job(ws, args.job, settle=1.0)  # a server records it sooner
        print(f"Job {job.id} is {job.state}")
    elif args.action == "log":
        path = ws.root / table.get_job(ws.db, args.job).log_path
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        if lines:
            print("\n".join(lines[-args.tail :] if args.tail else lines))
    else:
        for job in table.list_jobs(ws.db, getattr(args, "state", None)):
            done = f"{job.step}/{job.total}" if job.total else ""
            print(f"{job.id:5} {job.state:11} {job.kind:12} {done:>11} {job.user:10} {job.title}")
    return 0


def print_job(job: Job) -> None:
    info = job.to_json()
    keys = ("id", "kind", "title", "state", "user", "created_at", "started_at", "finished_at",
            "step", "total", "message", "metrics", "eta_seconds", "options", "result",
            "exit_code", "error", "attempts")  # fmt: skip
    for key in keys:
        if info[key] not in (None, "", {}):
            print(f"{key:12} {info[key]}")
    for line in info["last_lines"]:
        print(f"{'last line':12} {line}")


def run_module(argv: list[str]) -> int:
    """`--run-module MODULE ARGS`: what `python -m` does, for a frozen bundle's workers."""
    import runpy

    from unem.jobs.processes import RUNNABLE_MODULES

    if not argv or argv[0] not in RUNNABLE_MODULES:
        print(f"error: --run-module takes one of {', '.join(RUNNABLE_MODULES)}", file=sys.stderr)
        return 2
    sys.argv = [argv[0], *argv[1:]]
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from unem.web.server import serve

    return serve(settings_from(args))


RUNNERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": run_serve,
    "import": run_import,
    "export": run_export,
    "datasets": run_datasets,
    "users": run_users,
    "demo": run_demo,
    "jobs": run_jobs,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--run-module"]:
        return run_module(argv[1:])
    if not argv or (argv[0] not in COMMANDS and argv[0] not in {"-h", "--help"}):
        argv.insert(0, "serve")  # serve is the default command
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return RUNNERS[args.command](args)
    except UnemError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    except OSError as error:  # a file the user named cannot be read or written
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
