import os
import sys

import pytest

# Tests import reference.py as a plain module.
sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def restore_threads():
    """Returns cyroi to OpenMP's default thread count after a test."""
    yield
    import cyroi
    cyroi.set_num_threads(None)
