#!/usr/bin/env bash
# Fetch ONNX Runtime's C/C++ API headers (Debian's libonnxruntime-dev) into .deps/onnxruntime/include.
# The pip wheels ship the runtime but not the headers the plugin library compiles against. CMake runs
# this when it finds no headers (so `pip install .` needs no step before it); it can also run alone.
# Skipped when ORT_INCLUDE_DIR points at headers already, or when they were fetched before.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.deps/onnxruntime"
if [ -n "${ORT_INCLUDE_DIR:-}" ] && [ -f "$ORT_INCLUDE_DIR/onnxruntime_c_api.h" ]; then
  echo "using ONNX Runtime headers from ORT_INCLUDE_DIR=$ORT_INCLUDE_DIR"; exit 0
fi
if [ -f "$dest/include/onnxruntime_c_api.h" ]; then
  echo "ONNX Runtime headers already in $dest/include"; exit 0
fi
for tool in apt-get dpkg; do
  command -v "$tool" >/dev/null || {
    echo "error: $tool not found (the headers come from Debian's libonnxruntime-dev); install ONNX Runtime's C API headers yourself and set ORT_INCLUDE_DIR to the folder holding onnxruntime_c_api.h" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
for suite in trixie sid; do
  echo "deb http://deb.debian.org/debian $suite main" > "$work/sources.list"
  opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=-"
        -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o "APT::Sandbox::User=root")
  if apt-get "${opts[@]}" -qq update && (cd "$work" && apt-get "${opts[@]}" -qq download libonnxruntime-dev); then
    break
  fi
done
debs=("$work"/libonnxruntime-dev_*.deb)
deb=${debs[0]}
[ -f "$deb" ] || { echo "error: could not download Debian's libonnxruntime-dev; set ORT_INCLUDE_DIR to your own ONNX Runtime headers" >&2; exit 1; }
dpkg -x "$deb" "$work/x"
mkdir -p "$dest"
rm -rf "$dest/include.tmp"
cp -r "$work/x/usr/include/onnxruntime" "$dest/include.tmp"
mv "$dest/include.tmp" "$dest/include"
echo "fetched $(basename "$deb") headers into $dest/include"
