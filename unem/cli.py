"""The command line: `python main.py [serve]`, `import`, `export`, `datasets`, `users`, `demo`,
`jobs`, `train`, `infer`, `run`, `models`, `ffn`.

Flags of `serve` are generated from `unem.config.SETTINGS`, so every setting is also a flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
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

COMMANDS = (
    "serve", "import", "export", "datasets", "users", "demo", "jobs", "train", "infer", "run",
    "models", "ffn",
)  # fmt: skip
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
    add_job_parsers(commands)
    add_models_parser(commands)
    add_ffn_parser(commands)
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
    from unem.volumes.export import DTYPES, FORMATS

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
    parser.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default=None,
        help="convert (default: as stored); " + "; ".join(f"{k}: {v}" for k, v in DTYPES.items()),
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


def add_option_flags(parser: argparse.ArgumentParser, what: str = "job") -> None:
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"a {what} option (VALUE read as JSON when it parses, e.g. steps=500, "
        "augment.elastic=0.5, slices='\"0-19\"'); repeat for several",
    )


def add_job_parsers(commands: Any) -> None:
    train = commands.add_parser("train", help="train a 2D CNN on a dataset's labels (a job)")
    add_setting_flags(train, ["workspace", "plugins"])
    train.add_argument("dataset", help="dataset id (see `datasets list`)")
    train.add_argument("--model", default="unet", help="model to train (see `models list`)")
    train.add_argument("--label-layer", default="segmentation", help="layer of labels")
    train.add_argument("--name", default="", help="name of the trained model in the workspace")
    add_option_flags(train, "training")
    train.add_argument(
        "--model-set",
        dest="model_settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the model (e.g. depth=3); repeat for several",
    )
    infer = commands.add_parser("infer", help="predict a dataset with a trained model (a job)")
    add_setting_flags(infer, ["workspace", "plugins"])
    infer.add_argument(
        "--model", required=True, help="trained model: its name, or a .keras file to import"
    )
    infer.add_argument("--dataset", required=True, help="dataset id (see `datasets list`)")
    infer.add_argument("--output", default="prediction", help="name of the prediction layer")
    add_option_flags(infer, "inference")
    run = commands.add_parser("run", help="run a job of any kind and wait for it")
    add_setting_flags(run, ["workspace", "plugins"])
    run.add_argument("kind", help="job kind (the jobs page lists them)")
    add_option_flags(run)


def add_models_parser(commands: Any) -> None:
    parser = commands.add_parser("models", help="list models to train and trained models")
    add_setting_flags(parser, ["workspace", "plugins"])
    actions = parser.add_subparsers(dest="action")
    add_action(actions, "list", "models that can be trained, plugins included")
    add_action(actions, "trained", "trained models in the workspace")
    export = add_action(actions, "export", "export a trained model (keras, savedmodel or onnx)")
    export.add_argument("name", help="trained model name")
    export.add_argument("--format", choices=("keras", "savedmodel", "onnx"), default="onnx")


def add_ffn_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "ffn", help="flood-filling networks: prepare, train, segment (jobs), list"
    )
    add_setting_flags(parser, ["workspace", "plugins"])
    actions = parser.add_subparsers(dest="action")
    add_action(actions, "list", "presets, preparations and trained FFN models (default)")
    preset_help = "model size preset (`ffn list` shows them)"
    prep = add_action(actions, "prep", "prepare training data from instance labels (ffn-prep)")
    prep.add_argument("dataset", help="dataset id (see `datasets list`)")
    prep.add_argument("--image-layer", default="image", help="layer of EM images")
    prep.add_argument("--label-layer", default="groundtruth", help="layer of instance labels")
    prep.add_argument("--preset", help=f"{preset_help}; default: the job's")
    prep.add_argument("--name", default="", help="name of the preparation")
    add_option_flags(prep, "preparation")
    train = add_action(actions, "train", "train an FFN on a preparation (an ffn-train job)")
    train.add_argument("preparation", help="preparation name (see `ffn list`)")
    train.add_argument("--preset", help=f"{preset_help}; default: the preparation's geometry")
    train.add_argument("--name", default="", help="name of the trained model in the workspace")
    add_option_flags(train, "training")
    infer = add_action(actions, "infer", "segment a dataset with a trained FFN (ffn-infer)")
    infer.add_argument("--model", required=True, help="trained FFN model (see `ffn list`)")
    infer.add_argument("--dataset", required=True, help="dataset id (see `datasets list`)")
    infer.add_argument(
        "--output", help="layer to write (default: replace the segmentation, kept as a layer)"
    )
    add_option_flags(infer, "inference")


def parse_settings(pairs: Sequence[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs as a (nested, for dotted keys) dict; values are JSON when they parse."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UnemError(f"--set {pair!r}: write KEY=VALUE.")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        *parents, leaf = key.split(".")
        target = options
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return options


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
        lambda bar: export_current(
            ws, args.dataset, args.layer, args.format, args.out.resolve(), bar, args.dtype
        ),
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


def run_job_here(args: argparse.Namespace, kind: str, options: dict[str, Any]) -> int:
    """Run a job in a worker process, with a progress bar; 0 if it succeeded."""
    from unem.jobs.foreground import run_in_foreground

    settings = settings_from(args)
    ws = Workspace(settings.workspace, settings.import_roots)
    bar = tqdm(desc=kind, file=sys.stderr)

    def watch(job: Job) -> None:
        if job.total:
            bar.total, bar.n = job.total, job.step
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in (job.metrics or {}).items())
        bar.set_postfix_str(metrics or job.message, refresh=True)

    try:
        job = run_in_foreground(ws, kind, options, getpass.getuser(), settings.plugins, watch)
    finally:
        bar.close()
    print(f"Job {job.id} {job.state}" + (f": {job.error}" if job.error else ""))
    if job.state == "interrupted":
        print(f"Resume it from the jobs page, or cancel it: main.py jobs cancel {job.id}")
    if job.result is not None:
        print(json.dumps(job.result, indent=2))
    return 0 if job.state == "done" else 1


def run_train(args: argparse.Namespace) -> int:
    options = {
        "dataset": args.dataset,
        "model": args.model,
        "label_layer": args.label_layer,
        "output": args.name,
        **parse_settings(args.settings),
        "model_options": parse_settings(args.model_settings),
    }
    return run_job_here(args, "train2d", options)


def run_infer(args: argparse.Namespace) -> int:
    model = args.model
    if model.endswith(".keras") and Path(model).is_file():
        from unem.train2d.trained import import_model_file

        model = import_model_file(workspace_from(args), Path(model).resolve()).name
        print(f"Imported {args.model} as trained model {model}")
    options = {"model": model, "dataset": args.dataset, "output": args.output}
    return run_job_here(args, "infer2d", {**options, **parse_settings(args.settings)})


def run_any_job(args: argparse.Namespace) -> int:
    return run_job_here(args, args.kind, parse_settings(args.settings))


def run_models(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.action == "export":
        return run_job_here(args, "export2d", {"model": args.name, "format": args.format})
    if args.action == "trained":
        from unem.train2d.trained import list_trained_models

        for trained in list_trained_models(Workspace(settings.workspace)):
            scores = ", ".join(f"{k} {v}" for k, v in trained.info.get("validation", {}).items())
            print(f"{trained.name:28} {trained.info.get('model', '?'):10} {scores}")
        return 0
    from unem.plugins import discover_models, plugin_paths

    registry = discover_models(plugin_paths(settings.plugins, settings.workspace))
    for spec in registry.models.values():
        print(f"{spec.name:16} {spec.title}")
    for broken in registry.broken:
        print(f"broken plugin {broken.source}: {broken.error}")
    return 0


def run_ffn(args: argparse.Namespace) -> int:
    settings = parse_settings(getattr(args, "settings", []))
    if args.action == "prep":
        options = {"dataset": args.dataset, "image_layer": args.image_layer,
                   "label_layer": args.label_layer, "name": args.name}  # fmt: skip
        preset = {"preset": args.preset} if args.preset else {}
        return run_job_here(args, "ffn-prep", {**options, **preset, **settings})
    if args.action == "train":
        return run_job_here(args, "ffn-train", {**ffn_train_options(args), **settings})
    if args.action == "infer":
        options = {"model": args.model, "dataset": args.dataset}
        output = {"output": args.output} if args.output else {}
        return run_job_here(args, "ffn-infer", {**options, **output, **settings})
    return print_ffn_catalog(workspace_from(args))


def ffn_train_options(args: argparse.Namespace) -> dict[str, Any]:
    """The preparation, its geometry unless a preset is named, and the model's name."""
    options: dict[str, Any] = {"preparation": args.preparation, "output": args.name}
    if args.preset:
        return {**options, "preset": args.preset}
    from unem.ffn.catalog import training_geometry
    from unem.ffn.prep import get_preparation

    preparation = get_preparation(workspace_from(args), args.preparation)
    return {**options, **training_geometry(preparation)}


