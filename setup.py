"""Builds cyroi's compiled extensions: the OpenMP CPU loops."""
import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

openmp = ["/openmp"] if sys.platform == "win32" else ["-fopenmp"]
# Results must not depend on the CPU: no fused multiply-add contraction (the
# loops have AVX2/AVX-512 versions, and C++ contracts by default).
exact = [] if sys.platform == "win32" else ["-ffp-contract=off"]
# No debug information (Python's flags ask for it): a quarter of the compile
# time, and the same code.
nodebug = [] if sys.platform == "win32" else ["-g0"]
# CYROI_CFLAGS adds flags for special builds (the sanitizer CI step).
extra = os.environ.get("CYROI_CFLAGS", "").split()


def cpu_extension(name, source):
    return Extension(
        name,
        sources=[source],
        include_dirs=["src"],
        language="c++",
        extra_compile_args=["-O3", "-std=c++17", *exact, *openmp, *nodebug, *extra],
        extra_link_args=[*openmp, *extra],
    )


extensions = [
    cpu_extension("cyroi._cpu_ext", "src/_cpu_ext.pyx"),  # roi_align, roi_pool
    cpu_extension("cyroi._cpu_family", "src/_cpu_family_ext.pyx"),  # the rest of the family
    cpu_extension("cyroi._memory", "src/_memory_ext.pyx"),  # reusable memory for results
]

# The three modules compile side by side (pip install and the sanitizer build).
setup(ext_modules=cythonize(extensions, include_path=["src"]),
      options={"build_ext": {"parallel": os.cpu_count() or 1}})
