#!/usr/bin/env bash
# Sanitizer step: builds cyroi's extension with AddressSanitizer and
# UndefinedBehaviorSanitizer in a scratch copy of the tree and a scratch venv,
# then runs the CPU test suite (fuzz tests with validate=False included)
# under it. Any report aborts the process that made it, so it fails a test
# (subprocess tests see the abort too). Usage: bash .ci/sanitize.sh [pytest args]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/cyroi-asan.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1

# The working tree as git sees it (tracked and new files, no build outputs).
(cd "$root" && git ls-files -z --cached --others --exclude-standard) |
    (cd "$root" && xargs -0 cp --parents -t "$scratch")
cd "$scratch"

python3 -m venv venv
. venv/bin/activate
pip install -q "numpy>=1.21" "Cython>=3.0" "setuptools>=77" wheel pytest pytest-xdist hypothesis

# -O3 as in a release build, so the sanitizers see the code users run: the
# loops' SIMD target that this CPU picks, compiled alone (CYROI_ONE_SIMD: its
# register bytes; all three took 478 s against 175 for _cpu_ext), with line
# tables for the reports (-g1: 149 s). Only the loops: -march=native made
# Cython's own functions crash on ASan's fake stack frames
# (detect_stack_use_after_return).
simd=16
grep -qw avx2 /proc/cpuinfo && simd=32
grep -qw avx512f /proc/cpuinfo && simd=64
CYROI_CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g1 -DCYROI_ONE_SIMD=$simd" \
    python setup.py -q build_ext -i > build.log 2>&1 || { cat build.log; exit 1; }
for so in cyroi/_cpu_ext*.so cyroi/_cpu_family*.so; do
    symbols=$(nm -D "$so")  # not piped into grep -q: its early exit fails nm under pipefail
    grep -q __asan_report_load <<< "$symbols" || { echo "$so has no ASan checks"; exit 1; }
    grep -q __ubsan_handle <<< "$symbols" || { echo "$so has no UBSan checks"; exit 1; }
done

# CPython is not built with ASan: preload the runtime; CPython's own
# allocations go through malloc so ASan watches them too. Leak detection is
# off because the interpreter deliberately leaks at exit (tests/test_leaks.py
# checks cyroi's memory instead).
export LD_PRELOAD=$(g++ -print-file-name=libasan.so)
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export PYTHONMALLOC=malloc
export CYROI_SANITIZED=1
# Fewer fuzz examples: everything runs 2-5x slower under the sanitizers.
export CYROI_FUZZ_EXAMPLES=${CYROI_FUZZ_EXAMPLES:-150}
# Left out: test_leaks.py (ASan's quarantine holds freed memory, so RSS
# grows by design), test_huge_tensors.py (8 GiB arrays under ASan's
# allocator and shadow memory) and test_simd_targets.py (this build has one
# SIMD target only).
python -m pytest -q -p no:cacheprovider --ignore=tests/test_leaks.py \
    --ignore=tests/test_huge_tensors.py --ignore=tests/test_simd_targets.py "$@" tests
