"""Every SIMD target this CPU has, not only the widest, which the rest of the
suite runs: the loops hold their channels in registers of the target's
width (src/cpu_common.h, on_simd), so each target has code of its own. The
reference tests of roi_align and roi_pool run again in a subprocess for each
narrower target, chosen by the environment variable CYROI_SIMD_BYTES."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cyroi import _cpu_ext

TESTS = Path(__file__).resolve().parent
NARROWER = [width for width in (32, 16) if width < _cpu_ext.simd_bytes()]


def run(command, simd):
    env = dict(os.environ, CYROI_SIMD_BYTES=str(simd))
    return subprocess.run([sys.executable, *command], env=env, cwd=TESTS.parent,
                          capture_output=True, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("simd", NARROWER)
def test_narrower_target_matches_reference(simd):
    picked = run(["-c", "from cyroi import _cpu_ext; print(_cpu_ext.simd_bytes())"], simd)
    assert picked.stdout.split() == [str(simd)], picked.stderr
    # Two workers where pytest-xdist is installed: a minute in one process,
    # the suite's longest test by far.
    workers = ["-n", "2"] if importlib.util.find_spec("xdist") else []
    suite = run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *workers,
                 str(TESTS / "test_vs_reference.py")], simd)
    assert suite.returncode == 0, suite.stdout[-4000:] + suite.stderr[-2000:]
