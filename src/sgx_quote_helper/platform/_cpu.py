"""The simulated CPU package: EREPORT and EGETKEY.

Key derivation
--------------
Hardware EGETKEY derives every key with AES-CMAC, keyed by a fused root key,
over a KEYDEPENDENCIES structure that names the key and the identity it is
bound to (Intel SDM Vol. 3D, EGETKEY, "Key Derivation"). We keep that shape and
use the standard form of it: NIST SP 800-108r1 section 4.1 KDF in counter mode
with AES-CMAC as the PRF (``KBKDFCMAC``), keyed by a 32-byte platform secret,
with the key name as label and a canonical, fixed-length encoding of the key
dependencies as context. Two reasons for a CMAC-based KDF rather than HKDF:
it is what the hardware does, and the REPORT MAC itself is AES-CMAC, so one
primitive covers the whole REPORT path. Outputs are 128-bit AES keys, as
EGETKEY's.

Roots: the *enclave secret* stands in for the seal fuses (REPORT, SEAL and
PROVISION_SEAL keys); the *provisioning secret* for the provisioning fuses
(PROVISION keys and, through ``platform._keys``, PCK keys). A CPU built
without the provisioning secret can still make and check REPORTs and seal.

REPORT keys depend on the *target* enclave (MRENCLAVE, ATTRIBUTES, MISCSELECT,
CONFIGSVN, CONFIGID), the KEYID carried in the REPORT and the current CPUSVN,
so only the targeted enclave can recompute the MAC (SDM, EREPORT).
"""

from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFCMAC, CounterLocation, Mode

from sgx_quote_helper.platform._enclave import EnclaveIdentity
from sgx_quote_helper.platform._errors import (
    SGX_ERROR_INVALID_ATTRIBUTE,
    SGX_ERROR_INVALID_CPUSVN,
    SGX_ERROR_INVALID_ISVSVN,
    SGX_ERROR_INVALID_KEYNAME,
    KeyRequestError,
    ProvisioningAccessError,
    ReportMacError,
)
from sgx_quote_helper.platform._keys import derive_pck_private_key
from sgx_quote_helper.sgx import AttributeFlags, Attributes, Report, TargetInfo

_KDF_LABEL = b"sgx-quote-helper/sim/egetkey/v1"
_KEY_SIZE = 16
_REPORT_BODY_SIZE = 384
_KEY_ID_END = 416
_REPORT_SIZE = 432


class KeyName(enum.IntEnum):
    """``KEYREQUEST.KEYNAME`` (SDM Vol. 3D, KEYREQUEST)."""

    EINITTOKEN = 0
    PROVISION = 1
    PROVISION_SEAL = 2
    REPORT = 3
    SEAL = 4


class KeyPolicy(enum.IntFlag):
    """``KEYREQUEST.KEYPOLICY``: which measurement a SEAL key is bound to."""

    MRENCLAVE = 0x1
    MRSIGNER = 0x2


#: The SDK's default seal masks (linux-sgx ``sgx_tseal.h``: TSEAL_DEFAULT_FLAGSMASK,
#: TSEAL_DEFAULT_MISCMASK): bind INIT, DEBUG, and the reserved high flag byte.
DEFAULT_ATTRIBUTE_MASK = Attributes(flags=0xFF0000000000000B, xfrm=0)
DEFAULT_MISC_MASK = 0xF0000000


@dataclass(frozen=True)
class KeyRequest:
    """``sgx_key_request_t``, reduced to the fields the simulation honours.

    ``isv_svn``/``cpu_svn`` of ``None`` mean the enclave's own ISVSVN and the
    CPU's current CPUSVN; lower values derive keys of older TCB levels, higher
    ones are refused as on hardware.
    """

    key_name: KeyName
    key_policy: KeyPolicy = KeyPolicy.MRSIGNER
    isv_svn: int | None = None
    cpu_svn: bytes | None = None
    attribute_mask: Attributes = DEFAULT_ATTRIBUTE_MASK
    misc_mask: int = DEFAULT_MISC_MASK
    key_id: bytes = field(default=bytes(32))


def _kdf(root: bytes, key_name: KeyName, dependencies: bytes, length: int = _KEY_SIZE) -> bytes:
    return KBKDFCMAC(
        algorithm=algorithms.AES,
        mode=Mode.CounterMode,
        length=length,
        rlen=4,
        llen=4,
        location=CounterLocation.BeforeFixed,
        label=_KDF_LABEL,
        context=bytes([key_name]) + dependencies,
        fixed=None,
    ).derive(root)


def _report_key_dependencies(target: TargetInfo, key_id: bytes, cpu_svn: bytes) -> bytes:
    return (
        target.mr_enclave
        + target.attributes.to_bytes()
        + target.misc_select.to_bytes(4, "little")
        + target.config_svn.to_bytes(2, "little")
        + target.config_id
        + key_id
        + cpu_svn
    )


