"""Smoke test of the standalone bundle: build it, start it, use it through the API, stop it.

    python packaging/smoke.py               # build dist/unem/, then test it
    python packaging/smoke.py --no-build    # test the bundle already in dist/unem/
    python packaging/smoke.py --record      # ... and on success write smoke-passed.sha256
    python packaging/smoke.py --if-changed  # only when the bundle's inputs changed (CI)

The bundle runs from a scratch folder with Python's variables and the virtual environment
removed from its environment, on a free port and a fresh workspace. Before it starts, a
plugin file is dropped into `<workspace>/plugins/`; the test then checks `/api/models` lists
that model, imports a small stack, trains the plugin's model with a tiny `train2d` job (a
frozen worker process) to completion, reads the run back through TensorBoard (a second
frozen child), predicts the stack with it (`infer2d`), exports it as ONNX (`export2d`),
and stops the server with Ctrl-C. It prints the bundle's size and its
start-up time next to `python main.py`'s, measured the same way in the same run (launch to
the first answer of `/api/health`): cold (each side's files evicted from the page cache
first), then warm. Any failure, or a cold start more than twice as slow, exits non-zero.

The record is the digest of the bundle's inputs (`INPUTS`) when the test last passed:
CI runs this test only when they changed. Standard library only, like bootstrap.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.request import HTTPCookieProcessor, Request, build_opener

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "packaging"))

import build  # noqa: E402 - packaging/ is on the path only now

# What the bundle is made from, besides the app's code: a change here reruns the smoke test.
INPUTS = ("packaging", "pyproject.toml", "package-lock.json", "main.py")
RECORD = ROOT / "packaging" / "smoke-passed.sha256"
START_TIMEOUT = 120.0  # seconds until /api/health answers
JOB_TIMEOUT = 900.0
STARTUP_TARGET = 2.0  # the bundle starts within twice the time of `python main.py`
PLUGIN_MODEL = "smoke-net"
PLUGIN = '''"""A model dropped into <workspace>/plugins/ by packaging/smoke.py."""

from pydantic import BaseModel, ConfigDict, Field

from unem.models.spec import ModelSpec


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filters: int = Field(4, ge=1, le=64)


class SmokeNet(ModelSpec):
    name = "smoke-net"
    title = "Smoke-test net"
    Options = Options

    def build(self, options, input_shape, n_classes):
        import keras

        inputs = keras.Input(shape=input_shape)
        x = keras.layers.Conv2D(options.filters, 3, padding="same", activation="relu")(inputs)
        return keras.Model(inputs, keras.layers.Conv2D(n_classes, 1)(x))


def register_models(register):
    register(SmokeNet())
'''


class SmokeFailure(Exception):
    """A check of the smoke test failed; the message says which."""


# ---- the record of the last passing run ----


def input_files(root: Path = ROOT) -> list[Path]:
    """The files of `INPUTS` under `root`, sorted; caches and the record itself left out."""
    files: list[Path] = []
    for name in INPUTS:
        path = root / name
        candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
        files += [
            p
            for p in candidates
            if p.is_file() and "__pycache__" not in p.parts and p.name != RECORD.name
        ]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def inputs_digest(root: Path = ROOT) -> str:
    """SHA-256 over every input's relative path and content: renames count as changes."""
    digest = hashlib.sha256()
    for path in input_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def recorded_digest(record: Path = RECORD) -> str | None:
    return record.read_text().split()[0] if record.is_file() else None


def inputs_changed(root: Path = ROOT, record: Path = RECORD) -> bool:
    """Whether the inputs differ from those of the last recorded passing run."""
    return inputs_digest(root) != recorded_digest(record)


def write_record(root: Path = ROOT, record: Path = RECORD) -> str:
    digest = inputs_digest(root)
    record.write_text(f"{digest}  smoke test passed on these inputs: {', '.join(INPUTS)}\n")
    return digest


# ---- a small stack, written without numpy ----


