"""Shared fixtures and the Hypothesis profiles.

Profiles: ``dev`` (the default: Hypothesis's 100 examples per property) and
``ci`` (selected when ``CI=true``, as in ``.ci/run``: 300). Neither has a
deadline, since the suite runs on shared machines where timing is noise.
Property tests that need more examples scale the profile's base (for example
``tests/sgx/test_quote_properties.py`` runs ten times it: 1000 / 3000).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_support import MakeConfig, MakeReport, config_for, report_maker, short_dir
from hypothesis import HealthCheck, settings

from sgx_quote_helper._cli import main
from sgx_quote_helper.service import ServiceConfig

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


# ---- daemon fixtures: a simulated platform, short socket paths, configs ----


@pytest.fixture(scope="session")
def sim_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ``sim init`` for the session (key generation is the slow part)."""
    path = tmp_path_factory.mktemp("service-sim") / "sim"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["sim", "init", str(path)]) == 0
    return path


@pytest.fixture
def sim(sim_template: Path, tmp_path: Path) -> Path:
    """A private copy of the ``sim init`` directory (manufacturer and platform)."""
    path = tmp_path / "sim"
    shutil.copytree(sim_template, path)
    return path


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """A short, world-traversable directory for sockets."""
    yield from short_dir()


@pytest.fixture(scope="module")
def module_run_dir() -> Iterator[Path]:
    yield from short_dir()


@pytest.fixture
def make_config(sim: Path, run_dir: Path) -> MakeConfig:
    """A validated config for the test's platform and socket; keywords override flags."""

    def make(**overrides: Any) -> ServiceConfig:
        return config_for(sim, run_dir, **overrides)

    return make


@pytest.fixture
def make_report(sim: Path) -> MakeReport:
    """A REPORT by the platform's CPU for the demo enclave, targeted at ``target_info``."""
    return report_maker(sim)


@pytest.fixture
def keep_environ() -> Iterator[None]:
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def keep_logging() -> Iterator[None]:
    """Undo what the daemon's ``configure_logging`` does to the package logger."""
    logger = logging.getLogger("sgx_quote_helper")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    try:
        yield
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]
