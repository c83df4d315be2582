"""The transposes under every copy of a map channels-last, every NCHW result
put in order and every output gradient loaded (src/cpu_common.h transpose:
AVX2's 8 x 8 tiles, SSE2's 4 x 4, then single elements) against a plain
loop, on random shapes and strides, for each SIMD target the CPU has. g++
builds tests/cpu_host/transposes.cpp with the extension's flags, and in the
sanitizer run (.ci/sanitize.sh) with AddressSanitizer and UBSan, which then
check every read and write of the tiles against the arrays' ends."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cyroi import _cpu_ext

ROOT = Path(__file__).resolve().parent.parent
TARGETS = [width for width in (64, 32, 16) if width <= _cpu_ext.simd_bytes()]


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    compiler = shutil.which("g++")
    assert compiler, "g++ is needed to build the transpose driver"
    program = tmp_path_factory.mktemp("transposes") / "transposes"
    sanitizers = (["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
                  if os.environ.get("CYROI_SANITIZED") else [])
    subprocess.run([compiler, "-std=c++17", "-O3", "-ffp-contract=off", "-fopenmp",
                    "-Wno-psabi", *sanitizers, "-I", str(ROOT / "src"), "-o", str(program),
                    str(ROOT / "tests" / "cpu_host" / "transposes.cpp")], check=True)
    return program


@pytest.mark.parametrize("simd", TARGETS)
def test_transposes_equal_a_plain_loop(driver, simd):
    run = subprocess.run([str(driver)], env=dict(os.environ, CYROI_SIMD_BYTES=str(simd)),
                         capture_output=True, text=True)
    assert run.stdout.split() == ["simd", str(simd), "mismatches", "0"], run.stdout + run.stderr
