"""Every kernel of the CUDA backend, for every dtype, compiles with NVRTC (the
compiler cupy.RawModule uses at run time; it needs no GPU) for several GPU
generations, from exactly what the runtime loader compiles:
cyroi._cuda.build(dtype) -> (source, options, name_expressions).

Needs `pip install cupy-cuda13x "cuda-toolkit[nvrtc,cudart]"`; skipped only
where CuPy is not installed at all."""
import pytest

pytest.importorskip("cupy")
from cupy_backends.cuda.libs import nvrtc  # noqa: E402

from cyroi import _cuda  # noqa: E402

# compute_75 is the oldest target CUDA 13's NVRTC accepts.
ARCHS = ("compute_75", "compute_80", "compute_90")


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", sorted(_cuda.CXX_TYPES))
def test_every_kernel_compiles(dtype, arch):
    source, options, names = _cuda.build(dtype)
    program = nvrtc.createProgram(source, _cuda.KERNEL_FILE, [], [])
    try:
        for name in names:
            nvrtc.addNameExpression(program, name)
        try:
            nvrtc.compileProgram(program, [*options, f"-arch={arch}"])
        except nvrtc.NVRTCError as error:
            pytest.fail(f"{error}\n{nvrtc.getProgramLog(program)}")
        log = nvrtc.getProgramLog(program).strip("\x00 \n")
        assert not log, f"NVRTC warnings:\n{log}"
        ptx = nvrtc.getPTX(program)
        ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
        for name in names:
            assert f".entry {nvrtc.getLoweredName(program, name)}(" in ptx, name
    finally:
        nvrtc.destroyProgram(program)


def test_the_loader_compiles_what_build_returns(monkeypatch):
    """cupy.RawModule receives build()'s source, options and names unchanged."""
    import cupy
    received = {}

    class Recorder:
        def __init__(self, **kwargs):
            received.update(kwargs)

    class NoDevice:
        def __init__(self, device_id):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(cupy, "RawModule", Recorder)
    monkeypatch.setattr(cupy.cuda, "Device", NoDevice)
    _cuda._load.cache_clear()
    try:
        _cuda._module(0, "float16")
    finally:
        _cuda._load.cache_clear()
    source, options, names = _cuda.build("float16")
    assert received == {"code": source, "options": options, "name_expressions": names}


def test_headers_are_inlined():
    """The source is self-contained: CuPy's kernel cache keys on it, so an
    edited header must change it."""
    source = _cuda.kernel_source()
    assert '#include "' not in source
    for header in ("roi_math.h", "roi_elements.h", "family_ops.cuh", "family_elements.h",
                   "box_grad_elements.h", "ps_math.h", "rotated_math.h", "prroi_math.h",
                   "fpn_math.h", "box_grad_math.h"):
        assert f'#line 1 "{header}"' in source