def _mac(key: bytes, data: bytes) -> bytes:
    c = cmac.CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


class ReportVerifier:
    """Checks REPORTs targeted at one enclave, with its REPORT key precomputed.

    Verifying a REPORT is one AES-CMAC over the body: the CMAC context keyed
    for the platform's KEYID is built once and copied per REPORT.
    """

    def __init__(self, cpu: SimulatedCpu, identity: EnclaveIdentity) -> None:
        self._cpu = cpu
        self._identity = identity
        self._key_id = cpu.report_key_id
        self._context = cmac.CMAC(algorithms.AES(cpu.report_key(identity.target_info())))

    def verify(self, report: bytes) -> None:
        """Raise :class:`ReportMacError` unless ``report`` (432 bytes) is for us."""
        if len(report) != _REPORT_SIZE:
            raise ReportMacError(f"a REPORT is {_REPORT_SIZE} bytes, got {len(report)}")
        key_id = report[_REPORT_BODY_SIZE:_KEY_ID_END]
        if key_id == self._key_id:
            ctx = self._context.copy()
        else:
            # A KEYID other than this CPU's: derive for it (only this CPU's
            # secret can have produced a matching MAC either way).
            ctx = cmac.CMAC(
                algorithms.AES(self._cpu.report_key(self._identity.target_info(), key_id))
            )
        ctx.update(report[:_REPORT_BODY_SIZE])
        if not hmac.compare_digest(ctx.finalize(), report[_KEY_ID_END:]):
            raise ReportMacError(
                f"REPORT MAC does not verify for enclave {self._identity.name!r}: the REPORT "
                "is forged, altered, or was targeted at another enclave or platform "
                "(make it with the target info this enclave published)"
            )


