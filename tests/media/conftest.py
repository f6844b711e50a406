from pathlib import Path

import pytest

FAULTS = Path(__file__).resolve().parent / "faults"


@pytest.fixture
def faulty_workers(monkeypatch):
    """Decode workers started from now on load the fault injection in `faults/`."""
    monkeypatch.setenv("PYTHONPATH", str(FAULTS))