def npy_bytes(volume: Sequence[Sequence[Sequence[int]]]) -> bytes:
    """A uint8 (z, y, x) volume in NumPy's .npy format (version 1.0)."""
    shape = (len(volume), len(volume[0]), len(volume[0][0]))
    header = f"{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"  # pad the preamble to 64 bytes
    data = bytes(v for plane in volume for row in plane for v in row)
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data


def membrane_stack(slices: int = 4, size: int = 64) -> tuple[bytes, bytes]:
    """Image and labels: dark membranes on a grid (label 0), bright cells (label 1)."""
    image, labels = [], []
    for z in range(slices):
        step = 12 + 2 * z
        image.append([[0] * size for _ in range(size)])
        labels.append([[1] * size for _ in range(size)])
        for y in range(size):
            for x in range(size):
                membrane = (y + z) % step < 2 or (x + 2 * z) % step < 2
                noise = (x * 7 + y * 13 + z * 29) % 23
                image[z][y][x] = (40 if membrane else 190) + noise
                labels[z][y][x] = 0 if membrane else 1
    return npy_bytes(image), npy_bytes(labels)


def prepare_workspace(workspace: Path) -> None:
    """The drop-in plugin and the stack to import, in a new workspace."""
    (workspace / "plugins").mkdir(parents=True)
    (workspace / "plugins" / "smoke_net.py").write_text(PLUGIN)
    (workspace / "stack").mkdir()
    image, labels = membrane_stack()
    (workspace / "stack" / "image.npy").write_bytes(image)
    (workspace / "stack" / "labels.npy").write_bytes(labels)


# ---- a server subprocess ----


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[str]
    base: str
    started: float  # time.monotonic() at launch
    output: list[str] = field(default_factory=list)

    def token(self, timeout: float = 10.0) -> str:
        """The admin token of the login link the server printed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.output):
                match = re.search(r"\?token=(\S+)", line)
                if match:
                    return match.group(1)
            time.sleep(0.05)
        raise SmokeFailure("the server printed no login link:\n" + self.log())

    def log(self) -> str:
        return "".join(self.output[-60:])


def bundle_env() -> dict[str, str]:
    """This environment without Python's: the bundle must not need an installed Python."""
    venv = str(build.bootstrap.VENV)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    paths = os.environ.get("PATH", "").split(os.pathsep)
    env["PATH"] = os.pathsep.join(p for p in paths if not p.startswith(venv))
    return env


def launch(command: Sequence[str], workspace: Path, cwd: Path, env: dict[str, str]) -> Server:
    port = free_port()
    argv = [*command, "--workspace", str(workspace), "--no-browser", "--port", str(port)]
    started = time.monotonic()
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        text=True, cwd=cwd, env=env, start_new_session=True,
    )  # fmt: skip
    server = Server(process, f"http://127.0.0.1:{port}", started)
    threading.Thread(target=read_output, args=(server,), daemon=True).start()
    return server


def read_output(server: Server) -> None:
    assert server.process.stdout is not None
    for line in server.process.stdout:
        server.output.append(line)


def wait_for_health(server: Server, timeout: float = START_TIMEOUT) -> float:
    """Seconds from launch until `/api/health` answered."""
    deadline = server.started + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SmokeFailure(
                f"the server exited with {server.process.returncode}:\n{server.log()}"
            )
        try:
            with build_opener().open(f"{server.base}/api/health", timeout=1) as response:
                if response.status == 200:
                    return time.monotonic() - server.started
        except (URLError, OSError):
            time.sleep(0.02)
    raise SmokeFailure(f"/api/health never answered in {timeout:.0f} s:\n{server.log()}")