class SimulatedCpu:
    """EREPORT and EGETKEY of one simulated platform at one CPUSVN."""

    def __init__(
        self, enclave_secret: bytes, cpu_svn: bytes, provisioning_secret: bytes | None = None
    ) -> None:
        if len(enclave_secret) != 32 or len(cpu_svn) != 16:
            raise ValueError("the enclave secret is 32 bytes and CPUSVN 16 bytes")
        if provisioning_secret is not None and len(provisioning_secret) != 32:
            raise ValueError("the provisioning secret is 32 bytes")
        self._enclave_secret = enclave_secret
        self._provisioning_secret = provisioning_secret
        self.cpu_svn = cpu_svn
        # Hardware draws CR_REPORT_KEYID at random once per boot. REPORTs are
        # made by short-lived processes (``sim report``) and checked by the
        # daemon, so the simulated "boot" is the platform: derive it.
        self.report_key_id = _kdf(enclave_secret, KeyName.REPORT, b"report-keyid", 32)

    @property
    def has_provisioning_access(self) -> bool:
        return self._provisioning_secret is not None

    # -- EREPORT -----------------------------------------------------------

    def report_key(self, target: TargetInfo, key_id: bytes | None = None) -> bytes:
        """The REPORT key of ``target`` for ``key_id`` (default: this CPU's KEYID)."""
        kid = self.report_key_id if key_id is None else key_id
        if len(kid) != 32:
            raise ValueError("KEYID is 32 bytes")
        deps = _report_key_dependencies(target, kid, self.cpu_svn)
        return _kdf(self._enclave_secret, KeyName.REPORT, deps)

    def ereport(
        self, identity: EnclaveIdentity, target_info: TargetInfo, report_data: bytes
    ) -> Report:
        """EREPORT: ``identity`` reports itself to the enclave named by ``target_info``."""
        if len(report_data) != 64:
            raise ValueError(f"REPORTDATA is 64 bytes, got {len(report_data)}")
        body = identity.report_body(self.cpu_svn, report_data)
        mac = _mac(self.report_key(target_info), body.to_bytes())
        return Report(body=body, key_id=self.report_key_id, mac=mac)

    def report_verifier(self, identity: EnclaveIdentity) -> ReportVerifier:
        """A reusable checker of REPORTs targeted at ``identity``."""
        return ReportVerifier(self, identity)

    def verify_report(self, report: Report | bytes, self_identity: EnclaveIdentity) -> None:
        """What an enclave does with ``sgx_verify_report``: raise unless it is for us."""
        raw = report.to_bytes() if isinstance(report, Report) else bytes(report)
        ReportVerifier(self, self_identity).verify(raw)

    # -- EGETKEY -----------------------------------------------------------

    def egetkey(self, identity: EnclaveIdentity, request: KeyRequest) -> bytes:
        """EGETKEY for the enclave ``identity``; returns a 128-bit key.

        Refusals mirror the hardware: SVNs above the enclave's or the CPU's
        (``SGX_ERROR_INVALID_ISVSVN``/``_CPUSVN``), provisioning keys without the
        PROVISION_KEY attribute (``SGX_ERROR_INVALID_ATTRIBUTE``).
        """
        name = request.key_name
        if name == KeyName.REPORT:
            return self.report_key(identity.target_info(), request.key_id)
        if name == KeyName.EINITTOKEN:
            raise KeyRequestError(
                "EINITTOKEN keys are not simulated (launch control is not modelled)",
                sgx_status=SGX_ERROR_INVALID_KEYNAME,
            )
        if name not in (KeyName.SEAL, KeyName.PROVISION, KeyName.PROVISION_SEAL):
            raise KeyRequestError(f"unknown key name {name}", sgx_status=SGX_ERROR_INVALID_KEYNAME)
        isv_svn, cpu_svn = self._check_svns(identity, request.isv_svn, request.cpu_svn)
        masked = Attributes(
            flags=identity.attributes.flags & request.attribute_mask.flags,
            xfrm=identity.attributes.xfrm & request.attribute_mask.xfrm,
        )
        common = (
            identity.isv_prod_id.to_bytes(2, "little")
            + isv_svn.to_bytes(2, "little")
            + masked.to_bytes()
            + request.attribute_mask.to_bytes()
            + (identity.misc_select & request.misc_mask).to_bytes(4, "little")
            + request.misc_mask.to_bytes(4, "little")
            + cpu_svn
        )
        if name == KeyName.SEAL:
            policy = request.key_policy
            if not policy & (KeyPolicy.MRENCLAVE | KeyPolicy.MRSIGNER):
                raise KeyRequestError(
                    "a SEAL key request must name MRENCLAVE or MRSIGNER in its key policy"
                )
            deps = (
                int(policy).to_bytes(2, "little")
                + (identity.mr_enclave if policy & KeyPolicy.MRENCLAVE else bytes(32))
                + (identity.mr_signer if policy & KeyPolicy.MRSIGNER else bytes(32))
                + common
                + request.key_id
            )
            return _kdf(self._enclave_secret, name, deps)
        # PROVISION and PROVISION_SEAL: bound to MRSIGNER, never to a KEYID.
        self._require_provision_attribute(identity, name.name)
        deps = identity.mr_signer + common
        if name == KeyName.PROVISION_SEAL:
            return _kdf(self._enclave_secret, name, deps)
        return _kdf(self._provisioning_root(), name, deps)

    def derive_pck_key(
        self, identity: EnclaveIdentity, cpu_svn: bytes, pce_svn: int, pce_id: bytes
    ) -> ec.EllipticCurvePrivateKey:
        """The PCK private key of TCB level (``cpu_svn``, ``pce_svn``), for the PCE.

        The hardware PCE derives it from its PROVISION key at that TCB level;
        here the provisioning secret feeds ``platform._keys`` (the KDF contract
        with the manufacturer) under the same gates as a PROVISION key request.
        """
        self._require_provision_attribute(identity, "PCK")
        self._check_svns(identity, pce_svn, cpu_svn)
        return derive_pck_private_key(self._provisioning_root(), cpu_svn, pce_svn, pce_id)

    def _require_provision_attribute(self, identity: EnclaveIdentity, what: str) -> None:
        if not identity.has(AttributeFlags.PROVISION_KEY):
            raise KeyRequestError(
                f"enclave {identity.name!r} may not derive {what} keys: only an enclave "
                "launched with the PROVISION_KEY attribute may (the PCE and QE3 are)",
                sgx_status=SGX_ERROR_INVALID_ATTRIBUTE,
            )

    def _provisioning_root(self) -> bytes:
        if self._provisioning_secret is None:
            raise ProvisioningAccessError(
                "this process has no access to the platform's provisioning secret "
                "(the simulated /dev/sgx_provision); only the quote helper may derive "
                "provisioning and PCK keys"
            )
        return self._provisioning_secret

    def _check_svns(
        self, identity: EnclaveIdentity, isv_svn: int | None, cpu_svn: bytes | None
    ) -> tuple[int, bytes]:
        svn = identity.isv_svn if isv_svn is None else isv_svn
        if not 0 <= svn <= identity.isv_svn:
            raise KeyRequestError(
                f"ISVSVN {svn} is above enclave {identity.name!r}'s ISVSVN {identity.isv_svn}",
                sgx_status=SGX_ERROR_INVALID_ISVSVN,
            )
        cpu = self.cpu_svn if cpu_svn is None else cpu_svn
        if len(cpu) != 16 or any(a > b for a, b in zip(cpu, self.cpu_svn, strict=True)):
            raise KeyRequestError(
                f"CPUSVN {cpu.hex()} is not at or below the platform's {self.cpu_svn.hex()}",
                sgx_status=SGX_ERROR_INVALID_CPUSVN,
            )
        return svn, cpu
