"""`python -m cyroi`: the demo runs, reports what it did, draws a valid PNG,
and its picture puts roi_pool's bins and roi_align's samples where SPEC.md
says they are."""
import importlib.util
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cyroi import _demo_picture

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def run_python(*args):
    """Run the interpreter from the repository root (where cyroi is
    imported from, as in the rest of the suite); return the finished process."""
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def run_demo(*args):
    done = run_python("-m", "cyroi", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_report_without_picture():
    out = run_demo("--no-picture", "--threads", "1", "--seed", "3")
    assert "threads: 1 (cyroi.get_num_threads())" in out
    assert "features  (2, 256, 50, 68) float32" in out
    assert "proposals (512, 5)" in out
    op_lines = [line for line in out.splitlines() if line.startswith(("roi_pool", "roi_align"))]
    assert len(op_lines) == 3
    for line, mode in zip(op_lines, ("roi_pool  7x7", "avg", "max")):
        assert mode in line
        assert "(512, 256, 7, 7)" in line
        assert len(re.findall(r"\d+\.\d ms", line)) == 2  # forward and backward
    assert "backward returns (2, 256, 50, 68)" in out
    objects, background = map(float, re.search(
        r"([\d.]+) in object boxes vs ([\d.]+) in background boxes", out).groups())
    # Object channels must fire inside object boxes far more than outside.
    assert objects > 2 * background > 0
    assert "picture: not drawn (--no-picture)" in out


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="the picture needs matplotlib")
def test_picture_is_a_png(tmp_path):
    path = tmp_path / "demo.png"
    out = run_demo("--output", str(path))
    assert f"picture: {path}" in out
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 1000 and 500 < height < width  # two panels side by side
    import matplotlib.image
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (height, width) and pixels[..., :3].std() > 0.05


def test_without_matplotlib_says_how_to_get_the_picture(tmp_path):
    path = tmp_path / "demo.png"
    # None in sys.modules makes `import matplotlib` raise ImportError.
    done = run_python("-c", "import sys; sys.modules['matplotlib'] = None; "
                            "from cyroi.__main__ import main; "
                            f"raise SystemExit(main(['--output', {str(path)!r}]))")
    assert done.returncode == 0, done.stderr
    assert 'pip install "cyroi[plot]"' in done.stdout
    assert not path.exists()


def test_bad_thread_count_is_refused():
    done = run_python("-m", "cyroi", "--threads", "0", "--no-picture")
    assert done.returncode == 2 and "--threads" in done.stderr


# The picture measures the ops' geometry by running them on coordinate
# ramps; here it is checked against SPEC.md's formulas, written out again.

def c_round(value):
    return math.floor(abs(value) + 0.5) * (1 if value >= 0 else -1)


def spec_roi_pool_bins(box, scale, size, shape):
    """(PH, PW, 4) cell-edge x1, y1, x2, y2 of each roi_pool bin (SPEC roi_pool)."""
    (ph_count, pw_count), (height, width) = size, shape
    sx, sy, ex, ey = (c_round(v * scale) for v in box)
    bh, bw = max(ey - sy + 1, 1) / ph_count, max(ex - sx + 1, 1) / pw_count
    bins = np.empty((ph_count, pw_count, 4))
    for ph in range(ph_count):
        for pw in range(pw_count):
            bins[ph, pw] = (min(max(math.floor(pw * bw) + sx, 0), width),
                            min(max(math.floor(ph * bh) + sy, 0), height),
                            min(max(math.ceil((pw + 1) * bw) + sx, 0), width),
                            min(max(math.ceil((ph + 1) * bh) + sy, 0), height))
    return bins


def spec_roi_align_samples(box, scale, size, ratio):
    """x, y grids (PH*ratio, PW*ratio) of roi_align samples, aligned=True,
    shifted by +0.5 to cell-edge coordinates (SPEC roi_align)."""
    sx, sy, ex, ey = (v * scale - 0.5 for v in box)
    bh, bw = (ey - sy) / size[0], (ex - sx) / size[1]
    ys = [sy + ph * bh + (iy + 0.5) * bh / ratio for ph in range(size[0]) for iy in range(ratio)]
    xs = [sx + pw * bw + (ix + 0.5) * bw / ratio for pw in range(size[1]) for ix in range(ratio)]
    x_grid, y_grid = np.meshgrid(xs, ys)
    return x_grid + 0.5, y_grid + 0.5


BOXES = [(426.3, 297.3, 604.3, 485.0), (153.9, 237.1, 310.3, 392.6), (40.0, 40.0, 56.0, 200.0),
         (100.5, 88.5, 260.5, 90.0)]


@pytest.mark.parametrize("box", BOXES)
def test_picture_roi_pool_bins_follow_spec(box):
    got = _demo_picture._roi_pool_bins((50, 68), box, 1 / 16)
    np.testing.assert_array_equal(got, spec_roi_pool_bins(box, 1 / 16, _demo_picture.BINS,
                                                          (50, 68)))


@pytest.mark.parametrize("box", BOXES)
@pytest.mark.parametrize("ratio", [1, 2, 3])
def test_picture_roi_align_samples_follow_spec(box, ratio):
    got_x, got_y = _demo_picture._roi_align_samples((50, 68), box, 1 / 16, ratio)
    want_x, want_y = spec_roi_align_samples(box, 1 / 16, _demo_picture.BINS, ratio)
    np.testing.assert_allclose(got_x, want_x, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got_y, want_y, rtol=0, atol=1e-9)
