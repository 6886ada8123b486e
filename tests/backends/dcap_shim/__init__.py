"""Build the DCAP stand-in libraries (``dcap_ql_shim.c``, ``quoteprov_shim.c``) with ``cc``."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SOURCES = Path(__file__).parent
SHIM_VERSION = "1.99.0"


@dataclass(frozen=True)
class Shims:
    #: ``libsgx_dcap_ql.so.1`` (a symlink to ``libsgx_dcap_ql.so.1.99.0``) with
    #: the QE3 logic entry points.
    library: Path
    #: The same without ``sgx_ql_*`` (a quote library whose QE3 logic is missing).
    library_without_qe3_logic: Path
    #: ``libdcap_quoteprov.so.1``.
    quote_provider: Path


def compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "cc"))


def build(directory: Path) -> Shims:
    cc = compiler()
    assert cc is not None

    def compile_(source: str, output: Path, *defines: str) -> None:
        output.parent.mkdir(parents=True, exist_ok=True)
        flags = ["-shared", "-fPIC", "-O1", "-Wall", "-Werror", *defines]
        subprocess.run(
            [cc, *flags, "-o", str(output), str(SOURCES / source), "-lpthread"],
            check=True,
            capture_output=True,
        )

    full = directory / "full" / f"libsgx_dcap_ql.so.{SHIM_VERSION}"
    compile_("dcap_ql_shim.c", full)
    (directory / "full" / "libsgx_dcap_ql.so.1").symlink_to(full.name)
    partial = directory / "no-qe3-logic" / f"libsgx_dcap_ql.so.{SHIM_VERSION}"
    compile_("dcap_ql_shim.c", partial, "-DSHIM_NO_QE3_LOGIC")
    (directory / "no-qe3-logic" / "libsgx_dcap_ql.so.1").symlink_to(partial.name)
    provider = directory / "qpl" / "libdcap_quoteprov.so.1"
    compile_("quoteprov_shim.c", provider)
    return Shims(
        library=directory / "full" / "libsgx_dcap_ql.so.1",
        library_without_qe3_logic=directory / "no-qe3-logic" / "libsgx_dcap_ql.so.1",
        quote_provider=provider,
    )


class ShimControl:
    """The shim's control functions, through its own handle on the same library."""

    def __init__(self, library: Path) -> None:
        self._dll = ctypes.CDLL(str(library))
        self._dll.shim_log.restype = ctypes.c_char_p
        self._dll.shim_log.argtypes = []
        self._dll.shim_script.argtypes = [ctypes.c_char_p, ctypes.c_uint32]
        self._dll.shim_script.restype = ctypes.c_int
        self._dll.shim_set_delay_ms.argtypes = [ctypes.c_uint]
        self._dll.shim_set_quote_size.argtypes = [ctypes.c_uint32]
        self._dll.shim_misbehave.argtypes = [ctypes.c_size_t, ctypes.c_uint32]
        self._dll.shim_max_active.restype = ctypes.c_int
        self._dll.shim_reset.argtypes = []

    def reset(self) -> None:
        self._dll.shim_reset()

    def log(self) -> list[str]:
        raw: bytes = self._dll.shim_log()
        return raw.decode().splitlines()

    def calls(self) -> list[str]:
        """The ``enter`` lines: one per library call, with its arguments."""
        return [line.removeprefix("enter ") for line in self.log() if line.startswith("enter ")]

    def script(self, function: str, code: int) -> None:
        assert self._dll.shim_script(function.encode(), code) == 1

    def delay(self, milliseconds: int) -> None:
        self._dll.shim_set_delay_ms(milliseconds)

    def set_quote_size(self, size: int) -> None:
        self._dll.shim_set_quote_size(size)

    def misbehave(self, *, pub_key_id_size: int = 0, sig_len_excess: int = 0) -> None:
        """Report this ECDSA id size / claim this many more signature bytes (0: honest)."""
        self._dll.shim_misbehave(pub_key_id_size, sig_len_excess)

    def max_active(self) -> int:
        value: int = self._dll.shim_max_active()
        return value
