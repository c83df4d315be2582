import os
import sys

import pytest

# Tests import reference.py as a plain module.
sys.path.insert(0, os.path.dirname(__file__))

if os.environ.get("CYROI_SANITIZED"):
    # AddressSanitizer must see each result's own allocation, with its exact
    # bounds, rather than a reused block with slack at the end.
    import cyroi
    cyroi.set_result_cache(0)


@pytest.fixture
def restore_threads():
    """Returns cyroi to OpenMP's default thread count after a test."""
    yield
    import cyroi
    cyroi.set_num_threads(None)
