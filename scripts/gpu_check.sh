#!/usr/bin/env bash
# The GPU acceptance run, one command for a machine with CUDA and PyTorch (no ONNX Runtime GPU build or
# TensorRT needed, no network): scripts/gpu_check.sh OUTDIR [--budget SECONDS]
#
#   1. builds libbytetx_kernels.so (the C ABI over the kernels) for the present GPU's architecture only;
#   2. runs every kernel test case on the GPU (the emulated tests' GPU backend), then compute-sanitizer
#      memcheck and racecheck on a small subset where the tool works;
#   3. whole models through bytetx.torch against Hugging Face on the GPU (float32 with TF32 off,
#      float16, bfloat16; ragged batches up to 16 x 512);
#   4. the short benchmark in the paper's setting (benchmarks/gpu_torch_benchmark.py).
#
# Everything lands in OUTDIR: logs, JUnit XML, the benchmark's JSON and markdown, environment.json and
# summary.md. --budget (default 420) bounds the whole run: the benchmark gets what the checks left.
# Without a CUDA GPU it builds and checks what the CPU can (the C ABI and bytetx.torch on the CPU),
# then exits 3. Exit status: 0 all passed, 1 a step failed (summary.md says which), 3 no GPU.
set -uo pipefail
usage="usage: scripts/gpu_check.sh OUTDIR [--budget SECONDS]"
out=${1:?$usage}
shift
budget=420
while [ $# -gt 0 ]; do
  case $1 in
    --budget) budget=${2:?$usage}; shift 2 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
mkdir -p "$out"
out=$(cd "$out" && pwd)
python=${PYTHON:-python3}
start=$SECONDS
failed=()
summary="$out/summary.md"
echo "# bytetx GPU check" > "$summary"

step() {  # step NAME COMMAND...: runs COMMAND with its output in OUTDIR/NAME.log, records the verdict
  local name=$1
  shift
  echo "== $name" >&2
  local begin=$SECONDS
  "$@" > "$out/$name.log" 2>&1
  local status=$?
  local verdict=passed
  [ $status -eq 0 ] || { verdict="FAILED (exit $status)"; failed+=("$name"); }
  echo "- $name: $verdict in $((SECONDS - begin)) s (log: $name.log)" >> "$summary"
  tail -n 3 "$out/$name.log" >&2
  return $status
}

"$python" - > "$out/environment.json" <<'PY'
import json, platform, shutil, subprocess
def run(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as error:
        return f"unavailable: {error}"
info = {"python": platform.python_version(), "nvcc": run("nvcc", "--version").splitlines()[-1],
        "gpu": run("nvidia-smi", "--query-gpu=name,driver_version,compute_cap,memory.total", "--format=csv,noheader"),
        "compute_sanitizer": shutil.which("compute-sanitizer")}
for name in ("torch", "transformers", "numpy", "onnxruntime"):
    try:
        info[name] = __import__(name).__version__
    except ImportError:
        info[name] = None
try:
    import torch
    info["cuda_available"] = torch.cuda.is_available()
    if info["cuda_available"]:
        info["device"] = torch.cuda.get_device_name(0)
        info["capability"] = "%d%d" % torch.cuda.get_device_capability(0)
except ImportError:
    info["cuda_available"] = False
print(json.dumps(info, indent=2))
PY
capability=$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("capability", ""))' "$out/environment.json")

build="$root/build/gpu-check"
cmake_args=(-S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBYTETX_BUILD_ORT=OFF -DBYTETX_BUILD_TENSORRT=OFF)
command -v ninja > /dev/null && cmake_args+=(-G Ninja)
if [ -n "$capability" ]; then
  cmake_args+=(-DBYTETX_BUILD_CUDA=ON "-DBYTETX_CUDA_ARCHITECTURES=${capability}-real")
else
  cmake_args+=(-DBYTETX_BUILD_CUDA=OFF)
fi
step build sh -c "cmake $(printf '%q ' "${cmake_args[@]}") && cmake --build '$build' --target bytetx_kernels -j $(nproc)" || {
  echo "the build failed: nothing else can run" >> "$summary"; exit 1; }
export BYTETX_KERNELS_LIBRARY="$build/libbytetx_kernels.so"
pytest=("$python" -m pytest -q -p no:cacheprovider)

if [ -z "$capability" ]; then
  step cpu-checks "${pytest[@]}" tests/capi tests/torch --junitxml="$out/cpu-checks.xml"
  echo "no CUDA GPU found (torch.cuda.is_available() is false): ran the CPU checks only" | tee -a "$summary" >&2
  exit 3
fi

step kernels "${pytest[@]}" tests/kernels/test_emulated_padding.py tests/kernels/test_emulated_fused_mha.py \
  -k gpu --junitxml="$out/kernels.xml"
if command -v compute-sanitizer > /dev/null; then
  subset=(tests/kernels/test_emulated_fused_mha.py tests/kernels/test_emulated_padding.py -k
          "gpu and (block_edges or length1 or test_rebuild_padding and right or test_remove_padding and holes)")
  for tool in memcheck racecheck; do
    step "sanitizer-$tool" compute-sanitizer --tool "$tool" --error-exitcode 9 "${pytest[@]}" "${subset[@]}"
  done
else
  echo "- compute-sanitizer: not installed, skipped" >> "$summary"
fi
step models "${pytest[@]}" tests/torch -k cuda --junitxml="$out/models.xml"

left=$((budget - (SECONDS - start)))
if [ $left -lt 60 ]; then
  echo "- benchmark: skipped, $left s of the budget left" >> "$summary"
else
  # Five runners, two attention kernels and the GEMM peak over four lengths share what is left.
  per_runner=$("$python" -c "print(max(0.2, round($left * 0.6 / 40, 2)))")
  step benchmark "$python" benchmarks/gpu_torch_benchmark.py --budget "$per_runner" --output-dir "$out"
  [ -f "$out/gpu_torch_benchmark.md" ] && cat "$out/gpu_torch_benchmark.md" >> "$summary"
fi
echo "total $((SECONDS - start)) s" >> "$summary"
cat "$summary" >&2
[ ${#failed[@]} -eq 0 ]
