"""GPU benchmark through PyTorch alone (no ONNX Runtime or TensorRT): bytetx.torch against Hugging Face.

The paper's setting: BERT-base (random weights, 1024 positions), float16 (``--dtype``), batch 16, max
length 128 to 1024, lengths uniform in [0.2, 1] x max. Runners, all on the same batch in interleaved
rounds (each call ends with a device synchronize):

- ``hf-sdpa``: Hugging Face's BertModel with SDPA attention on the padded batch (PyTorch's choice of
  kernel), ``hf-sdpa-efficient`` and ``hf-sdpa-flash`` with the backend forced (the flash kernel takes
  no padding mask, so it may refuse; the report says so);
- ``torch-varlen``: the padding-free model of bytetx.torch with PyTorch's own variable-length attention
  (``torch.nn.attention.varlen.varlen_attn``, flash kernels) in place of FusedMHA: the same GEMMs, so
  the difference is attention;
- ``bytetx-torch``: ``bytetx.torch.padding_free``.

Also FusedMHA alone against varlen_attn on the same packed Q, K, V, and the bf16 GEMM peak (the
machine's limit), measured in the same run. Every output is checked against float32 Hugging Face on
the valid tokens (max |diff| in the report). Results: JSON and markdown in ``--output-dir``.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import harness
import numpy as np

FULL = harness.TimingPolicy(warmup_s=0.3, budget_s=2.0, min_repeats=10, max_repeats=400, rounds=3)
QUICK = harness.TimingPolicy(warmup_s=0.1, budget_s=0.5, min_repeats=5, max_repeats=100, rounds=2)
MAX_POSITIONS = 1024
PEAK_SHAPES = [(8192, 8192, 8192), (4096, 4096, 4096)]


def synchronized(run: Callable[[], object]) -> harness.Run:
    import torch

    def call() -> None:
        run()
        torch.cuda.synchronize()

    return call


def varlen_attention() -> Callable[..., Any] | None:
    """PyTorch's variable-length attention, where the installed PyTorch has it."""
    if importlib.util.find_spec("torch.nn.attention.varlen") is None:
        return None
    from torch.nn.attention.varlen import varlen_attn

    return varlen_attn


