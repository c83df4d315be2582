"""How many OpenMP threads the CPU loops use.

By default OpenMP's own setting at call time (OMP_NUM_THREADS, or a
threadpoolctl limit); set_num_threads overrides it for cyroi alone. Results
are the same bits for any thread count.
"""
from ._cpu_ext import max_threads

_requested = None


def set_num_threads(n):
    """Use n threads for cyroi's CPU ops; None returns to OpenMP's default."""
    global _requested
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ValueError(f"set_num_threads expects an int >= 1 or None; got {n!r}")
    _requested = n


def get_num_threads():
    """The thread count the next CPU op will use."""
    if _requested is not None:
        return _requested
    return max_threads()
