"""Thread safety: Python threads calling every entry point at once, each
asking for its own OpenMP thread count, get exactly the serial results; and
the GIL is released while the compiled loops run."""
import random
import threading
import time
from dataclasses import replace

import numpy as np
import pytest

import fuzz  # noqa: F401  (puts this tree's cyroi and the oracle on the path)
import cyroi
from fuzz.case import build, robustness_recipes
from fuzz.check import call
from fuzz.memory import as_numpy
from fuzz.table import ENTRY_POINTS

PYTHON_THREADS = 8
SIZE = 7
FEATURE_CHANNELS = 40


@pytest.fixture(autouse=True)
def restore_threads():
    yield
    cyroi.set_num_threads(None)


def output_channels(entry):
    """About FEATURE_CHANNELS feature channels: position-sensitive ops read
    SIZE * SIZE of them per output channel."""
    return max(1, FEATURE_CHANNELS // entry.family.input_channels(1, (SIZE, SIZE)))


def workload():
    """Cases big enough (a few ms each) that calls overlap in time; a
    3-level pyramid for multiscale_roi_align."""
    rng = np.random.default_rng(5)
    xy = rng.uniform(-10, 60, (24, 2))
    boxes = tuple((int(b), *map(float, xy[i]), *map(float, xy[i] + rng.uniform(0, 40, 2)))
                  for i, b in enumerate(rng.integers(0, 2, 24)))
    recipes = [recipe for entry in ENTRY_POINTS for layout in ("NCHW", "NHWC")
               for recipe in robustness_recipes(
                   entry, boxes, shape=(2, output_channels(entry), 48, 48), output_size=SIZE,
                   spatial_scale=0.8, layout=layout, depth=3)]
    return [build(replace(recipe, seed=seed)) for seed, recipe in enumerate(recipes)]


def results(case):
    """Every array a call returns (a pyramid's gradient is a list of them)."""
    arrays, _ = call(case)
    return [as_numpy(a).copy() for value in arrays.values() if value is not None
            for a in (value if isinstance(value, list) else [value])]


def test_concurrent_calls_with_different_thread_counts_match_serial():
    cases = workload()
    serial = [results(case) for case in cases]
    failures = []

    def worker(seed):
        rng = random.Random(seed)
        order = list(range(len(cases))) * 2
        rng.shuffle(order)
        for i in order:
            cyroi.set_num_threads(rng.choice([1, 2, 3, 4]))
            got = results(cases[i])
            if any(a.tobytes() != b.tobytes() for a, b in zip(got, serial[i])):
                failures.append((seed, cases[i].recipe.entry, cases[i].recipe.layout))

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(PYTHON_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


def long_calls():
    """A long call (a tenth of a second or more) of each op, forward and
    backward: every compiled loop must let go of the GIL."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 64, 96, 96)).astype(np.float32)
    rois = np.column_stack([np.zeros(800), rng.uniform(0, 40, (800, 2)),
                            rng.uniform(56, 96, (800, 2))])
    rotated = np.column_stack([rois[:, 0], (rois[:, 1:3] + rois[:, 3:]) / 2,
                               rois[:, 3:] - rois[:, 1:3], rng.uniform(-90, 90, 800)])
    pyramid = [x, np.ascontiguousarray(x[:, :, ::2, ::2])]
    pooled = np.ones((800, 64, 7, 7), np.float32)
    return {
        "roi_align": lambda: cyroi.roi_align(x, rois, 7, 1.0, 12),
        "roi_align_backward": lambda: cyroi.roi_align_backward(pooled, rois, x.shape, 1.0, 8),
        "roi_pool": lambda: [cyroi.roi_pool(x, rois, 7) for _ in range(3)],
        "ps_roi_align": lambda: cyroi.ps_roi_align(x, rois, 4, 1.0, 32),
        "ps_roi_pool": lambda: [cyroi.ps_roi_pool(x, rois, 4) for _ in range(20)],
        "roi_align_rotated": lambda: cyroi.roi_align_rotated(x, rotated, 7, 1.0, 8),
        "precise_roi_pool": lambda: cyroi.precise_roi_pool(x, rois, 7),
        "precise_roi_pool_backward": lambda: cyroi.precise_roi_pool_backward(pooled, rois, x),
        "multiscale_roi_align": lambda: cyroi.multiscale_roi_align(pyramid, rois, 7, [1.0, 0.5],
                                                                   8, canonical_scale=40),
    }


@pytest.mark.parametrize("op", list(long_calls()))
def test_gil_is_released_during_a_long_call(op):
    """A pure-Python counter thread keeps counting while another thread is
    inside a long call. Were the GIL held, it would stall for the whole
    call: sorting a big list (which holds the GIL) lets it count at about 1%
    of its free rate here; these calls, at about 40% on a loaded 2-core
    machine. Up to 3 tries, as other processes' load comes and goes (a held
    GIL fails every try)."""
    cyroi.set_num_threads(1)  # leave the other core to the counter
    call, rates = long_calls()[op], []
    for _ in range(3):
        rates.append(counting_rates(call))
        free, during = rates[-1]
        if during > 0.1 * free:
            return
    pytest.fail(f"counting rates (free, during the call): {rates}")


def counting_rates(long_call):
    """(counts per second of a Python thread while the main thread sleeps,
    the same while it runs long_call)."""
    count = [0]
    stop = threading.Event()

    def counter():
        while not stop.is_set():
            count[0] += 1

    def counted(action):
        start_count, start = count[0], time.perf_counter()
        action()
        return (count[0] - start_count) / (time.perf_counter() - start), \
            time.perf_counter() - start

    thread = threading.Thread(target=counter)
    thread.start()
    try:
        free_rate, _ = counted(lambda: time.sleep(0.3))
        call_rate, call_time = counted(long_call)
    finally:
        stop.set()
        thread.join()
    assert call_time > 0.05, f"the call took only {call_time:.3f} s: make it longer"
    return free_rate, call_rate