def varlen_encoder(model: Any, varlen_attn: Callable[..., Any]) -> Any:
    """bytetx.torch's padding-free model with varlen_attn as its attention."""
    from bytetx.torch import PaddingFreeEncoder

    class VarlenEncoder(PaddingFreeEncoder):
        def attention(self, qkv, qkv_bias, cu_seqlens, token_offset, num_heads, scale, kernels, device):
            tokens, width = qkv.shape
            q, k, v = (qkv + qkv_bias).view(tokens, 3, num_heads, width // 3 // num_heads).unbind(1)
            longest = int(token_offset.shape[1])  # the padded length: the longest sequence of the batch
            out = varlen_attn(q, k, v, cu_seqlens, cu_seqlens, longest, longest)
            return out.reshape(tokens, width // 3)

    return VarlenEncoder(model).eval()


def max_diff(ours: Any, exact: Any, valid: Any) -> float:
    return float((ours.float() - exact.float())[valid].abs().max())


def run_workload(max_length: int, batch: int, models: dict[str, Any], policy: harness.TimingPolicy,
                 config: Any, varlen_attn: Any) -> dict[str, Any]:
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from bytetx import kernels
    from bytetx.torch import tensor_ref

    dims = harness.ModelDims.of(config)
    workload = harness.Workload("bert-base", batch, max_length, "uniform")
    lengths = workload.lengths()
    inputs = harness.ModelInputs(("input_ids", "attention_mask", "token_type_ids"), config.vocab_size,
                                 config.pad_token_id, config.type_vocab_size)
    feeds = {k: torch.from_numpy(v).cuda() for k, v in inputs.batch(lengths).feeds.items()}
    valid = feeds["attention_mask"].bool()

    with torch.no_grad():
        exact = models["fp32"](**feeds).last_hidden_state
    runs: dict[str, harness.Run] = {}
    errors: dict[str, str] = {}
    accuracy: dict[str, float] = {}

    def add(name: str, call: Callable[[], Any]) -> None:
        try:
            with torch.no_grad():
                accuracy[name] = max_diff(call().last_hidden_state, exact, valid)
            runs[name] = synchronized(lambda: call())
        except Exception as error:  # noqa: BLE001 - a runner that cannot run this workload is reported
            errors[name] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"

    sdpa = models["sdpa"]
    add("hf-sdpa", lambda: sdpa(**feeds))
    for name, backend in (("hf-sdpa-efficient", SDPBackend.EFFICIENT_ATTENTION), ("hf-sdpa-flash", SDPBackend.FLASH_ATTENTION)):
        def forced(backend=backend):
            with sdpa_kernel(backend):
                return sdpa(**feeds)
        add(name, forced)
    if varlen_attn is not None:
        add("torch-varlen", lambda: models["varlen"](**feeds))
    else:
        errors["torch-varlen"] = "this PyTorch has no torch.nn.attention.varlen"
    add("bytetx-torch", lambda: models["bytetx"](**feeds))

    timings = harness.measure_interleaved(runs, policy, lambda _name: None)

    # FusedMHA alone against varlen_attn on the same packed Q, K, V.
    cu = torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)).cuda()
    tokens, hidden, heads = int(lengths.sum()), dims.hidden, dims.heads
    dtype = next(models["bytetx"].parameters()).dtype
    qkv = torch.randn(tokens, 3 * hidden, device="cuda", dtype=dtype)
    bias = torch.zeros(3 * hidden, device="cuda", dtype=dtype)
    offsets = torch.empty(batch, int(lengths.max()), dtype=torch.int32, device="cuda")
    context = torch.empty(tokens, hidden, device="cuda", dtype=dtype)
    lib = kernels.load()
    stream = torch.cuda.current_stream().cuda_stream
    attention_runs = {"fused-mha": synchronized(lambda: lib.fused_mha(
        kernels.CUDA, tensor_ref(qkv), tensor_ref(bias), tensor_ref(cu), tensor_ref(offsets), heads, None,
        tensor_ref(context), stream))}
    if varlen_attn is not None:
        q, k, v = qkv.view(tokens, 3, heads, hidden // heads).unbind(1)
        attention_runs["torch-varlen-attn"] = synchronized(
            lambda: varlen_attn(q, k, v, cu, cu, int(lengths.max()), int(lengths.max())))
    attention = harness.measure_interleaved(attention_runs, policy, lambda _name: None)
    attention_flop = 2 * 2 * sum(int(n) ** 2 for n in lengths) * hidden

    return {
        "max_length": max_length, "batch": batch, "lengths": [int(n) for n in lengths],
        "real_tokens": tokens, "padded_tokens": batch * int(lengths.max()),
        "useful_gflop": harness.encoder_flops(lengths, dims) / 1e9,
        "timings": {name: asdict(t) for name, t in timings.items()},
        "max_abs_diff_vs_fp32": accuracy, "errors": errors,
        "attention": {name: {**asdict(t), "tflops": attention_flop / (t.median_ms / 1e3) / 1e12}
                      for name, t in attention.items()},
    }


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    intro = (f"torch {env['torch']}, transformers {env['transformers']}, driver {env.get('driver', '?')}, "
             f"bf16 GEMM peak {report['gemm_peak_tflops']:.0f} TFLOP/s. Median ms, batch {report['batch']}, "
             "lengths uniform in [0.2, 1] x max.")
    lines = [f"# GPU benchmark through PyTorch ({env.get('gpu', '?')}, {report['dtype']})", "", intro, ""]
    runners = ["hf-sdpa", "hf-sdpa-efficient", "hf-sdpa-flash", "torch-varlen", "bytetx-torch"]
    lines += ["| max len | real / padded tokens | " + " | ".join(runners)
              + " | bytetx vs hf-sdpa | bytetx vs torch-varlen | % of GEMM peak |",
              "| ---: | ---: |" + " ---: |" * (len(runners) + 3)]
    for r in report["workloads"]:
        t = {k: v["median_ms"] for k, v in r["timings"].items()}
        cells = [f"{t[n]:.2f}" if n in t else "-" for n in runners]
        ours = t.get("bytetx-torch")
        ratios = [f"{t[base] / ours:.2f}x" if ours and base in t else "-" for base in ("hf-sdpa", "torch-varlen")]
        peak = f"{r['useful_gflop'] / ours / report['gemm_peak_tflops'] * 100:.0f}%" if ours else "-"
        lines.append(f"| {r['max_length']} | {r['real_tokens']} / {r['padded_tokens']} | "
                     + " | ".join(cells + ratios + [peak]) + " |")
    lines += ["", "Attention alone (FusedMHA vs PyTorch's varlen flash attention), median ms and TFLOP/s:", "",
              "| max len | fused-mha | torch-varlen-attn |", "| ---: | ---: | ---: |"]
    for r in report["workloads"]:
        a = r["attention"]
        cells = [f"{a[n]['median_ms']:.3f} ({a[n]['tflops']:.0f})" if n in a else "-"
                 for n in ("fused-mha", "torch-varlen-attn")]
        lines.append(f"| {r['max_length']} | " + " | ".join(cells) + " |")
    lines += ["", "Max |diff| on valid tokens against float32 Hugging Face, and runners that could not run:", ""]
    for r in report["workloads"]:
        diffs = ", ".join(f"{k} {v:.2g}" for k, v in r["max_abs_diff_vs_fp32"].items())
        refused = "; ".join(f"{k}: {v}" for k, v in r["errors"].items())
        lines.append(f"- max length {r['max_length']}: {diffs}" + (f"; not run: {refused}" if refused else ""))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = harness.benchmark_parser(__doc__, "max lengths 128,512, shorter budget")
    parser.add_argument("--dtype", choices=["float16", "bfloat16"], default="float16")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-lengths", type=harness.integers, help="default 128,256,512,1024")
    harness.add_timing_options(parser, FULL, QUICK)
    args = parser.parse_args(argv)
    import torch
    from rich.console import Console

    console = Console(stderr=True)
    if not torch.cuda.is_available():
        console.print("error: no CUDA GPU (this benchmark runs through PyTorch on a GPU)")
        return 1
    if not harness.have_matplotlib(console):
        return 1
    from transformers import AutoModel

    from bytetx.torch import padding_free

    harness.quiet_transformers()
    torch.backends.cuda.matmul.allow_tf32 = False
    policy = harness.timing_policy(args, FULL, QUICK)
    max_lengths = args.max_lengths or ([128, 512] if args.quick else [128, 256, 512, 1024])
    dtype = getattr(torch, args.dtype)
    varlen_attn = varlen_attention()
    with tempfile.TemporaryDirectory() as workdir:
        directory = harness.bert_base_dir(Path(workdir), MAX_POSITIONS)
        config = harness.bert_base_config(MAX_POSITIONS)

        def load(attention: str, model_dtype: Any) -> Any:
            return AutoModel.from_pretrained(directory, attn_implementation=attention).to("cuda", model_dtype).eval()

        models = {"fp32": load("eager", torch.float32), "sdpa": load("sdpa", dtype)}
        models["bytetx"] = padding_free(load("eager", dtype))
        if varlen_attn is not None:
            models["varlen"] = varlen_encoder(load("eager", dtype), varlen_attn)
        peak = max(harness.gemm_peak(PEAK_SHAPES, lambda m, k, n: _matmul(m, k, n), policy),
                   key=lambda row: row["gflops"])
        workloads = []
        for max_length in max_lengths:
            workloads.append(run_workload(max_length, args.batch, models, policy, config, varlen_attn))
            console.print(f"max length {max_length}: " + ", ".join(
                f"{k} {v['median_ms']:.2f} ms" for k, v in workloads[-1]["timings"].items()))
    props = torch.cuda.get_device_properties(0)
    report = {
        "dtype": args.dtype, "batch": args.batch, "gemm_peak_tflops": peak["gflops"] / 1e3, "gemm_peak": peak,
        "environment": harness.environment(gpu=props.name, cuda=torch.version.cuda, driver=_driver()),
        "workloads": workloads,
    }
    harness.write_reports(report, args.output_dir, "gpu_torch_benchmark", markdown(report), plot, console)
    return 0


def plot(report: dict[str, Any], path: Path) -> None:
    """bytetx-torch's speedup over each other runner against max length."""
    records = [{"model": "bert-base", "batch": report["batch"], **r} for r in report["workloads"]]

    def draw(axis: Any, rows: list[dict[str, Any]]) -> None:
        for baseline in ("hf-sdpa", "hf-sdpa-efficient", "torch-varlen"):
            points = [(r["max_length"], r["timings"][baseline]["median_ms"] / r["timings"]["bytetx-torch"]["median_ms"])
                      for r in rows if baseline in r["timings"] and "bytetx-torch" in r["timings"]]
            if points:
                axis.plot(*zip(*points), marker="o", label=f"vs {baseline}")

    harness.plot_panels(records, path, "bytetx-torch speedup", draw)


def _matmul(m: int, k: int, n: int) -> harness.Run:
    import torch

    a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(k, n, device="cuda", dtype=torch.bfloat16)
    return synchronized(lambda: a @ b)


def _driver() -> str:
    import subprocess

    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
