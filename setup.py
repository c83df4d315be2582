"""Builds cyroi's one compiled extension: the OpenMP CPU loops."""
import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

openmp = ["/openmp"] if sys.platform == "win32" else ["-fopenmp"]
# Results must not depend on the CPU: no fused multiply-add contraction (the
# loops have AVX2/AVX-512 clones, and C++ contracts by default).
exact = [] if sys.platform == "win32" else ["-ffp-contract=off"]
# CYROI_CFLAGS adds flags for special builds (the sanitizer CI step).
extra = os.environ.get("CYROI_CFLAGS", "").split()

extension = Extension(
    "cyroi._cpu_ext",
    sources=["src/_cpu_ext.pyx"],
    include_dirs=["src"],
    language="c++",
    extra_compile_args=["-O3", "-std=c++17", *exact, *openmp, *extra],
    extra_link_args=[*openmp, *extra],
)

setup(ext_modules=cythonize([extension], include_path=["src"]))
