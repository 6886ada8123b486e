"""Shared fixtures and the Hypothesis profiles.

Profiles: ``dev`` (the default: Hypothesis's 100 examples per property) and
``ci`` (selected when ``CI=true``, as in ``.ci/run``: 300). Neither has a
deadline, since the suite runs on shared machines where timing is noise.
Property tests that need more examples scale the profile's base (for example
``tests/sgx/test_quote_properties.py`` runs ten times it: 1000 / 3000).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", deadline=None)
settings.register_profile(
    "ci",
    deadline=None,
    max_examples=300,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci" if os.environ.get("CI", "").lower() == "true" else "dev")

ASSETS = Path(__file__).parent / "assets"


@pytest.fixture
def assets() -> Path:
    """The directory of test vectors (``tests/assets``, provenance in its README)."""
    return ASSETS
