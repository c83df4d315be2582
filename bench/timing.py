"""The CPU benchmark's timer, shared by bench/cpu.py and the peers that run
in other venvs (bench/mxnet_peer.py): only the standard library."""
import statistics
import time


def timed(fn, min_runs=7, min_seconds=0.3, warmup=2):
    """(median wall ms, min wall ms, median process CPU ms) over at least
    min_runs runs after warm-up. With one thread, CPU time is what the call
    costs even while other processes take the cores."""
    for _ in range(warmup):
        fn()
    walls, cpus, start = [], [], time.perf_counter()
    while len(walls) < min_runs or (time.perf_counter() - start < min_seconds
                                    and len(walls) < 99):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return statistics.median(walls) * 1e3, min(walls) * 1e3, statistics.median(cpus) * 1e3


def paired(fn_a, fn_b, min_runs=9, min_seconds=0.6, warmup=2):
    """Times two calls alternately, a then b then b then a ..., so that a
    slow spell of a shared machine falls on both. Returns
    ((median ms, min ms, median CPU ms) of a, the same of b, the median of
    the per-pair ratios time_b / time_a)."""
    for _ in range(warmup):
        fn_a()
        fn_b()
    runs = {"a": ([], []), "b": ([], [])}
    order, start = ("a", fn_a, "b", fn_b), time.perf_counter()
    while len(runs["a"][0]) < min_runs or (time.perf_counter() - start < min_seconds
                                           and len(runs["a"][0]) < 99):
        pairs = (order[:2], order[2:]) if len(runs["a"][0]) % 2 == 0 else (order[2:], order[:2])
        for name, fn in pairs:
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            runs[name][1].append(time.process_time() - cpu)
            runs[name][0].append(time.perf_counter() - wall)

    def summary(name):
        walls, cpus = runs[name]
        return statistics.median(walls) * 1e3, min(walls) * 1e3, statistics.median(cpus) * 1e3

    ratio = statistics.median(b / a for a, b in zip(runs["a"][0], runs["b"][0]))
    return summary("a"), summary("b"), ratio

