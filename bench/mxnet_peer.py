"""MXNet's contrib.ROIAlign and ROIPooling as a CPU peer of bench/cpu.py.

    .venv-legacy/bin/python bench/mxnet_peer.py --workloads frcnn_head,... \\
        [--threads 1,2] [--outputs DIR]

Runs in the legacy venv (.ci/legacy_frameworks.sh: MXNet 1.9.1 needs
NumPy < 1.24, so it cannot share the main venv) and prints JSON on stdout.
The inputs are cpu.py's (bench/workloads.py's Workload.inputs()). Timed
with bench/timing.py's timer, mx.nd.waitall() inside each run (MXNet's
engine runs ops asynchronously):
  align_fwd      contrib.ROIAlign(aligned=True, sample_ratio=2, avg)
  align_fwd_bwd  the same under autograd.record, then backward with ones
  pool_fwd       ROIPooling (it always computes its argmax as well)
With --outputs, ROIAlign's output, its gradient of the features for an
all-ones output gradient and ROIPooling's output go to DIR as .npy files, so
that cpu.py can compare them with cyroi's.

MXNet's CPU kernels take their OpenMP thread count from OMP_NUM_THREADS
when the library loads (unset, it picks 1 on a 2-core machine, and
MXSetNumOMPThreads does not reach the engine's worker threads), so each
thread count runs in a child process of its own. ROIAlign's forward and
ROIPooling use the threads; ROIAlign's backward is a serial loop.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from timing import timed
from workloads import SAMPLING_RATIO, WORKLOADS


def measure(mx, wl, threads, outputs):
    """Timing rows of one workload; writes the outputs to `outputs` if given."""
    x, rois = (mx.nd.array(a, dtype=a.dtype) for a in wl.inputs())
    size = (wl.pooled, wl.pooled)

    def align():
        return mx.nd.contrib.ROIAlign(x, rois, pooled_size=size, spatial_scale=wl.scale,
                                      sample_ratio=SAMPLING_RATIO, position_sensitive=False,
                                      aligned=True)

    def pool():
        return mx.nd.ROIPooling(x, rois, pooled_size=size, spatial_scale=wl.scale)

    ones = mx.nd.ones((len(rois), wl.c, *size))
    x.attach_grad()

    def align_fwd_bwd():
        with mx.autograd.record():
            out = align()
        out.backward(ones)

    calls = {"align_fwd": align, "align_fwd_bwd": align_fwd_bwd, "pool_fwd": pool}
    rows = []
    for op, call in calls.items():
        ms, min_ms, cpu_ms = timed(lambda: (call(), mx.nd.waitall()))
        rows.append({"workload": wl.name, "op": op, "threads": threads, "ms": ms,
                     "min_ms": min_ms, "cpu_ms": cpu_ms})
    files = {}
    if outputs:
        align_fwd_bwd()
        arrays = {"align_fwd": align(), "align_grad": x.grad, "pool_fwd": pool()}
        for name, array in arrays.items():
            files[name] = str(Path(outputs) / f"{wl.name}_{name}.npy")
            np.save(files[name], array.asnumpy())
    return rows, files


def run(python, workloads, threads, outputs=None, env=None):
    """This script under `python` (a legacy venv's): its JSON. Also what
    cpu.py calls from the main venv, as this module imports no MXNet."""
    command = [str(python), str(Path(__file__).resolve()), "--workloads", ",".join(workloads),
               "--threads", ",".join(map(str, threads))]
    command += ["--outputs", str(outputs)] if outputs else []
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", required=True, help="comma-separated names")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--outputs", help="folder for the outputs (.npy)")
    args = parser.parse_args()
    counts = [int(n) for n in args.threads.split(",")]
    if len(counts) > 1 or os.environ.get("OMP_NUM_THREADS") != str(counts[0]):
        # The outputs do not depend on the thread count: the first child writes them.
        results = [run(sys.executable, args.workloads.split(","), [n],
                       args.outputs if i == 0 else None,
                       {**os.environ, "OMP_NUM_THREADS": str(n)})
                   for i, n in enumerate(counts)]
        result = {**results[0], "rows": [row for r in results for row in r["rows"]]}
    else:
        import mxnet as mx  # only now: OMP_NUM_THREADS is read when it loads
        chosen = [wl for wl in WORKLOADS if wl.name in args.workloads.split(",")]
        result = {"mxnet": mx.__version__, "numpy": np.__version__, "rows": [], "outputs": {}}
        for wl in chosen:
            rows, result["outputs"][wl.name] = measure(mx, wl, counts[0], args.outputs)
            result["rows"] += rows
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
