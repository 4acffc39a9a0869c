#!/usr/bin/env bash
# System tools the reliability tests use: clang with libFuzzer and the sanitizers, and valgrind.
# Installed with apt-get where that is possible (root on Debian/Ubuntu); elsewhere the fuzzing tests
# skip and say which tool is missing.
set -euo pipefail
packages=()
command -v clang++ >/dev/null || packages+=(clang)
command -v valgrind >/dev/null || packages+=(valgrind)
clang_major=$(clang++ --version 2>/dev/null | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -n 1)
if [ -n "$clang_major" ] && ! ls /usr/lib/llvm-"$clang_major"/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  packages+=("libclang-rt-$clang_major-dev")
fi
[ ${#packages[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "note: ${packages[*]} not installed; the fuzzing tests will skip (install them to run them)"
  exit 0
fi
apt-get update -qq
if [ -z "$clang_major" ]; then
  apt-get install -y -qq clang valgrind >/dev/null
  clang_major=$(clang++ --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -n 1)
  apt-get install -y -qq "libclang-rt-$clang_major-dev" >/dev/null
else
  apt-get install -y -qq "${packages[@]}" >/dev/null
fi
