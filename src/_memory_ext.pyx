# cython: language_level=3, boundscheck=False, wraparound=False
"""Memory for large CPU results, kept for reuse after the result dies.

A fresh multi-megabyte NumPy array is mapped from the OS on every call and
each of its pages faults on first write: on detector workloads that costs
as much as the RoI loop itself and serialises threads on the kernel's
memory lock. Blocks here are 2 MiB aligned (transparent huge pages where
the OS grants them) and, once their last array is gone, wait in a small
cache for the next call of a similar size. Plain C and the buffer protocol,
no NumPy C-API. Every function runs with the GIL held, which guards the
cache.
"""
from libc.stdlib cimport free

cdef extern from "<stdlib.h>" nogil:
    int posix_memalign(void** pointer, size_t alignment, size_t size)

cdef extern from "<sys/mman.h>" nogil:
    int madvise(void* address, size_t length, int advice)
    int MADV_HUGEPAGE

cdef enum:
    ALIGNMENT = 2 << 20  # one huge page
    SLOTS = 8
    # Smaller results are served as fast by NumPy's allocator.
    SMALLEST = 1 << 20

# Cached blocks: addresses and capacities, oldest first.
cdef void* _cached[SLOTS]
cdef size_t _capacity[SLOTS]
cdef int _count = 0
cdef size_t _cached_bytes = 0
cdef size_t _limit = 512 << 20


cdef size_t _rounded(size_t nbytes):
    return (nbytes + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


cdef void* _remove(int slot):
    global _count, _cached_bytes
    cdef void* block = _cached[slot]
    _cached_bytes -= _capacity[slot]
    _count -= 1
    for i in range(slot, _count):
        _cached[i], _capacity[i] = _cached[i + 1], _capacity[i + 1]
    return block


cdef void* _take(size_t capacity, size_t* granted):
    """The smallest cached block of at least `capacity` bytes and at most a
    quarter more, or NULL."""
    cdef int best = -1
    for i in range(_count):
        if capacity <= _capacity[i] <= capacity + capacity // 4:
            if best < 0 or _capacity[i] < _capacity[best]:
                best = i
    if best < 0:
        return NULL
    granted[0] = _capacity[best]
    return _remove(best)


cdef void _give_back(void* block, size_t capacity):
    global _count, _cached_bytes
    if capacity > _limit:
        free(block)
        return
    while _count > 0 and (_count == SLOTS or _cached_bytes + capacity > _limit):
        free(_remove(0))
    _cached[_count], _capacity[_count] = block, capacity
    _count += 1
    _cached_bytes += capacity


cdef class Block:
    """Writable bytes that return to the cache when the last array using
    them is gone."""
    cdef void* data
    cdef size_t capacity
    cdef Py_ssize_t nbytes, stride

    def __cinit__(self, Py_ssize_t nbytes):
        cdef size_t capacity = _rounded(max(nbytes, 1))
        cdef size_t granted = 0
        self.data = _take(capacity, &granted)
        if self.data == NULL:
            if posix_memalign(&self.data, ALIGNMENT, capacity) != 0:
                self.data = NULL
                raise MemoryError(f"cannot allocate {nbytes} bytes for a result")
            madvise(self.data, capacity, MADV_HUGEPAGE)  # a hint; failure is harmless
            granted = capacity
        self.capacity = granted
        self.nbytes = nbytes
        self.stride = 1

    def __getbuffer__(self, Py_buffer* view, int flags):
        view.buf = self.data
        view.obj = self
        view.len = self.nbytes
        view.readonly = 0
        view.itemsize = 1
        view.format = "B"
        view.ndim = 1
        view.shape = &self.nbytes
        view.strides = &self.stride
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer* view):
        pass

    def __dealloc__(self):
        if self.data != NULL:
            _give_back(self.data, self.capacity)


def set_result_cache(max_bytes):
    """Keep at most `max_bytes` of the memory of dead CPU results (those of
    1 MiB or more) for reuse by later calls; 512 MiB by default. 0 frees
    what is kept and turns reuse off."""
    global _limit
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0:
        raise ValueError(f"set_result_cache expects an int >= 0 (bytes); got {max_bytes!r}")
    _limit = min(max_bytes, <size_t>-1)
    while _count > 0 and _cached_bytes > _limit:
        free(_remove(0))


def reusable(Py_ssize_t nbytes):
    """Whether a result of `nbytes` is made in a reusable Block: large, and
    within the cache's limit."""
    return nbytes >= SMALLEST and _rounded(nbytes) <= _limit


def limit():
    """The cache's limit in bytes (set_result_cache)."""
    return _limit


def cached_bytes():
    """Bytes kept for reuse now."""
    return _cached_bytes
