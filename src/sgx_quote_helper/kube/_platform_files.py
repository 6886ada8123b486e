"""The node's simulated platform as files: from a Secret or a directory, onto the host.

The device plugin writes the three files of the platform directory
(``docs/contracts.md``) into its host directory, which the kubelet bind-mounts
into containers as Allocate says. Modes follow the platform directory's rules,
so the file system enforces what the device split promises::

    platform.json      0644
    enclave.secret     0644   (every enclave process, like /dev/sgx_enclave)
    provision.secret   0640   group --provision-gid (the quote helper, like /dev/sgx_provision)
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sgx_quote_helper._fs import atomic_write
from sgx_quote_helper.kube._errors import KubeError
from sgx_quote_helper.platform import (
    DESCRIPTION_FILE,
    ENCLAVE_SECRET_FILE,
    PROVISIONING_SECRET_FILE,
)

#: What a container with the enclave resource sees (a REPORT needs both).
ENCLAVE_FILES = (DESCRIPTION_FILE, ENCLAVE_SECRET_FILE)
#: What the provision resource adds (the PCE derives PCK keys from it).
PROVISION_FILES = (PROVISIONING_SECRET_FILE,)
PLATFORM_FILES = ENCLAVE_FILES + PROVISION_FILES
_MODES = {DESCRIPTION_FILE: 0o644, ENCLAVE_SECRET_FILE: 0o644, PROVISIONING_SECRET_FILE: 0o640}
HOST_DIR_MODE = 0o755


def read_platform_dir(path: Path) -> dict[str, bytes]:
    """The platform files of a ``sim`` platform directory (run as a user who may read them)."""
    files = {}
    for name in PLATFORM_FILES:
        try:
            files[name] = (path / name).read_bytes()
        except OSError as exc:
            raise KubeError(
                f"cannot read {path / name}: {exc.strerror or exc}; --platform-dir must be a "
                "complete platform directory (from `sim init` or `sim add-platform`)"
            ) from None
    return files


def secret_data(files: Mapping[str, bytes]) -> dict[str, str]:
    """The ``data`` of a Secret holding ``files`` (base64, as the API stores it)."""
    return {name: base64.b64encode(files[name]).decode("ascii") for name in PLATFORM_FILES}


def files_from_secret(secret: Mapping[str, Any], where: str) -> dict[str, bytes]:
    """The platform files in a Secret's ``data``; every one must be there."""
    data = secret.get("data") or {}
    if not isinstance(data, dict):
        raise KubeError(f"secret {where} has no data")
    missing = [name for name in PLATFORM_FILES if name not in data]
    if missing:
        raise KubeError(
            f"secret {where} lacks {', '.join(missing)}; it must be made by "
            "`sgx-quote-helper sim register-nodes`"
        )
    try:
        return {name: base64.b64decode(data[name], validate=True) for name in PLATFORM_FILES}
    except (binascii.Error, TypeError, ValueError):
        raise KubeError(f"secret {where}: a platform file is not valid base64") from None


def install_platform_files(files: Mapping[str, bytes], host_dir: Path, provision_gid: int) -> None:
    """Write the files into ``host_dir`` atomically, with their modes and the provisioning group."""
    host_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(host_dir, HOST_DIR_MODE)
    # The secret first and the description last, as create_platform does: a
    # reader that sees platform.json sees a complete directory.
    for name in reversed(PLATFORM_FILES):
        gid = provision_gid if name == PROVISIONING_SECRET_FILE else None
        atomic_write(host_dir / name, files[name], mode=_MODES[name], gid=gid)
