"""What this machine can do, to read achieved rates against.

- multiply-adds per second: float32 GEMM (OpenBLAS via NumPy) with 1 and 2
  BLAS threads, in a fresh process each so the thread count takes effect;
  GEMM runs near the FMA peak of the cores.
- memory bandwidth: NumPy copies of 256 MiB in all (bytes read + written),
  by 1 and 2 processes at once, each copying its share, in step: the
  bandwidth that 2 cores get together bounds the thread scaling of a
  memory-bound loop (on the 2-core AVX2 VM of bench/results, two cores
  copied 0.77-1.21x the bytes per second of one in ten runs).
"""
import json
import os
import subprocess
import sys
import time

import numpy as np

_GEMM = """
import json, time, numpy as np
n = 1024
a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
b = a.T.copy()
a @ b
times = []
for _ in range(7):
    t = time.perf_counter(); a @ b; times.append(time.perf_counter() - t)
print(json.dumps(n ** 3 / sorted(times)[len(times) // 2]))
"""


def gemm_muladds_per_second(threads):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    result = subprocess.run([sys.executable, "-c", _GEMM], env=env, capture_output=True,
                            text=True, check=True)
    return json.loads(result.stdout)


# One worker of copy_bytes_per_second: copies its share at agreed wall-clock
# times (argv: bytes, start time, period), so the workers' copies overlap.
_COPY = """
import json, sys, time, numpy as np
nbytes, start, period = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
src = np.ones(nbytes // 4, dtype=np.float32)
dst = np.empty_like(src)
np.copyto(dst, src)
times = []
for i in range(7):
    time.sleep(max(0.0, start + i * period - time.time()))
    t = time.perf_counter(); np.copyto(dst, src); times.append(time.perf_counter() - t)
print(json.dumps(sorted(times)[len(times) // 2]))
"""


def copy_bytes_per_second(workers, mib=256):
    share = mib * 2**20 // workers
    start = time.time() + 2.0  # after every worker has filled its arrays
    procs = [subprocess.Popen([sys.executable, "-c", _COPY, str(share), str(start), "0.25"],
                              stdout=subprocess.PIPE, text=True) for _ in range(workers)]
    slowest = max(json.loads(p.communicate()[0]) for p in procs)
    return 2 * share * workers / slowest


def machine_probe(thread_counts):
    return {"muladds_per_s": {str(t): gemm_muladds_per_second(t) for t in thread_counts},
            "copy_bytes_per_s": {str(t): copy_bytes_per_second(t) for t in thread_counts}}
