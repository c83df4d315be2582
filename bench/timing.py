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


def paired(call_a, call_b, pairs):
    """(median ms of a, of b, sorted per-pair ratios b / a): the calls
    alternate a, b, b, a, ..., so a slow spell of a shared machine falls on
    both calls of a pair (bench/ab.py, the thread scaling of bench/cpu.py)."""
    for _ in range(2):
        call_a()
        call_b()
    times_a, times_b = [], []
    order = ((call_a, times_a), (call_b, times_b))
    for i in range(pairs):
        for call, times in order if i % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
    ratios = sorted(b / a for a, b in zip(times_a, times_b))
    return statistics.median(times_a) * 1e3, statistics.median(times_b) * 1e3, ratios


def median_and_quartiles(ratios):
    """(median, [lower quartile, upper quartile]) of paired()'s sorted ratios."""
    quarter = len(ratios) // 4
    return statistics.median(ratios), [ratios[quarter], ratios[-1 - quarter]]