def stop(server: Server) -> int:
    """Ctrl-C, as in a terminal; SIGKILL to the group if it does not stop in 30 s."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, getattr(signal, "SIGKILL", signal.SIGTERM))
            server.process.wait()
            raise SmokeFailure("the server did not stop on Ctrl-C within 30 s") from None
    return int(server.process.returncode)


# ---- the API, as the browser uses it ----


class Client:
    """JSON requests with the session cookie of the admin login link."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = build_opener(HTTPCookieProcessor(CookieJar()))

    def call(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
        """The JSON answer; SmokeFailure on an HTTP error."""
        data = None if body is None else json.dumps(body).encode()
        headers = {} if data is None else {"Content-Type": "application/json"}
        request = Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with self.opener.open(request, timeout=timeout) as response:
                text = response.read().decode()
        except HTTPError as error:
            raise SmokeFailure(f"{method} {path}: {error.code} {error.read().decode()}") from None
        return json.loads(text) if text.lstrip().startswith(("{", "[")) else text

    def wait(self, path: str, done: Any, what: str, timeout: float) -> Any:
        """Poll GET `path` until `done(answer)` is truthy; that answer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.call("GET", path)
            if done(answer):
                return answer
            time.sleep(0.5)
        raise SmokeFailure(f"{what}: not finished after {timeout:.0f} s")


def check_models(client: Client) -> None:
    """The drop-in plugin's model is listed, beside a built-in and the bundled example."""
    listed = client.call("GET", "/api/models")
    names = {model["name"] for model in listed["models"]}
    if not {PLUGIN_MODEL, "unet", "tiny-fcn"} <= names or listed["broken"]:
        raise SmokeFailure(f"/api/models: {sorted(names)}, broken {listed['broken']}")


def check_assets(client: Client) -> None:
    """Templates, static files and the npm packages' files are served from the bundle."""
    pages = {"/trainer": "trainer.js", "/dojo/smoke": "main.js", "/annotator/smoke": "main.js"}
    files = ["/static/trainer.js", "/dojo/static/main.js", "/annotator/static/main.js"]
    files += ["/vendor/socket.io.esm.min.js", "/vendor/three.module.js"]
    for path, expected in pages.items():
        if expected not in client.call("GET", path):
            raise SmokeFailure(f"{path} does not name {expected}")
    for path in files:
        if len(client.call("GET", path)) < 100:
            raise SmokeFailure(f"{path} is empty")


def import_stack(client: Client, workspace: Path) -> str:
    layers = {
        "image": {"path": str(workspace / "stack" / "image.npy")},
        "groundtruth": {"path": str(workspace / "stack" / "labels.npy")},
    }
    body = {"name": "smoke", "layers": layers, "voxel_size": [50, 4, 4]}
    task = client.call("POST", "/api/datasets", body)

    def finished(answer: Any) -> Any:
        return next(t for t in answer["tasks"] if t["id"] == task["id"])["state"] != "running"

    tasks = client.wait("/api/tasks", finished, "the import", 120)["tasks"]
    task = next(t for t in tasks if t["id"] == task["id"])
    if task["state"] != "done":
        raise SmokeFailure(f"the import failed: {task}")
    return str(task["result"]["id"])


def train(client: Client, dataset: str) -> dict[str, Any]:
    """A tiny 2D training of the plugin's model at half resolution, in a frozen worker;
    the finished job."""
    options = {
        "dataset": dataset, "label_layer": "groundtruth", "target": "binary",
        "model": PLUGIN_MODEL, "patch_size": 32, "batch_size": 2, "steps": 6,
        "validate_every": 3, "validation_fraction": 0.25, "output": "smoke-model",
        "downsample": 2,
    }  # fmt: skip
    job = run_job(client, "train2d", options)
    if (job.get("result") or {}).get("steps") != options["steps"]:
        raise SmokeFailure(f"train2d ran {job.get('result')}, not {options['steps']} steps")
    return job


def run_job(client: Client, kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """Submit a job and wait for it to end; the finished job (SmokeFailure unless done)."""
    job = client.call("POST", "/api/jobs", {"kind": kind, "options": options})
    path = f"/api/jobs/{job['id']}"
    job = client.wait(path, lambda j: j["state"] not in ("queued", "running"), kind, JOB_TIMEOUT)
    if job["state"] != "done":
        raise SmokeFailure(
            f"{kind} ended {job['state']}: {job.get('error')}\n{job.get('log_tail')}"
        )
    return dict(job)


def predict(client: Client, dataset: str) -> None:
    """The trained model predicts the stack (mirrored copies averaged) into a new layer."""
    options = {
        "model": "smoke-model", "dataset": dataset, "output": "smoke-prediction",
        "test_time_augmentation": "flips", "tile_size": 32,
    }  # fmt: skip
    run_job(client, "infer2d", options)
    names = [layer["name"] for layer in client.call("GET", f"/api/datasets/{dataset}")["layers"]]
    if "smoke-prediction" not in names:
        raise SmokeFailure(f"infer2d wrote no layer smoke-prediction: {names}")


def export_onnx(client: Client) -> None:
    """The trained model exported as ONNX (tf2onnx inside the frozen worker)."""
    run_job(client, "export2d", {"model": "smoke-model", "format": "onnx"})
    models = client.call("GET", "/api/trained-models")["models"]
    found = next((m for m in models if m["name"] == "smoke-model"), None)
    files = (found or {}).get("files", [])
    if not any(str(name).endswith(".onnx") for name in files):
        raise SmokeFailure(f"export2d left no .onnx file: {files}")


def check_tensorboard(client: Client, job_id: int) -> None:
    """TensorBoard (a frozen child started on first use) lists the job's run."""
    run = f"{job_id}/tensorboard"
    client.wait("/tensorboard/data/runs", lambda runs: run in runs, "TensorBoard", 120)


def exercise(bundle: Path, scratch: Path) -> None:
    """The functional checks on the bundle, on a workspace with a drop-in plugin."""
    workspace = scratch / "workspace"
    prepare_workspace(workspace)
    server = launch([str(build.executable(bundle))], workspace, scratch, bundle_env())
    try:
        seconds = wait_for_health(server)
        step(f"the bundle answered /api/health after {seconds:.2f} s")
        client = Client(server.base)
        client.call("GET", f"/?token={server.token()}")
        check_models(client)
        step(f"/api/models lists the drop-in plugin's model {PLUGIN_MODEL!r}")
        dataset = import_stack(client, workspace)
        step(f"imported the stack as dataset {dataset!r}")
        check_assets(client)
        step("pages, static files and npm packages' files are served")
        started = time.monotonic()
        job = train(client, dataset)
        took = time.monotonic() - started
        step(f"train2d job {job['id']} done in {took:.1f} s: {job['result'].get('steps')} steps")
        check_tensorboard(client, job["id"])
        step("TensorBoard lists the job's run")
        predict(client, dataset)
        step("an infer2d job (flips test-time augmentation) wrote a prediction layer")
        export_onnx(client)
        step("an export2d job exported the model as ONNX")
    except BaseException:
        stop(server)
        print(server.log(), file=sys.stderr)
        raise
    code = stop(server)
    if code not in (0, 130):
        raise SmokeFailure(f"the server exited with {code} on Ctrl-C:\n{server.log()}")
    step(f"stopped with Ctrl-C (exit code {code})")


@dataclass
class Launcher:
    """How to start one side of the start-up comparison, and the files it reads."""

    command: list[str]
    cwd: Path
    env: dict[str, str]
    files: list[Path]  # folders whose files a cold start reads from disk


def evict(folders: Iterable[Path]) -> bool:
    """Drop the files under `folders` from the page cache (nothing else: no root needed), so
    the next launch reads them from disk; False where the OS offers no way to."""
    if not hasattr(os, "posix_fadvise"):
        return False
    os.sync()  # dirty pages stay cached: write them first
    for folder in folders:
        for root, _dirs, files in os.walk(folder):
            for name in files:
                try:
                    fd = os.open(os.path.join(root, name), os.O_RDONLY)
                except OSError:
                    continue
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)
    return True


@dataclass
class Startup:
    cold: dict[str, float]  # first launch after evicting each side's files (if evicted)
    warm: dict[str, list[float]]
    evicted: bool


def startup_times(launchers: dict[str, Launcher], scratch: Path, repeats: int) -> Startup:
    """Each side launched once cold, then `repeats` times alternating; a new workspace each."""
    evicted = evict(folder for launcher in launchers.values() for folder in launcher.files)
    cold = {
        name: launch_once(launcher, scratch / f"cold-{name}")
        for name, launcher in launchers.items()
    }
    warm: dict[str, list[float]] = {name: [] for name in launchers}
    for repeat in range(repeats):
        for name in list(launchers) if repeat % 2 == 0 else list(launchers)[::-1]:
            warm[name].append(launch_once(launchers[name], scratch / f"warm-{name}-{repeat}"))
    return Startup(cold, warm, evicted)


def launch_once(launcher: Launcher, workspace: Path) -> float:
    """Seconds from launch to the first answer of /api/health."""
    server = launch(launcher.command, workspace, launcher.cwd, launcher.env)
    try:
        return wait_for_health(server)
    finally:
        stop(server)


def step(message: str) -> None:
    print(f"  ok  {message}", flush=True)


def report(size: int, startup: Startup) -> float:
    """Print the figures; the ratio of the cold start-up times (bundle / python main.py)."""
    cold = startup.cold["bundle"] / startup.cold["python"]
    bundle, python = (statistics.median(startup.warm[name]) for name in ("bundle", "python"))
    how = "its files evicted from the page cache" if startup.evicted else "first launch"
    print(f"bundle size: {size / build.MB:.0f} MB ({size / 2**30:.2f} GiB; UNI-EM: 2.2 GB)")
    print(
        f"cold start-up to /api/health ({how}): bundle {startup.cold['bundle']:.2f} s, "
        f"python main.py {startup.cold['python']:.2f} s, ratio {cold:.2f} "
        f"(target ≤ {STARTUP_TARGET})"
    )
    print(
        f"warm start-up, median of {len(startup.warm['bundle'])}: bundle {bundle:.2f} s, "
        f"python main.py {python:.2f} s, ratio {bundle / python:.2f}"
    )
    for name in ("bundle", "python"):
        print(f"  {name}:", " ".join(f"{t:.2f}" for t in startup.warm[name]), "s")
    return cold


def python_launcher() -> Launcher:
    """`python main.py` from the source tree, with the virtual environment's Python."""
    python = str(build.bootstrap.PYTHON)
    query = [python, "-c", "import sys; print(sys.base_prefix)"]
    base = Path(subprocess.run(query, capture_output=True, text=True, check=True).stdout.strip())
    sources = [ROOT / name for name in ("unem", "dojo", "annotator3d", "plugins")]
    return Launcher(
        [python, str(ROOT / "main.py")],
        ROOT,
        dict(os.environ),
        [build.bootstrap.VENV, base, *sources],
    )


def smoke(bundle: Path, repeats: int) -> float:
    """Every check and figure on `bundle`; the ratio of the cold start-up times."""
    with tempfile.TemporaryDirectory(prefix="unem-smoke-") as folder:
        scratch = Path(folder)
        launchers = {
            "bundle": Launcher([str(build.executable(bundle))], scratch, bundle_env(), [bundle]),
            "python": python_launcher(),
        }
        startup = startup_times(launchers, scratch, repeats)
        exercise(bundle, scratch)
        return report(build.folder_size(bundle), startup)


def parse_args(argv: Iterable[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-build", action="store_true", help="test dist/unem/ as it is")
    parser.add_argument("--record", action="store_true", help=f"on success, write {RECORD.name}")
    parser.add_argument("--if-changed", action="store_true",
                        help=f"do nothing when the inputs match {RECORD.name}")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3, help="start-up launches of each")
    return parser.parse_args(None if argv is None else list(argv))


def main(argv: Iterable[str] | None = None) -> int:
    args = parse_args(argv)
    if args.if_changed and not inputs_changed():
        print(f"Bundle smoke test skipped: its inputs match {RECORD.relative_to(ROOT)}.")
        return 0
    bundle = build.BUNDLE if args.no_build else build.build()
    try:
        ratio = smoke(bundle, args.repeats)
    except SmokeFailure as failure:
        print(f"SMOKE TEST FAILED: {failure}", file=sys.stderr)
        return 1
    if ratio > STARTUP_TARGET:
        print(f"SMOKE TEST FAILED: cold, the bundle starts {ratio:.2f}× slower than python main.py")
        return 1
    print("Bundle smoke test passed.")
    if args.record:
        print(f"Recorded {write_record()} in {RECORD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
