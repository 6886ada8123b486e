"""The platform directory: layout, modes, atomic writes, and the provisioning boundary.

Tests run as root, and root ignores file modes, so every check of who may read
what runs in a forked child that has dropped to ``nobody`` (uid/gid 65534),
with the platform under a 0755 temporary directory that ``nobody`` can
traverse.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from unprivileged import NOBODY, run_as_nobody

from sgx_quote_helper.errors import SgxQuoteHelperError
from sgx_quote_helper.platform import (
    ENCLAVE_SECRET_FILE,
    PROVISIONING_SECRET_FILE,
    Platform,
    PlatformDirectoryError,
    ProvisioningAccessError,
    create_platform,
    derive_provisioning_secret,
)
from sgx_quote_helper.sgx import SgxStatus

PROVISIONING_GROUP = 4242  # any gid nobody is not in


@pytest.fixture(scope="module")
def ppid_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temporary directory other users can traverse (mkdtemp makes 0700)."""
    path = Path(tempfile.mkdtemp(prefix="sqh-platform-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def _create(path: Path, ppid_key_pem: str, *, gid: int | None = None) -> Platform:
    ppid = bytes(range(16))
    return create_platform(
        path,
        ppid=ppid,
        qe_id=bytes(range(16, 32)),
        fmspc=bytes.fromhex("00906ed50000"),
        pce_id=b"\x00\x00",
        tcb_components=[3, 3, 2, 2, 4, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0],
        provisioning_secret=derive_provisioning_secret(b"m" * 32, ppid),
        ppid_encryption_key_pem=ppid_key_pem,
        provisioning_gid=gid,
    )


def _try_read(path: Path) -> str:
    try:
        path.read_bytes()
    except PermissionError:
        return "denied"
    return "read"


def test_layout_and_modes(shared_tmp: Path, ppid_key_pem: str) -> None:
    root = shared_tmp / "platform"
    platform = _create(root, ppid_key_pem)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in root.iterdir()}
    assert modes == {
        "platform.json": 0o644,
        ENCLAVE_SECRET_FILE: 0o644,
        PROVISIONING_SECRET_FILE: 0o600,
    }
    assert stat.S_IMODE(root.stat().st_mode) == 0o755
    doc = json.loads((root / "platform.json").read_text())
    assert doc["ppid"] == bytes(range(16)).hex()
    assert doc["tcb_components"][:3] == [3, 3, 2]
    assert len((root / ENCLAVE_SECRET_FILE).read_bytes()) == 32
    assert platform.description.cpu_svn == bytes([3, 3, 2, 2, 4, 1, 0, 3]) + bytes(8)
    assert "secret" not in repr(platform).lower()


def test_load_round_trips(shared_tmp: Path, ppid_key_pem: str) -> None:
    root = shared_tmp / "platform"
    created = _create(root, ppid_key_pem)
    loaded = Platform.load(root, need_provisioning=True)
    assert loaded.description == created.description
    assert loaded.has_provisioning_access
    assert loaded.cpu().report_key_id == created.cpu().report_key_id
    assert not Platform.load(root, need_provisioning=False).has_provisioning_access


def test_group_mode_with_provisioning_gid(shared_tmp: Path, ppid_key_pem: str) -> None:
    root = shared_tmp / "platform"
    _create(root, ppid_key_pem, gid=PROVISIONING_GROUP)
    info = (root / PROVISIONING_SECRET_FILE).stat()
    assert stat.S_IMODE(info.st_mode) == 0o640
    assert info.st_gid == PROVISIONING_GROUP


def test_nobody_reads_enclave_secret_but_not_provisioning_secret(
    shared_tmp: Path, ppid_key_pem: str
) -> None:
    root = shared_tmp / "platform"
    _create(root, ppid_key_pem)

    def check() -> dict[str, object]:
        result: dict[str, object] = {
            "uid": os.getuid(),
            "enclave": _try_read(root / ENCLAVE_SECRET_FILE),
            "provision": _try_read(root / PROVISIONING_SECRET_FILE),
            "description": _try_read(root / "platform.json"),
        }
        # An application process: loads fine without provisioning access.
        app = Platform.load(root, need_provisioning=False)
        result["app_can_report"] = len(app.cpu().report_key_id) == 32
        try:
            Platform.load(root, need_provisioning=True)
            result["load"] = "loaded"
        except ProvisioningAccessError as exc:
            result["load"] = "ProvisioningAccessError"
            result["status"] = int(exc.sgx_status or 0)
            result["diagnostics"] = exc.diagnostics()
        return result

    result = run_as_nobody(check, groups=[])
    assert result["uid"] == NOBODY
    assert result["enclave"] == "read"
    assert result["description"] == "read"
    assert result["provision"] == "denied"
    assert result["app_can_report"] is True
    assert result["load"] == "ProvisioningAccessError"
    assert result["status"] == SgxStatus.ERROR_SERVICE_INVALID_PRIVILEGE
    text = str(result["diagnostics"])
    assert "provisioning" in text
    assert "/dev/sgx_provision" in text
    assert "SGX_ERROR_SERVICE_INVALID_PRIVILEGE 0x4004" in text


def test_provisioning_group_member_may_load(shared_tmp: Path, ppid_key_pem: str) -> None:
    root = shared_tmp / "platform"
    _create(root, ppid_key_pem, gid=PROVISIONING_GROUP)

    def check() -> dict[str, object]:
        loaded = Platform.load(root, need_provisioning=True)
        return {
            "provision": _try_read(root / PROVISIONING_SECRET_FILE),
            "ok": loaded.has_provisioning_access,
        }

    assert run_as_nobody(check, groups=[PROVISIONING_GROUP]) == {"provision": "read", "ok": True}
    # ...and the same uid outside the group is refused.
    outsider = run_as_nobody(
        lambda: {"provision": _try_read(root / PROVISIONING_SECRET_FILE)}, groups=[]
    )
    assert outsider == {"provision": "denied"}


def test_provisioning_access_error_is_a_package_error() -> None:
    assert issubclass(ProvisioningAccessError, SgxQuoteHelperError)


def test_missing_directory_is_explained(tmp_path: Path) -> None:
    with pytest.raises(PlatformDirectoryError, match="sim init"):
        Platform.load(tmp_path / "nowhere", need_provisioning=False)
    with pytest.raises(PlatformDirectoryError, match=r"platform\.json"):
        Platform.load(tmp_path, need_provisioning=False)


def test_incomplete_or_malformed_directory(shared_tmp: Path, ppid_key_pem: str) -> None:
    root = shared_tmp / "platform"
    _create(root, ppid_key_pem)
    (root / PROVISIONING_SECRET_FILE).unlink()
    Platform.load(root, need_provisioning=False)  # an application does not need it
    with pytest.raises(PlatformDirectoryError, match="missing"):
        Platform.load(root, need_provisioning=True)
    (root / ENCLAVE_SECRET_FILE).write_bytes(b"short")
    with pytest.raises(PlatformDirectoryError, match="32 bytes"):
        Platform.load(root, need_provisioning=False)
    doc = json.loads((root / "platform.json").read_text())
    doc["ppid_encryption_key"] = "not a key"
    (root / "platform.json").write_text(json.dumps(doc))
    with pytest.raises(PlatformDirectoryError, match="malformed"):
        Platform.load(root, need_provisioning=False)
    (root / "platform.json").write_text("{not json")
    with pytest.raises(PlatformDirectoryError, match="malformed"):
        Platform.load(root, need_provisioning=False)


def test_existing_platform_is_not_replaced(shared_tmp: Path, ppid_key_pem: str) -> None:
    root = shared_tmp / "platform"
    _create(root, ppid_key_pem)
    before = (root / ENCLAVE_SECRET_FILE).read_bytes()
    with pytest.raises(PlatformDirectoryError, match="already"):
        _create(root, ppid_key_pem)
    assert (root / ENCLAVE_SECRET_FILE).read_bytes() == before


def test_create_refuses_bad_values(tmp_path: Path, ppid_key_pem: str) -> None:
    with pytest.raises(ValueError, match="provisioning secret"):
        create_platform(
            tmp_path / "p",
            ppid=bytes(16),
            qe_id=bytes(16),
            fmspc=bytes(6),
            pce_id=bytes(2),
            tcb_components=[0] * 16,
            provisioning_secret=b"short",
            ppid_encryption_key_pem=ppid_key_pem,
        )
    with pytest.raises(ValueError, match="tcb_components"):
        create_platform(
            tmp_path / "p",
            ppid=bytes(16),
            qe_id=bytes(16),
            fmspc=bytes(6),
            pce_id=bytes(2),
            tcb_components=[0] * 15,
            provisioning_secret=bytes(32),
            ppid_encryption_key_pem=ppid_key_pem,
        )
    assert not (tmp_path / "p").exists()
