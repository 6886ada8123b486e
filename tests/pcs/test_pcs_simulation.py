"""``create_simulation`` and ``provision_platform``: what ``sim init`` does, as functions."""

from __future__ import annotations

from pathlib import Path

import pytest

from sgx_quote_helper.pcs import (
    FIRST_PLATFORM,
    InvalidRequestError,
    Manufacturer,
    create_simulation,
    provision_platform,
)
from sgx_quote_helper.platform import (
    DESCRIPTION_FILE,
    ENCLAVE_SECRET_FILE,
    PROVISIONING_SECRET_FILE,
    Platform,
    application_view,
    derive_provisioning_secret,
)


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("simulation") / "sim"
    simulation = create_simulation(path, pccs_url="http://127.0.0.1:9")
    assert simulation.platform_dir == path / FIRST_PLATFORM
    assert simulation.manufacturer.root_ca_path == path / "pcs" / "root-ca.der"
    return path


def test_the_platform_directory_matches_its_registration(sim_dir: Path) -> None:
    manufacturer = Manufacturer.load(sim_dir)
    [registered] = manufacturer.platforms()
    platform = Platform.load(sim_dir / registered.path, need_provisioning=True)
    assert platform.description.ppid == registered.ppid
    assert platform.description.fmspc == registered.fmspc
    # The manufacturer can recompute the secret the platform holds: that is how it certifies.
    master = (sim_dir / "pcs" / "master.secret").read_bytes()
    secret = (sim_dir / registered.path / PROVISIONING_SECRET_FILE).read_bytes()
    assert secret == derive_provisioning_secret(master, registered.ppid)


def test_another_platform_shares_the_fmspc_and_names_are_unique(sim_dir: Path) -> None:
    manufacturer = Manufacturer.load(sim_dir)
    first = manufacturer.platforms()[0]
    other = provision_platform(manufacturer, "second", sim_dir / "platforms" / "second")
    assert other.fmspc == first.fmspc
    assert other.ppid != first.ppid
    assert manufacturer.find_platform("second") == other
    assert manufacturer.find_platform(sim_dir / "platforms" / "second") == other
    with pytest.raises(InvalidRequestError, match="exists already"):
        provision_platform(manufacturer, "second", sim_dir / "platforms" / "again")


def test_the_application_view_has_no_provisioning_secret(sim_dir: Path, tmp_path: Path) -> None:
    view = application_view(sim_dir / FIRST_PLATFORM, tmp_path / "view")
    assert sorted(path.name for path in view.iterdir()) == sorted(
        [DESCRIPTION_FILE, ENCLAVE_SECRET_FILE]
    )
    platform = Platform.load(view, need_provisioning=False)
    assert not platform.has_provisioning_access
    assert (view / ENCLAVE_SECRET_FILE).read_bytes() == (
        sim_dir / FIRST_PLATFORM / ENCLAVE_SECRET_FILE
    ).read_bytes()
