"""Leaks: 10,000 calls of every entry point (forward, backward, and the
object form doing both) leave resident memory flat (< 5 MB growth, which
catches C++ leaks of even a few hundred bytes a call) and tracemalloc clean
(Python objects and NumPy buffers: < 64 KiB growth). Calls that raise are
repeated as well: error paths must not leak either."""
import gc
import tracemalloc

import pytest

import fuzz  # noqa: F401  (puts this tree's cyroi and the oracle on the path)
import cyroi
from fuzz.case import Recipe, build, robustness_recipes
from fuzz.check import call
from fuzz.table import ENTRY_POINTS

pytestmark = pytest.mark.slow

CALLS = 10_000
RSS_LIMIT = 5 * 2**20
TRACED_LIMIT = 64 * 2**10


def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def cases_of(entry):
    """Tiny valid cases (each of the family's parameter sets; a 3-level
    pyramid for multiscale_roi_align): cheap calls keep 10,000 of them
    quick. And one case that raises."""
    valid = [build(recipe) for recipe in robustness_recipes(entry, depth=3)]
    return valid, build(Recipe(entry.name, broken=(("rois", "no batch column"),)))


def run(cases, invalid, calls):
    for i in range(calls):
        # Mostly one OpenMP thread: the family's loops wake a team even for
        # tiny calls, which costs up to ~20 ms a call when the other core is
        # busy. Every 500th call runs two, so the worker threads'
        # allocations are watched too.
        cyroi.set_num_threads(2 if i % 500 == 0 else 1)
        call(cases[i % len(cases)])
        if i % 10 == 0:
            try:
                call(invalid)
            except ValueError:
                pass


@pytest.fixture(autouse=True)
def restore_threads():
    yield
    cyroi.set_num_threads(None)


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=lambda e: e.name)
def test_memory_stays_flat(entry):
    try:
        rss()
    except OSError:
        pytest.skip("needs /proc/self/statm to watch resident memory")
    cases, invalid = cases_of(entry)
    run(cases, invalid, 500)  # allocator pools, OpenMP threads, caches
    gc.collect()
    tracemalloc.start()
    before_traced, before_rss = tracemalloc.take_snapshot(), rss()
    run(cases, invalid, CALLS)
    gc.collect()
    after_rss, after_traced = rss(), tracemalloc.take_snapshot()
    tracemalloc.stop()
    growth = [s for s in after_traced.compare_to(before_traced, "lineno") if s.size_diff > 0]
    traced = sum(s.size_diff for s in growth)
    assert after_rss - before_rss < RSS_LIMIT, f"RSS grew {after_rss - before_rss} bytes"
    assert traced < TRACED_LIMIT, "\n".join(map(str, growth[:10]))
