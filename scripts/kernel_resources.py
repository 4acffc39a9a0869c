"""Resource usage of every CUDA kernel in a built library, read from its cubins.

The fatbinary of ``libbytetx_ort_cuda.so`` holds one cubin (a CUDA ELF file) per architecture,
uncompressed (the build passes ``--compress-mode=none``). For each kernel this reads:

- registers per thread: attribute EIATTR_REGCOUNT of the cubin's ``.nv.info`` section (before sm_90
  also the top byte of the ``.text.<kernel>`` section's ``sh_info``);
- stack frame (local memory, spills included) in bytes: attribute EIATTR_FRAME_SIZE of ``.nv.info``;
- static shared memory in bytes: the size of ``.nv.shared.<kernel>``; from sm_90 on it includes the
  1 KiB that the hardware reserves per block (dynamic shared memory is set at launch; docs/kernels.md
  gives it per kernel).

No CUDA tool is needed (cuobjdump is not part of every toolkit install).

Usage::

    python scripts/kernel_resources.py [LIBRARY]                   # a table on stdout
    python scripts/kernel_resources.py [LIBRARY] --update-docs docs/kernels.md
"""

from __future__ import annotations

import argparse
import re
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

LIBRARY_ENV = "BYTETX_CUDA_LIBRARY"
DOCS_BEGIN = "<!-- kernel-resources:begin (scripts/kernel_resources.py --update-docs) -->"
DOCS_END = "<!-- kernel-resources:end -->"

_ELF_MAGIC = b"\x7fELF"
_EM_CUDA = 190
_ELFOSABI_CUDA = 0x41
_EIATTR_FRAME_SIZE = 0x11
_EIATTR_REGCOUNT = 0x2F
_EIFMT_SVAL = 4


@dataclass(frozen=True)
class KernelResources:
    arch: int  # 80 for sm_80
    name: str  # demangled when c++filt is available
    registers: int
    stack_frame: int  # bytes of local memory per thread (spills, local arrays)
    static_shared: int  # bytes


def default_library() -> Path | None:
    """``BYTETX_CUDA_LIBRARY``, else the installed package's library, else None."""
    try:
        import bytetx

        return Path(bytetx.ort_cuda_library_path())
    except (ImportError, FileNotFoundError):
        return None


def _sections(elf: bytes) -> list[tuple[str, int, int, int, int]]:
    """(name, type, offset, size, info) of every section of a 64-bit little-endian ELF image."""
    (shoff,) = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    strtab = headers[shstrndx][4]

    def name(offset: int) -> str:
        end = elf.index(b"\0", strtab + offset)
        return elf[strtab + offset : end].decode()

    return [(name(h[0]), h[1], h[4], h[5], h[7]) for h in headers]


def _elf_size(elf: bytes) -> int:
    (shoff,) = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", elf, 0x3A)
    end = shoff + shentsize * shnum
    for _, typ, offset, size, _ in _sections(elf):
        if typ != 8:  # SHT_NOBITS occupies no file bytes
            end = max(end, offset + size)
    return end


def cubins(library: Path) -> list[bytes]:
    """Every cubin embedded in the library's ``.nv_fatbin`` section."""
    data = library.read_bytes()
    fatbin = next((s for s in _sections(data) if s[0] == ".nv_fatbin"), None)
    if fatbin is None:
        raise ValueError(f"{library} has no .nv_fatbin section: it holds no CUDA kernels")
    blob = data[fatbin[2] : fatbin[2] + fatbin[3]]
    found = []
    position = blob.find(_ELF_MAGIC)
    while position >= 0:
        elf = blob[position:]
        is_cubin = (
            len(elf) > 0x40
            and elf[4] == 2  # 64-bit
            and elf[7] == _ELFOSABI_CUDA
            and struct.unpack_from("<H", elf, 18)[0] == _EM_CUDA
        )
        if is_cubin:
            size = _elf_size(elf)
            found.append(elf[:size])
            position = blob.find(_ELF_MAGIC, position + size)
        else:
            position = blob.find(_ELF_MAGIC, position + 1)
    if not found and blob:
        raise ValueError(
            f"{library}: no plain cubin in .nv_fatbin; was it built with compressed device code? "
            "(the CMake build passes --compress-mode=none)"
        )
    return found


def cubin_arch(cubin: bytes) -> int:
    """The SM version of a cubin: e_flags bits 8-15 from ELF ABI version 8 on, bits 0-7 before."""
    (flags,) = struct.unpack_from("<I", cubin, 0x30)
    return (flags >> 8) & 0xFF if cubin[8] >= 8 else flags & 0xFF


