"""Robustness harness shared by tests/test_fuzz*.py, the other robustness
tests and the atheris fuzzer: a table of cyroi's public entry points, ways to
lay arrays out in memory, and one check of one call against tests/reference.py.

Importing it puts this tree's cyroi and tests/reference.py on the path, so the
harness checks the cyroi next to it (a sanitizer build in a scratch copy too).
"""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
for _path in (ROOT / "tests", ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
