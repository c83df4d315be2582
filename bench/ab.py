"""Paired A/B timing of two builds of cyroi: what one change to the loops
is worth, on a machine too noisy for separate runs to show it.

    python setup.py build_ext --inplace && mkdir -p /tmp/a && cp cyroi/*.so /tmp/a
    # ... change the sources, rebuild ...
    mkdir -p /tmp/b && cp cyroi/*.so /tmp/b
    python bench/ab.py /tmp/a /tmp/b frcnn_head:align_fwd:base:2 mask_head:pool_bwd:nhwc:1

Each build's compiled modules join a copy of the checkout's cyroi package
(a build that is a whole cyroi folder, e.g. of a `git worktree` at the last
commit, comes with its own Python side) under a name of its own (cyroi_a,
cyroi_b); both are imported here and their calls alternate, a then b then
b then a. Each line gives the median time of either build and the median
of the per-pair ratios B/A with its quartiles: a slow spell of a shared
machine falls on both calls of a pair, so a few percent stand out of noise
that moves the medians of separate runs by 20-40%. (Against another
library the same pairing misleads, each side running right after the
other's thread pool: bench/cpu.py times peers in blocks.) A spec is
workload:op:variant:threads with op and variant as in bench/cpu.py
(align_fwd, ..., pool_bwd; base, max, nhwc, f64).

With --processes N each build runs alone in a process of its own instead,
N rounds that alternate which build goes first, and the two medians of a
round make its pair: two builds in one process share that process's heap,
so an effect of where memory lands (malloc's alignment of scratch buffers)
falls on both or neither.
"""
import argparse
import glob
import importlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cpu import cyroi_ops, workload_inputs  # noqa: E402
from timing import median_and_quartiles, paired, timed  # noqa: E402
from workloads import WORKLOADS  # noqa: E402


def import_build(build, tag, root):
    """The checkout's cyroi package with the compiled modules of `build`, or
    `build` itself where it is a whole cyroi package (a change to the Python
    side too), imported as cyroi_<tag>."""
    package = Path(root) / f"cyroi_{tag}"
    whole = (Path(build) / "__init__.py").exists()
    shutil.copytree(Path(build) if whole else HERE.parent / "cyroi", package,
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    modules = glob.glob(str(Path(build) / "*.so"))
    if not modules:
        raise SystemExit(f"{build} holds no compiled modules (*.so)")
    for module in modules:
        shutil.copy(module, package)
    sys.path.insert(0, root)
    return importlib.import_module(f"cyroi_{tag}")


def spec_call(lib, spec):
    """(the timed call, its thread count) of a workload:op:variant:threads spec."""
    name, op, variant, threads = spec.split(":")
    wl = {wl.name: wl for wl in WORKLOADS}[name]
    x, rois = workload_inputs(wl)[variant]
    return cyroi_ops(wl, x, rois, variant, lib)[op], int(threads)


def time_alone(build, specs):
    """Prints the median ms of each spec with `build` the only cyroi imported."""
    with tempfile.TemporaryDirectory() as root:
        lib = import_build(build, "a", root)
        for spec in specs:
            call, threads = spec_call(lib, spec)
            lib.set_num_threads(threads)
            print(timed(call, min_seconds=1.0)[0], flush=True)


def report(spec, ms_a, ms_b, ratios):
    ratio, (low, high) = median_and_quartiles(sorted(ratios))
    print(f"{spec:32s} A {ms_a:8.2f} ms  B {ms_b:8.2f} ms  "
          f"B/A {ratio:.3f} (quartiles {low:.3f}-{high:.3f})", flush=True)


def median(values):
    return median_and_quartiles(sorted(values))[0]


def in_processes(builds, specs, rounds):
    times = ([], [])  # per build, per round: the specs' medians
    for i in range(rounds):
        for side in (0, 1) if i % 2 == 0 else (1, 0):
            out = subprocess.run([sys.executable, __file__, "--alone", builds[side], *specs],
                                 capture_output=True, text=True, check=True).stdout
            times[side].append([float(line) for line in out.split()])
    for j, spec in enumerate(specs):
        a, b = ([run[j] for run in runs] for runs in times)
        report(spec, median(a), median(b), [tb / ta for ta, tb in zip(a, b)])


def main():
    if sys.argv[1:2] == ["--alone"]:
        return time_alone(sys.argv[2], sys.argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build_a")
    parser.add_argument("build_b")
    parser.add_argument("specs", nargs="+", help="workload:op:variant:threads")
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--processes", type=int, default=0, metavar="ROUNDS",
                        help="time each build alone in its own process, ROUNDS rounds")
    args = parser.parse_args()
    if args.processes:
        return in_processes((args.build_a, args.build_b), args.specs, args.processes)
    with tempfile.TemporaryDirectory() as root:
        builds = [import_build(build, tag, root) for build, tag in
                  ((args.build_a, "a"), (args.build_b, "b"))]
        for spec in args.specs:
            calls = [spec_call(lib, spec) for lib in builds]
            for lib, (_, threads) in zip(builds, calls):
                lib.set_num_threads(threads)
            report(spec, *paired(calls[0][0], calls[1][0], args.pairs))


if __name__ == "__main__":
    main()
