"""Hypothesis over every public entry point (fuzz/table.py): random shapes,
dtypes, layouts, memory arrangements, valid and invalid parameters, hostile
boxes (NaN, +-inf, +-1e30, +-2^31, inverted, empty) and batch indices, with
validate on and off. Each case must match tests/reference.py, or stay safe
where the oracle has no answer, or raise TypeError / ValueError naming the
argument (fuzz/check.py).

Each entry point runs in its own subprocess, so a crash (segfault, abort,
sanitizer report) fails the test instead of killing pytest; the case being
run when it died is reported. The rest of the family (every row past
roi_align's and roi_pool's) runs one subprocess per op, its rows sharing the
examples, to keep CI time down. CYROI_FUZZ_EXAMPLES sets the examples per
core entry point, CYROI_FUZZ_FAMILY_EXAMPLES per family op, CYROI_FUZZ_SEED
the seed ("random" for a new one each run; by default fixed, so CI is
reproducible)."""
import json
import os
import subprocess
import sys
import zlib

import pytest

import fuzz
from fuzz.table import CORE_ENTRY_POINTS, ENTRY_POINTS

EXAMPLES = int(os.environ.get("CYROI_FUZZ_EXAMPLES", "400"))
FAMILY_EXAMPLES = int(os.environ.get("CYROI_FUZZ_FAMILY_EXAMPLES", "120"))

# {test id: (entry points, examples)}
GROUPS = {e.name: ([e.name], EXAMPLES) for e in CORE_ENTRY_POINTS}
for _entry in ENTRY_POINTS:
    if _entry not in CORE_ENTRY_POINTS:
        GROUPS.setdefault(f"{_entry.family.name} family rows", ([], FAMILY_EXAMPLES))[0].append(
            _entry.name)


def seed_for(name):
    chosen = os.environ.get("CYROI_FUZZ_SEED")
    if chosen == "random":
        return int.from_bytes(os.urandom(4), "little")
    return int(chosen) if chosen else zlib.crc32(name.encode())


@pytest.mark.parametrize("group", GROUPS)
def test_fuzz(group, tmp_path):
    entries, examples = GROUPS[group]
    seed = seed_for(group)
    last = tmp_path / "last_case.txt"
    command = [sys.executable, "-m", "fuzz.run", *entries, "--examples", str(examples),
               "--seed", str(seed), "--last", str(last)]
    result = subprocess.run(command, cwd=fuzz.ROOT, capture_output=True, text=True,
                            timeout=900)
    report = f"seed {seed}; stdout:\n{result.stdout[-6000:]}\nstderr:\n{result.stderr[-6000:]}"
    if result.returncode < 0 or result.returncode > 1:
        case = last.read_text() if last.exists() else "(none)"
        pytest.fail(f"fuzz process died (exit {result.returncode}) on {case}\n{report}")
    assert result.returncode == 0, report
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])["outcomes"]
    # Every kind of outcome must have happened, or the fuzzing lost its teeth.
    seen = {outcome for entry in outcomes.values() for outcome in entry}
    assert set(outcomes) == set(entries) and seen >= {"rejected", "compared"}, outcomes
