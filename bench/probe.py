"""What this machine can do, to read achieved rates against.

- multiply-adds per second: float32 GEMM (OpenBLAS via NumPy) with 1 and 2
  BLAS threads, in a fresh process each so the thread count takes effect;
  GEMM runs near the FMA peak of the cores.
- memory bandwidth: one-thread NumPy copy of 256 MiB (bytes read + written).
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


def copy_bytes_per_second(mib=256):
    src = np.ones(mib * 2**20 // 4, dtype=np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    times = []
    for _ in range(7):
        t = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t)
    return 2 * src.nbytes / sorted(times)[len(times) // 2]


def machine_probe(thread_counts):
    return {"muladds_per_s": {str(t): gemm_muladds_per_second(t) for t in thread_counts},
            "copy_bytes_per_s": copy_bytes_per_second()}
