"""``bytetx-serve``: a Hugging Face encoder on Triton Inference Server, padding-free from request to response.

Runs the real ``tritonserver`` binary that the ``nvidia-pytriton`` package bundles, with its Python
backend, over a model repository written to a temporary folder (repository.py): ``bytetx`` runs the
packed-input model through ``bytetx.InferenceSession``, ``bytetx_text`` tokenizes first. What the
bundled server needs from this process's Python is arranged here: the backend stub for this Python
version, this interpreter's ``libpython`` and the wheel's own libraries on ``LD_LIBRARY_PATH``, this
environment's ``bin`` first on ``PATH`` (the stub finds its ``site-packages`` from the ``python`` there;
it ignores ``PYTHONPATH``), and NumPy older than 2, without which the backend answers with empty tensors.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

READY_POLL_S = 0.25
STOP_TIMEOUT_S = 10
LOG_TAIL_LINES = 40
_PR_SET_PDEATHSIG = 1


class ServeError(RuntimeError):
    """The server cannot be started; the message says why and what to do."""


@dataclass(frozen=True)
class TritonInstall:
    """The parts of nvidia-pytriton's bundled Triton that bytetx-serve runs."""

    server: Path  # the tritonserver binary
    python_backend: Path  # folder with libtriton_python.so and triton_python_backend_utils.py
    stub: Path  # triton_python_backend_stub for this Python version
    libraries: Path  # nvidia_pytriton.libs


def find_triton() -> TritonInstall:
    """Locate the bundled Triton and check this Python can host its backend; ServeError says what is missing."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ServeError("nvidia-pytriton is not installed: pip install 'bytetx[serve]'")
    package = Path(next(iter(spec.submodule_search_locations)))
    dist = package / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    install = TritonInstall(dist / "bin" / "tritonserver", dist / "backends" / "python",
                            dist / "python_backend_stubs" / version / "triton_python_backend_stub",
                            package.parent / "nvidia_pytriton.libs")
    if not install.server.is_file():
        raise ServeError(f"{install.server} is missing: reinstall nvidia-pytriton")
    if not install.stub.is_file():
        raise ServeError(f"nvidia-pytriton has no Python backend for Python {version} ({install.stub} is missing)")
    import numpy

    if int(numpy.__version__.split(".")[0]) >= 2:
        raise ServeError(f"NumPy {numpy.__version__} is installed; Triton's Python backend returns empty tensors "
                         "with NumPy 2: pip install 'numpy<2' (pip install 'bytetx[serve]' pins it)")
    return install


def _libpython_folder() -> str | None:
    """This interpreter's own folder of libpython (shared builds), which the backend stub must load."""
    folder = sysconfig.get_config_var("LIBDIR")
    library = sysconfig.get_config_var("INSTSONAME")
    return folder if folder and library and (Path(folder) / library).exists() else None


def server_environment(install: TritonInstall) -> dict[str, str]:
    env = dict(os.environ)
    libraries = [str(install.libraries)] + [p for p in (_libpython_folder(),) if p]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libraries + [p for p in [env.get("LD_LIBRARY_PATH")] if p])
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def backend_directory(install: TritonInstall, workspace: Path) -> Path:
    """A backend folder whose python backend has this Python's stub (the wheel keeps one per version)."""
    python = workspace / "backends" / "python"
    python.mkdir(parents=True)
    for source in sorted(install.python_backend.iterdir()):
        if source.is_file():
            (python / source.name).symlink_to(source)
    (python / "triton_python_backend_stub").symlink_to(install.stub)
    return python.parent


