"""A simulation directory: the manufacturer in ``DIR/pcs`` and the platforms it provisioned.

What ``sim init`` and ``sim add-platform`` do, as functions the demo and tests
call directly: the manufacturer gives a platform its identities and
provisioning secret, the platform directory is written from them (the CPU
package's side), and the manufacturer records the platform.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sgx_quote_helper._time import Clock, utc_now
from sgx_quote_helper._version import QE_SVN
from sgx_quote_helper.pcs._manufacturer import (
    DEFAULT_PCCS_URL,
    DEFAULT_TCB_COMPONENTS,
    Manufacturer,
)
from sgx_quote_helper.pcs._registry import RegisteredPlatform
from sgx_quote_helper.platform import create_platform

#: Where ``sim init`` puts its first platform, and ``sim add-platform`` the others.
FIRST_PLATFORM = "platform"
MORE_PLATFORMS = "platforms"


@dataclass(frozen=True)
class Simulation:
    """A new simulation directory: its manufacturer and first platform."""

    manufacturer: Manufacturer
    platform: RegisteredPlatform

    @property
    def platform_dir(self) -> Path:
        return self.manufacturer.sim_dir / self.platform.path


def provision_platform(
    manufacturer: Manufacturer,
    name: str,
    path: str | os.PathLike[str],
    *,
    fmspc: bytes | None = None,
    tcb_components: Sequence[int] = DEFAULT_TCB_COMPONENTS,
    ca_type: str = "processor",
    provisioning_gid: int | None = None,
) -> RegisteredPlatform:
    """A new platform directory at ``path``, registered with ``manufacturer``.

    ``provisioning_gid``: the group that may read its provisioning secret (mode
    0640 instead of 0600).
    """
    provisioning = manufacturer.new_platform(
        name, path, fmspc=fmspc, tcb_components=tcb_components, ca_type=ca_type
    )
    platform = provisioning.platform
    create_platform(
        manufacturer.sim_dir / platform.path,
        ppid=platform.ppid,
        qe_id=platform.qe_id,
        fmspc=platform.fmspc,
        pce_id=platform.pce_id,
        tcb_components=platform.tcb_components,
        provisioning_secret=provisioning.provisioning_secret,
        ppid_encryption_key_pem=provisioning.ppid_encryption_key_pem,
        provisioning_gid=provisioning_gid,
    )
    return manufacturer.register_platform(provisioning)


def create_simulation(
    sim_dir: str | os.PathLike[str],
    *,
    pccs_url: str = DEFAULT_PCCS_URL,
    fmspc: bytes | None = None,
    tcb_components: Sequence[int] = DEFAULT_TCB_COMPONENTS,
    ca_type: str = "processor",
    provisioning_gid: int | None = None,
    clock: Clock = utc_now,
    qe_svn: int = QE_SVN,
) -> Simulation:
    """``sim init``: a new manufacturer in ``sim_dir/pcs`` and its first platform."""
    manufacturer = Manufacturer.create(sim_dir, pccs_url=pccs_url, clock=clock, qe_svn=qe_svn)
    platform = provision_platform(
        manufacturer,
        "default",
        Path(sim_dir) / FIRST_PLATFORM,
        fmspc=fmspc,
        tcb_components=tcb_components,
        ca_type=ca_type,
        provisioning_gid=provisioning_gid,
    )
    return Simulation(manufacturer, platform)
