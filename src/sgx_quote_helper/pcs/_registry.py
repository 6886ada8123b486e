"""The manufacturer's registry of provisioned platforms (``DIR/pcs/registry.json``).

Intel knows every CPU it fused; the simulated manufacturer knows every platform
it provisioned: its PPID (from which it recomputes the provisioning secret),
QE-ID (how a PCCS ``/pckcert`` request names it), FMSPC, PCE-ID, TCB, and which
PCK CA certifies it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sgx_quote_helper._time import format_time, parse_time
from sgx_quote_helper.pcs._errors import ManufacturerDirectoryError
from sgx_quote_helper.pcs._pki import CA_TYPES
from sgx_quote_helper.sgx import PlatformConfiguration, SgxExtension, SgxType

REGISTRY_FORMAT = 1


@dataclass(frozen=True)
class RegisteredPlatform:
    """One provisioned platform, as the manufacturer records it."""

    name: str
    #: The platform directory, relative to the simulation directory when inside it.
    path: str
    ppid: bytes
    qe_id: bytes
    fmspc: bytes
    pce_id: bytes
    tcb_components: tuple[int, ...]
    #: ``processor`` or ``platform``: the PCK CA that certifies it.
    ca_type: str
    registered: datetime
    sgx_type: int = SgxType.STANDARD
    #: Platform-CA platforms only.
    platform_instance_id: bytes | None = None
    configuration: PlatformConfiguration | None = None

    @property
    def cpu_svn(self) -> bytes:
        return bytes(self.tcb_components)

    def sgx_extension(self, cpu_svn: bytes, pce_svn: int) -> SgxExtension:
        """The SGX extension of this platform's PCK certificate for one TCB level."""
        return SgxExtension.for_tcb(
            ppid=self.ppid,
            tcb_components=tuple(cpu_svn),
            pce_svn=pce_svn,
            pce_id=self.pce_id,
            fmspc=self.fmspc,
            sgx_type=self.sgx_type,
            platform_instance_id=self.platform_instance_id,
            configuration=self.configuration,
        )

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "name": self.name,
            "path": self.path,
            "ppid": self.ppid.hex().upper(),
            "qeId": self.qe_id.hex().upper(),
            "fmspc": self.fmspc.hex().upper(),
            "pceId": self.pce_id.hex().upper(),
            "tcbComponents": list(self.tcb_components),
            "caType": self.ca_type,
            "sgxType": self.sgx_type,
            "registered": format_time(self.registered),
        }
        if self.platform_instance_id is not None:
            document["platformInstanceId"] = self.platform_instance_id.hex().upper()
        if self.configuration is not None:
            document["configuration"] = {
                "dynamicPlatform": self.configuration.dynamic_platform,
                "cachedKeys": self.configuration.cached_keys,
                "smtEnabled": self.configuration.smt_enabled,
            }
        return document

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> RegisteredPlatform:
        config = document.get("configuration")
        instance = document.get("platformInstanceId")
        platform = cls(
            name=str(document["name"]),
            path=str(document["path"]),
            ppid=_hex(document["ppid"], 16),
            qe_id=_hex(document["qeId"], 16),
            fmspc=_hex(document["fmspc"], 6),
            pce_id=_hex(document["pceId"], 2),
            tcb_components=tuple(int(svn) for svn in document["tcbComponents"]),
            ca_type=str(document["caType"]),
            registered=parse_time(document["registered"]),
            sgx_type=int(document.get("sgxType", SgxType.STANDARD)),
            platform_instance_id=None if instance is None else _hex(instance, 16),
            configuration=None
            if config is None
            else PlatformConfiguration(
                dynamic_platform=bool(config["dynamicPlatform"]),
                cached_keys=bool(config["cachedKeys"]),
                smt_enabled=bool(config["smtEnabled"]),
            ),
        )
        if platform.ca_type not in CA_TYPES:
            raise ValueError(f"caType must be one of {CA_TYPES}")
        if len(platform.tcb_components) != 16 or not all(
            0 <= svn <= 255 for svn in platform.tcb_components
        ):
            raise ValueError("tcbComponents must be 16 SVNs 0..255")
        if (platform.ca_type == "platform") != (platform.platform_instance_id is not None):
            raise ValueError("platformInstanceId is present exactly for Platform-CA platforms")
        if (platform.platform_instance_id is None) != (platform.configuration is None):
            raise ValueError("platformInstanceId and configuration come together")
        return platform


def default_sgx_type(ca_type: str) -> int:
    """Single-package platforms (Processor CA) are Standard, multi-package ones Scalable."""
    return SgxType.SCALABLE if ca_type == "platform" else SgxType.STANDARD


def _hex(value: Any, size: int) -> bytes:
    raw = bytes.fromhex(str(value))
    if len(raw) != size:
        raise ValueError(f"expected {size} bytes of hex, got {len(raw)}")
    return raw


@dataclass(frozen=True)
class Registry:
    platforms: tuple[RegisteredPlatform, ...] = ()

    def by_qe_id(self, qe_id: bytes) -> RegisteredPlatform | None:
        return next((p for p in self.platforms if p.qe_id == qe_id), None)

    def by_ppid(self, ppid: bytes) -> RegisteredPlatform | None:
        return next((p for p in self.platforms if p.ppid == ppid), None)

    def by_name(self, name: str) -> RegisteredPlatform | None:
        return next((p for p in self.platforms if p.name == name), None)

    def with_platform(self, platform: RegisteredPlatform) -> Registry:
        return Registry((*self.platforms, platform))

    def to_json(self) -> str:
        document = {
            "format": REGISTRY_FORMAT,
            "platforms": [platform.to_document() for platform in self.platforms],
        }
        return json.dumps(document, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "registry.json") -> Registry:
        try:
            document = json.loads(text)
            if document.get("format") != REGISTRY_FORMAT:
                raise ValueError(f"format must be {REGISTRY_FORMAT}")
            return cls(tuple(RegisteredPlatform.from_document(p) for p in document["platforms"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ManufacturerDirectoryError(
                f"{source} is malformed ({exc}); it is written by `sgx-quote-helper sim` commands"
            ) from None
