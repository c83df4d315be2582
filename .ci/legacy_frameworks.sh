#!/usr/bin/env bash
# The MXNet and Chainer adapters' tests, in a second venv: MXNet 1.9.1 needs
# NumPy < 1.24 and Chainer 7.8.1 NumPy < 2. cyroi is not rebuilt there: the
# tests import the extension that the main venv built in place
# (pip install -e .), so this also shows that one build serves NumPy 1 and 2
# (the extension uses typed memoryviews, not NumPy's C API). Run after the
# main step; standalone, it builds the extension in place first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
venv=.venv-legacy
start=$SECONDS

python3 -m venv --clear "$venv"
"$venv/bin/pip" install -q "numpy<1.24" mxnet==1.9.1 pytest hypothesis wheel "setuptools<70"
# Chainer ships only an sdist whose setup.py needs the old setuptools above.
"$venv/bin/pip" install -q --no-build-isolation chainer==7.8.1

if ! compgen -G "cyroi/_cpu_ext*.so" >/dev/null; then
    "$venv/bin/pip" install -q Cython "setuptools>=77"  # after Chainer: its SPDX license field
    "$venv/bin/python" setup.py -q build_ext --inplace
fi
echo "legacy venv ready in $((SECONDS - start)) s"

export PYTHONPATH=$PWD
"$venv/bin/python" -c "import numpy, mxnet, chainer, cyroi._cpu_ext as ext; print(
    f'numpy {numpy.__version__}, mxnet {mxnet.__version__}, chainer {chainer.__version__}, '
    f'cyroi extension {ext.__file__}')"
# -o addopts=: these 51 tests take seconds; no pytest-xdist workers here.
"$venv/bin/python" -m pytest -p no:cacheprovider -ra -o addopts= \
    tests/test_adapter_chainer.py tests/test_adapter_mxnet.py tests/test_adapter_mxnet_family.py
