"""The native kernels' C sources (kiln/codegen/csrc) and their boundary with Python (kiln/codegen/native.py):
every instruction-set variant compiles without a warning under -Wall -Wextra -Wmissing-prototypes -Werror
(with the flags and defines of the real build), native.EXPORTS matches the header's declarations and types
every function of a build, the panel width is defined once (in Python) and another value builds and runs, the
build cache is keyed by every source's text, and the sources ship as package data.

The kernels' results are tests/test_native.py's subject.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from kiln.codegen import native

ROOT = Path(__file__).resolve().parents[1]
CSRC = Path(native.__file__).with_name(native.CSRC)
WARNINGS = ["-Wall", "-Wextra", "-Wmissing-prototypes", "-Werror"]  # missing prototypes: an export not in the header
# what is compiled: each variant with its build's flags, and the int4 row kernel's BF16 route, which the native
# variant builds only on a CPU with AVX512-BF16, with the avx512 variant's flags + -mavx512bf16 on any machine
CHECKS = {**{isa: (isa, []) for isa in native.ISAS}, "avx512+bf16": ("avx512", ["-mavx512bf16"])}


def _cc() -> str:
    cc = native._compiler()
    if cc is None:
        pytest.skip("no C compiler (cc, gcc or $CC): the native kernels are not built here")
    return cc


@pytest.mark.parametrize("check", list(CHECKS))
def test_every_variant_compiles_without_warnings(check, tmp_path):
    cc = _cc()
    isa, extra = CHECKS[check]
    fl = [f for f in native.flags(isa) if f != "-shared"] + extra
    isa_flags = [f for f in fl if f.startswith("-m")]
    probe = subprocess.run([cc, *isa_flags, "-x", "c", "-c", os.devnull, "-o", str(tmp_path / "probe.o")],
                           capture_output=True, text=True, check=False)
    if probe.returncode:
        why = (probe.stderr.strip().splitlines() or ["it refuses them"])[0]
        pytest.skip(f"the C compiler {cc} lacks the {check} variant's instruction-set flags "
                    f"{' '.join(isa_flags)}: {why}")
    for opt in ("-O3", "-O0"):  # the real build; a debug build, where nothing is inlined
        cmd = [cc, *[opt if f == "-O3" else f for f in fl], *WARNINGS, "-c", str(CSRC / native.MAIN_SOURCE),
               "-o", str(tmp_path / "kiln_native.o")]
        r = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert r.returncode == 0, f"{check} ({' '.join(cmd)}):\n{r.stderr}"


def _kind(param: str) -> str:
    if "*" in param:
        return "ptr"
    return {"long": "long", "int": "int"}[param.split()[0]]


def test_exports_match_the_header_and_the_definitions():
    header = (CSRC / "kiln_native.h").read_text()
    declared = {}
    for result, name, params in re.findall(r"^(void|int)\s+(kiln_\w+)\s*\(([^)]*)\)\s*;", header, re.MULTILINE):
        args = () if params.strip() == "void" else tuple(_kind(p.strip()) for p in params.split(","))
        declared[name] = (args, None if result == "void" else result)
    assert declared == native.EXPORTS
    definition = re.compile(r"^(?:void|int)\s+(kiln_\w+)\s*\(", re.MULTILINE)
    defined = {name for f in CSRC.glob("*.c") for name in definition.findall(f.read_text())}
    assert defined == set(native.EXPORTS)
    assert set(native.KERNELS) == {name for name, (_, result) in native.EXPORTS.items() if result is None}


def test_a_build_is_typed_from_the_table_and_refuses_other_names(monkeypatch):
    why = native.unavailable("portable")
    if why is not None:
        pytest.skip(why)
    lib = native.library("portable")
    assert lib is not None
    for name, (args, result) in native.EXPORTS.items():
        fn = getattr(lib, name)
        assert tuple(fn.argtypes) == tuple(native._CTYPES[a] for a in args), name
        assert fn.restype is native._CTYPES[result], name
    assert (lib.vector_width, lib.tile_rows, lib.q4_tile_rows, lib.i4_group_multiple) == (4, 4, 2, 32)
    with pytest.raises(AttributeError, match="no function 'kiln_linear_f16'.*EXPORTS"):
        lib.kiln_linear_f16  # noqa: B018
    monkeypatch.setitem(native.EXPORTS, "kiln_missing", ((), "int"))  # a table entry the C lacks
    with pytest.raises(RuntimeError, match="does not export kiln_missing.*csrc"):
        native.NativeLibrary(lib._name, "portable")


def test_the_panel_width_is_defined_once_in_python():
    for isa in native.ISAS:
        assert f"-DKILN_PANEL={native.PANEL}" in native.flags(isa)
    for f in CSRC.iterdir():  # the C takes it from the compiler: no number of its own
        assert not re.search(r"#\s*define\s+(KILN_)?PANEL\s+\d", f.read_text()), f.name


def test_the_c_does_not_compile_without_the_python_constants(tmp_path):
    cc = _cc()
    fl = [f for f in native.flags("portable") if not f.startswith("-DKILN_PANEL") and f != "-shared"]
    r = subprocess.run([cc, *fl, "-fsyntax-only", str(CSRC / native.MAIN_SOURCE)], capture_output=True, text=True,
                       check=False)
    assert r.returncode != 0 and "KILN_PANEL" in r.stderr


def test_another_panel_width_builds_and_runs(monkeypatch, tmp_path):
    """native.PANEL is the one definition: at 64 the AVX2 variant's packing and float / int8 / int4 panel
    kernels still agree with torch (the portable variant's 4-float vectors refuse it at compile time: a
    panel of 16 vectors)."""
    why = native.unavailable("avx2")
    if why is not None:
        pytest.skip(why)
    from kiln.ir.ops_quant import dequantize, quantize_int4, quantize_int8

    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("KILN_PACK", "1")
    monkeypatch.setattr(native, "PANEL", 64)
    monkeypatch.setitem(native.DEFINES, "KILN_PANEL", 64)
    monkeypatch.setattr(native, "_libs", {})
    g = torch.Generator().manual_seed(64)
    n, k = 150, 448  # three panels of 64, the last partial
    w, b = torch.randn(n, k, generator=g), torch.randn(n, generator=g)
    x = torch.randn(7, k, generator=g)
    with native.using("avx2") as lib:
        assert lib is not None and "-DKILN_PANEL=64" in native.flags("avx2")
        wp = native.packed(w, force=True)
        assert wp.numel() == 192 * k
        held = native.PackedWeight.wrap(wp, n, k)
        assert torch.equal(held.unpack(), w)
        torch.testing.assert_close(native.linear(x, held, b), F.linear(x, w, b), rtol=1e-4, atol=1e-4)
        q8, s8 = quantize_int8(w)
        p8 = native._pack_quantized(q8, s8, None, {"format": "int8", "group_size": 0})
        assert torch.equal(p8.unpack(), q8)
        ref8 = F.linear(x, dequantize(q8, s8, None, format="int8", group_size=0), b)
        torch.testing.assert_close(native.qlinear_packed(x, p8, s8, b), ref8, rtol=1e-4, atol=1e-4)
        q4, s4, o4 = quantize_int4(w, 64, False)
        p4 = native._pack_quantized(q4, s4, o4, {"format": "int4", "group_size": 64})
        assert torch.equal(p4.unpack(), q4)
        ref4 = F.linear(x, dequantize(q4, s4, o4, format="int4", group_size=64), b)
        torch.testing.assert_close(native.qlinear_packed(x, p4, s4, b), ref4, rtol=1e-4, atol=2e-4)


def test_the_build_cache_is_keyed_by_every_source_file(monkeypatch):
    src = native.sources()
    assert native.MAIN_SOURCE in src and "kiln_native.h" in src
    key = native.build_key("portable", "cc", src)
    assert native.build_key("portable", "cc", dict(reversed(src.items()))) == key
    for name in src:  # editing any file (a comment will do) builds anew
        assert native.build_key("portable", "cc", {**src, name: src[name] + "/* edited */\n"}) != key, name
    assert native.build_key("avx2", "cc", src) != key and native.build_key("portable", "gcc", src) != key
    monkeypatch.setitem(native.DEFINES, "KILN_PANEL", 64)
    assert native.build_key("portable", "cc", src) != key


def test_the_sources_are_package_data_and_an_installed_copy_finds_them(tmp_path):
    table = re.search(r"^\[tool\.setuptools\.package-data\]\s*^kiln\s*=\s*(\[[^\]]*\])",
                      (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert table, "pyproject.toml: no [tool.setuptools.package-data] kiln = [...]"
    globs = ast.literal_eval(table.group(1))
    files = sorted(f.name for f in CSRC.iterdir() if f.suffix in (".c", ".h"))
    assert files == sorted(native.sources())
    assert all(any(fnmatch(f"codegen/{native.CSRC}/{name}", pat) for pat in globs) for name in files)
    try:
        import setuptools  # noqa: F401
    except ImportError:
        pytest.skip("setuptools is not installed: the wheel is not built")
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, proj / name)
    shutil.copytree(ROOT / "kiln", proj / "kiln", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-build-isolation", "--no-deps", str(proj), "-w", str(tmp_path / "dist")],
                   check=True, capture_output=True, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("kiln-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(tmp_path / "site"), str(wheel)], check=True,
                   capture_output=True, cwd=tmp_path)
    site = str(tmp_path / "site")
    code = (f"from kiln.codegen import native; assert native.__file__.startswith({site!r}), native.__file__; "
            "print(' '.join(native.sources()))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=False,
                       env={**os.environ, "PYTHONPATH": site})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == files
