#!/usr/bin/env bash
# Builds the fuzz harness over the CPU ops (tests/fuzz/ops_fuzzer.cc) against the CMake target
# bytetx_cpu_kernels, compiled with the same compiler and flags as the harness.
#
#   tests/fuzz/build.sh libfuzzer  [BUILD_DIR]  -> BUILD_DIR/ops_fuzzer
#       clang, -fsanitize=fuzzer,address,undefined (LeakSanitizer comes with AddressSanitizer); every
#       sanitizer report aborts (-fno-sanitize-recover=all). Run it as any libFuzzer binary, e.g.
#       build/fuzz-libfuzzer/ops_fuzzer -max_total_time=60 NEW_CORPUS_DIR tests/fuzz/corpus
#   tests/fuzz/build.sh standalone [BUILD_DIR]  -> BUILD_DIR/ops_driver
#       the production compiler and flags (-O3, GCC's target clones) plus -g and standalone_main.cc, for
#       valgrind: valgrind --leak-check=full BUILD_DIR/ops_driver -runs=1000 tests/fuzz/corpus
#   tests/fuzz/build.sh coverage   [BUILD_DIR]  -> BUILD_DIR/ops_coverage
#       clang source-based coverage (-fprofile-instr-generate -fcoverage-mapping) plus standalone_main.cc:
#       LLVM_PROFILE_FILE=cov.profraw BUILD_DIR/ops_coverage CORPUS_DIR; llvm-profdata merge -o cov.profdata
#       cov.profraw; llvm-cov report BUILD_DIR/ops_coverage -instr-profile=cov.profdata plugins/
#
# BUILD_DIR defaults to build/fuzz-<mode>. FUZZ_CXX picks the libFuzzer compiler (default: the first of
# clang++, clang++-19 ... clang++-14 that links a libFuzzer program); CXX the standalone one (default c++).
# ONNX Runtime's headers are needed only because the top-level CMakeLists.txt looks for them; set
# ORT_INCLUDE_DIR as for `pip install .` if they are not in .deps/ or /usr/include.
#
# Exit status 77: no clang with libFuzzer here. On Debian/Ubuntu: apt-get install clang libclang-rt-14-dev
# (or the libclang-rt-NN-dev matching your clang; on older releases libFuzzer ships in clang itself).
set -euo pipefail

mode=${1:?usage: build.sh libfuzzer|standalone|coverage [BUILD_DIR]}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${2:-$root/build/fuzz-$mode}
mkdir -p "$out"
warnings=(-Wall -Wextra -Werror)

case $mode in
  libfuzzer)
    compiler=${FUZZ_CXX:-}
    probe_src=$out/probe.cc
    echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > "$probe_src"
    candidates=(${compiler:-clang++ clang++-19 clang++-18 clang++-17 clang++-16 clang++-15 clang++-14})
    compiler=
    for candidate in "${candidates[@]}"; do
      if command -v "$candidate" > /dev/null &&
         "$candidate" -fsanitize=fuzzer,address,undefined "$probe_src" -o "$out/probe" 2> "$out/probe.log"; then
        compiler=$candidate
        break
      fi
    done
    if [[ -z $compiler ]]; then
      echo "build.sh: no clang++ with libFuzzer found (tried: ${candidates[*]}); install clang and" \
           "libclang-rt-14-dev (Debian 12) or set FUZZ_CXX" >&2
      exit 77
    fi
    flags="-g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all"
    kernel_flags="$flags -fsanitize=fuzzer-no-link"
    link_flags=(-fsanitize=fuzzer,address,undefined)
    sources=("$root/tests/fuzz/ops_fuzzer.cc")
    binary=$out/ops_fuzzer
    ;;
  coverage)
    compiler=${FUZZ_CXX:-clang++}
    flags="-g -fprofile-instr-generate -fcoverage-mapping"
    kernel_flags=$flags
    link_flags=(-fprofile-instr-generate)
    sources=("$root/tests/fuzz/ops_fuzzer.cc" "$root/tests/fuzz/standalone_main.cc")
    binary=$out/ops_coverage
    ;;
  standalone)
    compiler=${CXX:-c++}
    flags="-g"
    kernel_flags=$flags
    link_flags=()
    sources=("$root/tests/fuzz/ops_fuzzer.cc" "$root/tests/fuzz/standalone_main.cc")
    binary=$out/ops_driver
    ;;
  *)
    echo "build.sh: unknown mode '$mode' (libfuzzer, standalone or coverage)" >&2
    exit 2
    ;;
esac

# The kernels: the project's own target, Release (-O3) as shipped, plus the flags above.
if ! cmake -S "$root" -B "$out/cmake" -DCMAKE_BUILD_TYPE=Release -DBYTETX_BUILD_CUDA=OFF \
     -DCMAKE_CXX_COMPILER="$compiler" -DCMAKE_CXX_FLAGS="$kernel_flags" > "$out/cmake.log" 2>&1; then
  tail -n 30 "$out/cmake.log" >&2
  echo "build.sh: configuring the CMake project failed (log: $out/cmake.log)" >&2
  exit 1
fi
cmake --build "$out/cmake" --target bytetx_cpu_kernels -j "$(nproc)" > "$out/build.log" 2>&1 ||
  { tail -n 30 "$out/build.log" >&2; echo "build.sh: building bytetx_cpu_kernels failed" >&2; exit 1; }

# shellcheck disable=SC2086  # flags is a word list
"$compiler" -std=c++17 -O1 $flags "${warnings[@]}" -I"$root/plugins" "${sources[@]}" \
  "$out/cmake/libbytetx_cpu_kernels.a" "${link_flags[@]}" -o "$binary"
echo "$binary"