@dataclass(frozen=True)
class Endpoints:
    host: str
    http: int
    grpc: int
    metrics: int

    def check_free(self) -> None:
        """ServeError naming the first port already in use (before Triton fails on it less clearly)."""
        for what, port in (("HTTP", self.http), ("gRPC", self.grpc), ("metrics", self.metrics)):
            with socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET) as probe:
                try:
                    probe.bind((self.host, port))
                except OSError as error:
                    raise ServeError(f"cannot listen on {self.host}:{port} ({what}): {error.strerror}") from None

    def describe(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return (f"http://{host}:{self.http} (HTTP), {host}:{self.grpc} (gRPC), "
                f"http://{host}:{self.metrics}/metrics (metrics)")


def server_command(install: TritonInstall, repository: Path, backends: Path, endpoints: Endpoints) -> list[str]:
    return [
        str(install.server), f"--model-repository={repository}", f"--backend-directory={backends}",
        f"--http-address={endpoints.host}", f"--http-port={endpoints.http}",
        f"--grpc-address={endpoints.host}", f"--grpc-port={endpoints.grpc}",
        f"--metrics-address={endpoints.host}", f"--metrics-port={endpoints.metrics}",
        "--allow-gpu-metrics=false", "--strict-readiness=true", "--exit-on-error=true",
        f"--exit-timeout-secs={STOP_TIMEOUT_S}", "--log-verbose=0",
    ]


def free_local_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 now (the kernel's choice), for servers started by
    tests and benchmarks."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _die_with_parent() -> None:
    """In the child: get SIGTERM when bytetx-serve dies, however it dies (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _ready(endpoints: Endpoints) -> bool:
    host = f"[{endpoints.host}]" if ":" in endpoints.host else endpoints.host
    try:
        with urllib.request.urlopen(f"http://{host}:{endpoints.http}/v2/health/ready", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class _Stop(Exception):
    """SIGINT or SIGTERM arrived."""


def _raise_stop(signum, frame):
    raise _Stop()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bytetx-serve",
        description="Serve a BERT-family encoder padding-free on Triton Inference Server: models bytetx "
        "(token ids) and bytetx_text (text). With no MODEL_DIR, serves the bundled all-MiniLM-L6-v2.",
    )
    parser.add_argument("model_dir", nargs="?", help="Hugging Face model directory (default: bundled all-MiniLM-L6-v2)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--http-port", type=int, default=8000, help="HTTP port (default: 8000)")
    parser.add_argument("--grpc-port", type=int, default=8001, help="gRPC port (default: 8001)")
    parser.add_argument("--metrics-port", type=int, default=8002, help="Prometheus metrics port (default: 8002)")
    parser.add_argument("--precision", choices=["fp32", "int8"], default="fp32",
                        help="int8: dynamic int8 GEMMs, quality checked on the sentence set as bytetx-export "
                             "--precision int8 does (default: fp32)")
    parser.add_argument("--max-batch-size", type=int, default=64, help="sequences per batch (default: 64)")
    parser.add_argument("--max-queue-delay-us", type=int, default=2000,
                        help="how long a request waits for others to batch with, in microseconds (default: 2000)")
    parser.add_argument("--instances", type=int, default=1, help="model instances running batches (default: 1)")
    parser.add_argument("--startup-timeout", type=float, default=300, help="seconds to wait for readiness")
    parser.add_argument("--verbose", action="store_true", help="pass Triton's log through to stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=True, soft_wrap=True, highlight=False)
    from bytetx.exporter import ExportError, UnsupportedModelError

    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _serve(args, console)
    except (ServeError, ExportError, UnsupportedModelError) as error:
        console.print(f"[bold red]error:[/] {error}")
        return 1
    except _Stop:
        console.print("stopped")
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve(args: argparse.Namespace, console: Console) -> int:
    from bytetx.cli import DEMO_MODEL_NAME, bundled_model_dir

    from .export import prepare_model
    from .repository import ENCODER, TEXT, Batching, write_repository

    for name in ("max_batch_size", "instances"):
        if getattr(args, name) < 1:
            raise ServeError(f"--{name.replace('_', '-')} must be at least 1")
    endpoints = Endpoints(args.host, args.http_port, args.grpc_port, args.metrics_port)
    # Before the minutes of model preparation; TritonServer checks both again when it starts.
    find_triton()
    endpoints.check_free()
    model_dir = Path(args.model_dir) if args.model_dir else bundled_model_dir()
    name = model_dir.name if args.model_dir else DEMO_MODEL_NAME
    with tempfile.TemporaryDirectory(prefix="bytetx-serve-") as folder:
        workspace = Path(folder)
        with console.status(f"preparing {model_dir.name} ({args.precision})"):
            model, lines = prepare_model(model_dir, precision=args.precision)
        for line in lines:
            console.print(line)
        batching = Batching(args.max_batch_size, args.max_queue_delay_us, args.instances)
        repository = write_repository(model, workspace / "repository", "python", batching)
        models = [ENCODER] + ([TEXT] if model.tokenizer_file else [])
        with TritonServer(repository, endpoints, workspace, args.startup_timeout, args.verbose) as server:
            print(f"bytetx-serve: serving {', '.join(models)} ({name}, {args.precision}) on {endpoints.describe()}; "
                  f"pid {os.getpid()}", flush=True)
            code = server.process.wait()
            console.print(f"[bold red]error:[/] tritonserver exited with code {code}:\n{server.log_tail()}")
            return 1


class TritonServer:
    """The bundled ``tritonserver`` over ``repository`` (a Python-backend repository), listening on
    ``endpoints``; ready when the context is entered, stopped when it is left.

    ``workspace`` (an existing folder) receives the backend folder and the log, and is the server's
    working directory: the stub puts it on sys.path, so a source checkout there would shadow the
    installed bytetx.
    """

    def __init__(self, repository: Path, endpoints: Endpoints, workspace: Path, startup_timeout: float = 300,
                 verbose: bool = False):
        self.repository, self.endpoints, self.workspace = repository, endpoints, workspace
        self.startup_timeout, self.verbose = startup_timeout, verbose
        self.log_path = workspace / "tritonserver.log"
        self.process: subprocess.Popen | None = None

    def __enter__(self):
        install = find_triton()
        self.endpoints.check_free()
        command = server_command(install, self.repository, backend_directory(install, self.workspace), self.endpoints)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, env=server_environment(install), stdin=subprocess.DEVNULL,
                                            cwd=self.workspace, stdout=None if self.verbose else log,
                                            stderr=subprocess.STDOUT, start_new_session=True,
                                            preexec_fn=_die_with_parent)  # noqa: PLW1509 - before any thread starts
        try:
            self._wait_ready()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while not _ready(self.endpoints):
            if self.process.poll() is not None:
                raise ServeError(f"tritonserver exited with code {self.process.returncode} while starting:\n"
                                 + self.log_tail())
            if time.monotonic() > deadline:
                raise ServeError(f"tritonserver was not ready after {self.startup_timeout:g} s:\n" + self.log_tail())
            time.sleep(READY_POLL_S)

    def _stop(self) -> None:
        """SIGTERM (Triton finishes the requests in flight), then SIGKILL if it outlives its exit timeout."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        # A second Ctrl-C while Triton drains must not leave it running.
        held = ({sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
                if threading.current_thread() is threading.main_thread() else {})
        try:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S + 5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        finally:
            for sig, handler in held.items():
                signal.signal(sig, handler)

    def log_tail(self) -> str:
        return _tail(self.log_path)


def _tail(log_path: Path) -> str:
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-LOG_TAIL_LINES:]) or "(empty log)"


if __name__ == "__main__":
    sys.exit(main())
