#!/usr/bin/env bash
# System tools the reliability tests use: clang with libFuzzer and the sanitizers, and valgrind.
# Installed with apt-get where that is possible (root on Debian/Ubuntu); elsewhere the fuzzing tests
# skip and say which tool is missing.
set -euo pipefail
packages=()
command -v clang++ >/dev/null || packages+=(clang)
command -v valgrind >/dev/null || packages+=(valgrind)
clang_major=$(clang++ --version 2>/dev/null | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -n 1 || true)
if [ -n "$clang_major" ] && ! ls /usr/lib/llvm-"$clang_major"/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  packages+=("libclang-rt-$clang_major-dev")
fi
[ ${#packages[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "note: ${packages[*]} not installed; the fuzzing tests will skip (install them to run them)"
  exit 0
fi
install() {
  apt-get update -qq || return 1
  if [ -z "$clang_major" ]; then
    apt-get install -y -qq clang valgrind >/dev/null || return 1
    clang_major=$(clang++ --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -n 1)
    packages=("libclang-rt-$clang_major-dev")
  fi
  apt-get install -y -qq "${packages[@]}" >/dev/null
}
# A failed install costs the fuzzing tests (they skip and say why), not the whole test run.
install || echo "note: could not install ${packages[*]}; the fuzzing tests will skip"
