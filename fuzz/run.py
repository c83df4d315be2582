"""python -m fuzz.run [--examples N] [--seed S] [--last FILE] [--family] [ENTRY ...]

Hypothesis over the named entry points (all by default; --family: the rows
past roi_align's and roi_pool's), each case judged by
fuzz.check. Meant to run in a subprocess: a crash takes this process down,
not the test runner, and --last names a file holding the case being run, so
the crash can be traced. Prints one JSON line: outcome counts per entry
point, and per kind of input (fuzz/traits.py; the README's robustness table
is made from them)."""
import argparse
import collections
import faulthandler
import json
import sys
import time

from hypothesis import HealthCheck, given, seed, settings

from .check import check_recipe
from .strategies import recipes
from .table import CORE_ENTRY_POINTS, ENTRY_POINTS
from .traits import traits


def fuzz(entries, examples, seed_value=None, last=None):
    """Runs the property; returns ({entry: {outcome: count}}, {trait: {outcome: count}})."""
    counts = collections.defaultdict(collections.Counter)
    by_trait = collections.defaultdict(collections.Counter)

    @settings(max_examples=examples, deadline=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(recipes(entries))
    def property_(recipe):
        if last:
            with open(last, "w") as f:
                f.write(repr(recipe))
        outcome = check_recipe(recipe)
        counts[recipe.entry][outcome] += 1
        for trait in traits(recipe):
            by_trait[trait][outcome] += 1

    if seed_value is not None:
        property_ = seed(seed_value)(property_)
    property_()
    return counts, by_trait


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("entries", nargs="*", default=[e.name for e in ENTRY_POINTS])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--last")
    parser.add_argument("--family", action="store_true")
    args = parser.parse_args(argv)
    if args.family:
        args.entries = [e.name for e in ENTRY_POINTS if e not in CORE_ENTRY_POINTS]
    faulthandler.enable()
    start = time.perf_counter()
    counts, by_trait = fuzz(args.entries, args.examples, args.seed, args.last)
    print(json.dumps({"seconds": round(time.perf_counter() - start, 1),
                      "outcomes": {k: dict(v) for k, v in counts.items()},
                      "traits": {k: dict(v) for k, v in sorted(by_trait.items())}}))


if __name__ == "__main__":
    sys.exit(main())