def print_ffn_catalog(ws: Workspace) -> int:
    from unem.ffn.catalog import list_ffn_models_json, list_preparations_json
    from unem.ffn.options import PRESETS

    def zyx(values: Sequence[int]) -> str:
        return "×".join(str(v) for v in values)

    print("presets: FOV z×y×x, deltas, depth, features")
    for name, preset in PRESETS.items():
        geometry = f"{zyx(preset.fov):9} {zyx(preset.deltas):7}"
        print(f"  {name:14} {geometry} {preset.depth:3} {preset.features:4}")
    print("preparations: data, preset, FOV, training centres, created")
    for prep in list_preparations_json(ws):
        data = f"{prep['dataset']}/{prep['label_layer']}"
        print(f"  {prep['name']:28} {data:28} {prep['preset']:14} {zyx(prep['fov']):9}", end="")
        print(f" {prep['coordinates']:>9}  {prep['created_at']}")
    print("trained FFN models: preset, FOV, steps, preparation")
    for model in list_ffn_models_json(ws):
        preset, steps = model.get("preset", "?"), model.get("steps", "?")
        print(f"  {model['name']:28} {preset:14} {zyx(model['fov']):9} {steps:>7}", end="")
        print(f"  {model.get('preparation', '')}")
    return 0


RUNNERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": run_serve,
    "import": run_import,
    "export": run_export,
    "datasets": run_datasets,
    "users": run_users,
    "demo": run_demo,
    "jobs": run_jobs,
    "train": run_train,
    "infer": run_infer,
    "run": run_any_job,
    "models": run_models,
    "ffn": run_ffn,
}


def use_spawn() -> None:
    """Start any multiprocessing child afresh (`spawn`), as on Windows and macOS: the one
    start method a frozen bundle supports everywhere, and no fork of a threaded server."""
    import multiprocessing

    if multiprocessing.get_start_method(allow_none=True) is None:
        multiprocessing.set_start_method("spawn")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    use_spawn()
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