def _symbol_attributes(cubin: bytes, sections, wanted: int) -> dict[int, int]:
    """The value of the per-function attribute ``wanted`` by symbol index, from the global .nv.info."""
    values: dict[int, int] = {}
    for name, _, offset, size, _ in sections:
        if name != ".nv.info":
            continue
        position, end = offset, offset + size
        while position < end:
            fmt, attr = cubin[position], cubin[position + 1]
            if fmt != _EIFMT_SVAL:
                position += 4
                continue
            (length,) = struct.unpack_from("<H", cubin, position + 2)
            if attr == wanted and length == 8:
                symbol, value = struct.unpack_from("<II", cubin, position + 4)
                values[symbol] = value
            position += 4 + length
    return values


def _demangle(names: list[str]) -> dict[str, str]:
    tool = shutil.which("c++filt")
    if tool is None or not names:
        return {n: n for n in names}
    out = subprocess.run([tool], input="\n".join(names), capture_output=True, text=True, check=True).stdout
    return dict(zip(names, out.splitlines()))


def kernel_resources(library: Path) -> list[KernelResources]:
    """One record per kernel and architecture, sorted by architecture then name."""
    raw = []
    for cubin in cubins(library):
        arch = cubin_arch(cubin)
        sections = _sections(cubin)
        names = {s[0] for s in sections}
        frames = _symbol_attributes(cubin, sections, _EIATTR_FRAME_SIZE)
        registers = _symbol_attributes(cubin, sections, _EIATTR_REGCOUNT)
        for name, _, _, _, info in sections:
            if not name.startswith(".text."):
                continue
            kernel = name[len(".text.") :]
            if f".nv.constant0.{kernel}" not in names:
                continue  # a device function, not a kernel entry
            shared = next((s[3] for s in sections if s[0] == f".nv.shared.{kernel}"), 0)
            symbol = info & 0xFFFFFF
            raw.append((arch, kernel, registers.get(symbol, info >> 24), frames.get(symbol, 0), shared))
    readable = _demangle(sorted({r[1] for r in raw}))
    records = [KernelResources(a, readable[k], r, f, s) for a, k, r, f, s in raw]
    return sorted(records, key=lambda r: (r.arch, r.name))


def short_name(name: str) -> str:
    """``void bytetx::cuda::fused_mha::TiledMHAKernel<__half, 64>(...)`` -> ``fused_mha::TiledMHAKernel<__half, 64>``."""
    name = re.sub(r"^void ", "", name)
    name = name.replace("bytetx::cuda::", "")
    depth = 0
    for i, char in enumerate(name):
        depth += char == "<"
        depth -= char == ">"
        if char == "(" and depth == 0:
            return name[:i]
    return name


def markdown_table(records: list[KernelResources]) -> str:
    """Registers per thread for every kernel (rows) and architecture (columns), static shared memory
    (the smallest over the architectures: sm_90 and newer add 1 KiB reserved per block)."""
    archs = sorted({r.arch for r in records})
    kernels = sorted({short_name(r.name) for r in records})
    cell = {(short_name(r.name), r.arch): r for r in records}
    lines = [
        "| kernel | static smem (B) | " + " | ".join(f"sm_{a}" for a in archs) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in archs) + " |",
    ]
    for kernel in kernels:
        shared = min((cell[(kernel, a)].static_shared for a in archs if (kernel, a) in cell), default=0)
        regs = [str(cell[(kernel, a)].registers) if (kernel, a) in cell else "-" for a in archs]
        lines.append(f"| `{kernel}` | {shared} | " + " | ".join(regs) + " |")
    frames = sum(r.stack_frame for r in records)
    lines.append("")
    lines.append(
        f"Registers per thread. {len(records)} kernel builds over {len(archs)} architectures; "
        f"stack frames (local memory, spills) total {frames} bytes. Static shared memory as on sm_80; "
        "from sm_90 on each block also reserves 1 KiB."
    )
    return "\n".join(lines)


def update_docs(doc: Path, table: str) -> None:
    text = doc.read_text()
    if DOCS_BEGIN not in text or DOCS_END not in text:
        raise ValueError(f"{doc} lacks the markers {DOCS_BEGIN!r} and {DOCS_END!r}")
    head, rest = text.split(DOCS_BEGIN, 1)
    _, tail = rest.split(DOCS_END, 1)
    doc.write_text(f"{head}{DOCS_BEGIN}\n{table}\n{DOCS_END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", nargs="?", type=Path, help=f"default: ${LIBRARY_ENV} or the installed one")
    parser.add_argument("--update-docs", type=Path, metavar="KERNELS_MD", help="rewrite the table in this file")
    args = parser.parse_args(argv)
    library = args.library or default_library()
    if library is None or not library.is_file():
        parser.error(f"no CUDA library found: pass its path or set {LIBRARY_ENV}")
    table = markdown_table(kernel_resources(library))
    if args.update_docs:
        update_docs(args.update_docs, table)
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
