"""atheris (coverage-guided, libFuzzer) over the property tests/test_fuzz.py
runs: atheris mutates the bytes that hypothesis decodes into a Recipe
(fuzz_one_input), steered by coverage of cyroi's Python code, and every case
is judged by fuzz.check. A wrong result or an unexpected exception stops the
run with the input saved; a crash kills the process (libFuzzer reports it).

    python -m fuzz.atheris_harness -max_total_time=60 [libFuzzer flags]
"""
import sys

import atheris

import fuzz  # noqa: F401  (puts this tree's cyroi and the oracle on the path)

with atheris.instrument_imports(include=["cyroi"]):
    import cyroi  # noqa: F401

from hypothesis import HealthCheck, given, settings  # noqa: E402

from .check import check_recipe  # noqa: E402
from .strategies import recipes  # noqa: E402
from .table import ENTRY_POINTS  # noqa: E402


@settings(database=None, deadline=None, suppress_health_check=list(HealthCheck))
@given(recipes([entry.name for entry in ENTRY_POINTS]))
def property_(recipe):
    check_recipe(recipe)


def main():
    atheris.Setup(sys.argv, property_.hypothesis.fuzz_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
