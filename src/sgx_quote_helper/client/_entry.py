"""Entry points: the default quoter chosen by the environment, and explicit modes."""

from __future__ import annotations

import os

from sgx_quote_helper._version import PCE_SVN, QE_SVN
from sgx_quote_helper.backends import PckSource
from sgx_quote_helper.client._inproc import AsyncInProcessQuoter, in_process
from sgx_quote_helper.client._mode import ENV_VAR, Mode, check_mode, environment_choice
from sgx_quote_helper.client._quoter import (
    AsyncOutOfProcessQuoter,
    AsyncQuoter,
    OutOfProcessQuoter,
    Quoter,
    RetryPolicy,
)
from sgx_quote_helper.client._transport import DEFAULT_TIMEOUT
from sgx_quote_helper.errors import UsageError

PathLike = str | os.PathLike[str]


def out_of_process(
    socket_path: PathLike | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    retry: RetryPolicy | None = None,
) -> OutOfProcessQuoter:
    """Quote through the quote helper; fixes the process to out-of-process quoting.

    ``socket_path`` defaults to the path ``SGX_AESM_ADDR`` names (absolute, or
    ``unix:PATH``), else ``/var/run/aesmd/aesm.socket``. ``timeout`` bounds each
    write and read (Intel's 15 s by default).
    """
    return OutOfProcessQuoter(
        socket_path, timeout=timeout, retry=retry, _entry_point="out_of_process()"
    )


def async_out_of_process(
    socket_path: PathLike | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    retry: RetryPolicy | None = None,
) -> AsyncOutOfProcessQuoter:
    """The asyncio form of :func:`out_of_process`."""
    return AsyncOutOfProcessQuoter(
        socket_path, timeout=timeout, retry=retry, _entry_point="async_out_of_process()"
    )


def async_in_process(
    platform_dir: PathLike,
    *,
    state_dir: PathLike | None = None,
    pccs_url: str | None = None,
    pccs_insecure: bool = False,
    pccs_ca_file: PathLike | None = None,
    pck_source: PckSource | None = None,
    qe_svn: int = QE_SVN,
    pce_svn: int = PCE_SVN,
) -> AsyncInProcessQuoter:
    """The asyncio form of :func:`in_process` (the same shared in-process QE)."""
    return AsyncInProcessQuoter(
        in_process(
            platform_dir,
            state_dir=state_dir,
            pccs_url=pccs_url,
            pccs_insecure=pccs_insecure,
            pccs_ca_file=pccs_ca_file,
            pck_source=pck_source,
            qe_svn=qe_svn,
            pce_svn=pce_svn,
            _entry_point="async_in_process()",
        )
    )


def _need_platform(label: str) -> UsageError:
    check_mode(Mode.IN_PROCESS, label)  # a mode conflict is the better message
    return UsageError(
        f"in-process quoting ({ENV_VAR} is not set) needs the simulated platform directory: "
        f"pass platform_dir= (CLI --platform); or set {ENV_VAR} before the program starts to "
        "quote out of process through the quote helper"
    )


def quoter(
    *,
    platform_dir: PathLike | None = None,
    state_dir: PathLike | None = None,
    pccs_url: str | None = None,
    pccs_insecure: bool = False,
    pccs_ca_file: PathLike | None = None,
    pck_source: PckSource | None = None,
    qe_svn: int = QE_SVN,
    pce_svn: int = PCE_SVN,
    timeout: float = DEFAULT_TIMEOUT,
    retry: RetryPolicy | None = None,
) -> Quoter:
    """The quoter ``SGX_AESM_ADDR`` selects, as DCAP's library does.

    Present (even empty): out of process, on the socket it names or the default
    one; absent: in process on ``platform_dir`` (the other arguments configure
    in-process mode, ``timeout``/``retry`` out-of-process mode). The variable
    is read once, at the library's first use.
    """
    choice = environment_choice()
    label = f"quoter() because {choice.reason}"
    if choice.mode is Mode.OUT_OF_PROCESS:
        return OutOfProcessQuoter(None, timeout=timeout, retry=retry, _entry_point=label)
    if platform_dir is None:
        raise _need_platform(label)
    return in_process(
        platform_dir,
        state_dir=state_dir,
        pccs_url=pccs_url,
        pccs_insecure=pccs_insecure,
        pccs_ca_file=pccs_ca_file,
        pck_source=pck_source,
        qe_svn=qe_svn,
        pce_svn=pce_svn,
        _entry_point=label,
    )


def async_quoter(
    *,
    platform_dir: PathLike | None = None,
    state_dir: PathLike | None = None,
    pccs_url: str | None = None,
    pccs_insecure: bool = False,
    pccs_ca_file: PathLike | None = None,
    pck_source: PckSource | None = None,
    qe_svn: int = QE_SVN,
    pce_svn: int = PCE_SVN,
    timeout: float = DEFAULT_TIMEOUT,
    retry: RetryPolicy | None = None,
) -> AsyncQuoter:
    """The asyncio form of :func:`quoter`."""
    choice = environment_choice()
    label = f"async_quoter() because {choice.reason}"
    if choice.mode is Mode.OUT_OF_PROCESS:
        return AsyncOutOfProcessQuoter(None, timeout=timeout, retry=retry, _entry_point=label)
    if platform_dir is None:
        raise _need_platform(label)
    return AsyncInProcessQuoter(
        in_process(
            platform_dir,
            state_dir=state_dir,
            pccs_url=pccs_url,
            pccs_insecure=pccs_insecure,
            pccs_ca_file=pccs_ca_file,
            pck_source=pck_source,
            qe_svn=qe_svn,
            pce_svn=pce_svn,
            _entry_point=label,
        )
    )
