"""Hypothesis strategies shared by the property tests: feature maps and boxes
inside, across and outside the map, inverted and degenerate."""
import numpy as np
from hypothesis import strategies as st

SCALES = [1.0, 0.5, 0.25, 1 / 16, 2.0]


@st.composite
def boxes(draw, count, height, width, scale):
    """(count, 4) boxes in image pixels around a (height, width) map."""
    span_y, span_x = height / scale, width / scale
    rows = []
    for _ in range(count):
        kind = draw(st.sampled_from(["inside", "across", "outside", "inverted", "point"]))
        if kind == "point":
            x = draw(st.floats(-span_x, 2 * span_x, width=32))
            y = draw(st.floats(-span_y, 2 * span_y, width=32))
            rows.append([x, y, x, y])
            continue
        lo_x, hi_x = {"inside": (0, span_x), "across": (-span_x, 2 * span_x),
                      "outside": (1.5 * span_x, 4 * span_x),
                      "inverted": (-span_x, 2 * span_x)}[kind]
        lo_y, hi_y = lo_x * span_y / span_x, hi_x * span_y / span_x
        x1, x2 = sorted(draw(st.floats(lo_x, hi_x, width=32)) for _ in range(2))
        y1, y2 = sorted(draw(st.floats(lo_y, hi_y, width=32)) for _ in range(2))
        if kind == "inverted":
            x1, x2 = x2, x1
            if draw(st.booleans()):
                y1, y2 = y2, y1
        rows.append([x1, y1, x2, y2])
    return np.array(rows, np.float64).reshape(count, 4)


@st.composite
def roi_problem(draw, max_side=9):
    """features (N, C, H, W) float64, rois (K, 5), scale, output size."""
    n = draw(st.integers(1, 2))
    c = draw(st.integers(1, 3))
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    k = draw(st.integers(0, 5))
    scale = draw(st.sampled_from(SCALES))
    seed = draw(st.integers(0, 2**32 - 1))
    features = np.random.default_rng(seed).standard_normal((n, c, h, w))
    b = draw(boxes(k, h, w, scale))
    batch = np.array([draw(st.integers(0, n - 1)) for _ in range(k)], np.float64)
    rois = np.column_stack([batch, b]) if k else np.zeros((0, 5))
    size = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    return features, rois, scale, size


def to_layout(array, layout):
    return array if layout == "NCHW" else np.ascontiguousarray(array.transpose(0, 2, 3, 1))


def from_layout(array, layout):
    return array if layout == "NCHW" else array.transpose(0, 3, 1, 2)


def thread_workload(dtype, channels, count):
    """A fixed 3-image problem with `count` boxes inside, across and outside
    the map (inverted ones too), for the thread-count determinism tests."""
    rng = np.random.default_rng(7)
    f = rng.standard_normal((3, channels, 23, 29)).astype(dtype)
    xy = rng.uniform(-40, 300, (count, 2))
    wh = rng.uniform(-10, 200, (count, 2))
    rois = np.column_stack([rng.integers(0, 3, count), xy, xy + wh]).astype(dtype)
    return f, rois


def assert_same_bits_for_1_2_4_threads(run, workload, layout):
    """run(f, rois, layout) -> arrays on workload's (f, rois) (f made
    channels-last for NHWC) gives the same bytes at 1, 2 and 4 threads."""
    import cyroi
    f, rois = workload
    if layout == "NHWC":
        f = np.ascontiguousarray(f.transpose(0, 2, 3, 1))
    runs = {}
    for threads in (1, 2, 4):
        cyroi.set_num_threads(threads)
        assert cyroi.get_num_threads() == threads
        runs[threads] = run(f, rois, layout)
    for threads in (2, 4):
        for a, b in zip(runs[1], runs[threads]):
            assert a.tobytes() == b.tobytes()
