"""Crash safety: ``kill -9`` at random points, and full disks, never leave a mix.

The number of kills is bounded here (``SQH_FAULT_KILLS``, default 10); ``make
faults`` runs 100. Kill points are random but seeded (``SQH_FAULT_SEED``), so a
failure names the seed that reproduces it.

* The daemon under load, including while it generates and seals the
  attestation key (a third of the runs start from an empty state directory
  and are killed early): every restart loads a key that unseals (never a
  ``.corrupt`` one), the key stays the same once persisted, and clients see
  only connection errors, "not ready" or "key not initialised" (after which
  they send InitQuoteEx, as Intel's client does) or correct quotes; a sample of them is fully
  verified at the end.
* ``sim init``, ``sim tcb-recovery`` and ``sim add-platform``: a kill at any
  point leaves the old state or the new one, or a one-line error naming the
  fix; the PCCS killed while it issues and caches collateral serves valid
  collateral after a restart.
* A full disk at sealing time (``RLIMIT_FSIZE``): a clear error naming the
  code, no partial file, readiness false, and recovery once there is room.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from daemon_support import free_port, short_dir

from fuzz.network import KEY_ID, QuoteChecker, _read_frame, verify_quotes
from sgx_quote_helper._cli import main
from sgx_quote_helper._version import QE_SVN
from sgx_quote_helper.aesm import InitQuoteExRequest, frame_request
from sgx_quote_helper.pcs import Manufacturer
from sgx_quote_helper.platform import Platform
from sgx_quote_helper.platform._enclave import quoting_enclave_identity
from sgx_quote_helper.platform._qe import ATTESTATION_KEY_FILE
from sgx_quote_helper.platform._sealing import unseal

KILLS = int(os.environ.get("SQH_FAULT_KILLS", "10"))
SEED = int(os.environ.get("SQH_FAULT_SEED", "20261206"))


@pytest.fixture
def work(sim: Path) -> Iterator[Path]:
    """A short directory (socket path limit) holding a copy of the session's sim."""
    for path in short_dir():
        shutil.copytree(sim, path / "sim", symlinks=True)
        yield path


def _spawn_daemon(
    work: Path, admin: str, *, preexec: Callable[[], None] | None = None
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "sgx_quote_helper", "serve"]
    command += ["--platform", str(work / "sim" / "platform"), "--socket", str(work / "s")]
    command += ["--admin-listen", admin, "--state-dir", str(work / "state")]
    with (work / "daemon.log").open("ab") as log:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, preexec_fn=preexec)


def _persisted_public_key(work: Path) -> bytes | None:
    """The public key of the sealed attestation key on disk (it must unseal), if any."""
    path = work / "state" / ATTESTATION_KEY_FILE
    if not path.exists():
        return None
    cpu = Platform.load(work / "sim" / "platform", need_provisioning=False).cpu()
    _secret, additional = unseal(cpu, quoting_enclave_identity(QE_SVN), path.read_bytes())
    return additional[-64:]


def _ready(admin: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"http://{admin}/readyz", timeout=2).status_code == 200
    return False


def _wait(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_daemon_killed_at_random_points_under_load(work: Path) -> None:
    rng = random.Random(SEED)
    admin = f"127.0.0.1:{free_port()}"
    # One daemon run to learn the QE's target info (the same for every key).
    process = _spawn_daemon(work, admin)
    try:
        _wait(lambda: _ready(admin), "the first daemon")
        from fuzz.network import Daemon

        checker = QuoteChecker(Daemon(process, work / "s", admin, work / "sim"))
    finally:
        process.kill()
        process.wait()
    outcomes: Counter[str] = Counter()
    wrong: list[str] = []
    sample: list[bytes] = []
    persisted = _persisted_public_key(work)
    for run in range(KILLS):
        fresh = run % 3 == 0
        if fresh:  # kill during key generation and sealing, or just after
            shutil.rmtree(work / "state", ignore_errors=True)
            persisted = None
        served: set[bytes] = set()
        stop = threading.Event()

        def client(
            index: int,
            run: int = run,
            served: set[bytes] = served,
            stop: threading.Event = stop,
        ) -> None:
            local = random.Random(SEED + run * 100 + index)
            while not stop.is_set():
                data = local.randbytes(64)
                try:
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                        sock.settimeout(20)
                        sock.connect(str(work / "s"))
                        sock.sendall(checker.request(data))
                        body = _read_frame(sock)
                except (OSError, ConnectionError):
                    outcomes["connection error"] += 1
                    time.sleep(0.005)
                    continue
                try:
                    raw = _checked(checker, body, data)
                except _NotReady:
                    outcomes["not ready (AESM_NETWORK_ERROR)"] += 1
                    continue
                except _NotInitialized:
                    # As Intel's client: InitQuoteEx after a (re)start, then quote again.
                    outcomes["key not initialised (42): InitQuoteEx"] += 1
                    with contextlib.suppress(OSError, ConnectionError):
                        _init_quote_ex(work / "s")
                    continue
                except (AssertionError, ValueError) as exc:
                    wrong.append(f"run {run}: {exc}")
                    continue
                outcomes["quote"] += 1
                served.add(_public_key(raw))
                if len(sample) < 40 and local.random() < 0.05:
                    sample.append(raw)

        process = _spawn_daemon(work, admin)
        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        if fresh:
            # The key is generated and sealed a moment after start-up: kill
            # anywhere in start-up, key generation, sealing or the first quotes.
            time.sleep(rng.uniform(0.2, 1.5))
        else:
            # Under load: once the daemon serves, kill it mid-stream.
            _wait(lambda: _ready(admin), f"run {run} to become ready")
            time.sleep(rng.uniform(0.0, 1.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        stop.set()
        for thread in threads:
            thread.join()
        on_disk = _persisted_public_key(work)  # raises if a torn blob was left
        assert not list((work / "state").glob("*.corrupt")), f"run {run}: a corrupt key"
        if persisted is not None:
            assert on_disk == persisted, f"run {run}: the persisted key changed"
        if served:
            assert on_disk is not None, f"run {run}: quotes served with an unpersisted key"
            assert served == {on_disk}, f"run {run}: served a key that is not the persisted one"
        persisted = on_disk
    assert wrong == [], wrong[:5]
    # A clean start after all the kills: ready, with the persisted key.
    process = _spawn_daemon(work, admin)
    try:
        _wait(lambda: _ready(admin), "the daemon after the last kill")
        _init_quote_ex(work / "s")
        data = bytes(range(64))
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(str(work / "s"))
            sock.sendall(checker.request(data))
            raw = _checked(checker, _read_frame(sock), data)
        assert _public_key(raw) == _persisted_public_key(work)
        sample.append(raw)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert outcomes["quote"] > 0
    assert verify_quotes(work / "sim", sample) == len(sample)


class _NotReady(Exception):
    pass


class _NotInitialized(Exception):
    pass


def _init_quote_ex(path: Path) -> None:
    init = InitQuoteExRequest(att_key_id=KEY_ID, b_pub_key_id=True, buf_size=32)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(20)
        sock.connect(str(path))
        sock.sendall(frame_request(init))
        _read_frame(sock)


def _checked(checker: QuoteChecker, body: bytes, data: bytes) -> bytes:
    from sgx_quote_helper.aesm import MessageKind, decode_response

    reply = decode_response(body, MessageKind.GET_QUOTE_EX)
    if reply.error_code == 12:  # AESM_NETWORK_ERROR: not ready yet (no key yet)
        raise _NotReady
    if reply.error_code == 42:  # AESM_ATT_KEY_NOT_INITIALIZED: no InitQuoteEx yet
        raise _NotInitialized
    checker.attestation_key = None  # the key may change between fresh runs
    return checker.check(body, data)


def _public_key(raw: bytes) -> bytes:
    from sgx_quote_helper.sgx import Quote

    return Quote.from_bytes(raw).signature_data()[64:128]


# ---- sim commands and the PCCS ----


def _run_and_kill(argv: list[str], delay: float) -> int | None:
    """Run the CLI in a process, SIGKILL it after ``delay`` s; its exit code if it finished."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sgx_quote_helper", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return None


def _cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, err.getvalue()


def _state_of(sim: Path) -> dict[str, object]:
    """What a reader sees: the policy, the platforms, and each platform loading."""
    manufacturer = Manufacturer.load(sim)
    platforms = {}
    for platform in manufacturer.platforms():
        loaded = Platform.load(sim / platform.path, need_provisioning=True)
        platforms[platform.name] = loaded.description.qe_id.hex()
    return {"policy": json.loads(manufacturer.policy().to_json()), "platforms": platforms}


def test_sim_init_killed_at_any_point_is_usable_or_says_how_to_recover(tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    outcomes: Counter[str] = Counter()
    for run in range(max(3, KILLS // 3)):
        target = tmp_path / f"sim{run}"
        code = _run_and_kill(["sim", "init", str(target)], rng.uniform(0.3, 4.0))
        if code == 0:
            _state_of(target)
            outcomes["complete"] += 1
            continue
        # Killed: either nothing usable is claimed (show fails with one line
        # naming the fix), or the manufacturer loads whole.
        show, err = _cli(["sim", "show", str(target)])
        if show == 0:
            outcomes["manufacturer complete, platform pending"] += 1
        else:
            assert err.count("\n") == 1, err
            assert "Traceback" not in err
            outcomes["refused with a message"] += 1
        # The fix is to start again in a new directory, or in this one once removed.
        shutil.rmtree(target, ignore_errors=True)  # a kill may come before mkdir
        assert _cli(["sim", "init", str(target)])[0] == 0
        _state_of(target)
    assert sum(outcomes.values()) == max(3, KILLS // 3)


def test_tcb_recovery_and_add_platform_killed_leave_old_or_new_state(work: Path) -> None:
    sim = work / "sim"
    rng = random.Random(SEED + 2)
    for run in range(max(3, KILLS // 3)):
        before = _state_of(sim)
        number = before["policy"]["tcbEvaluationDataNumber"]  # type: ignore[index]
        code = _run_and_kill(
            ["sim", "tcb-recovery", str(sim), "--qe-svn", str(QE_SVN + run + 1)],
            rng.uniform(0.2, 2.0),
        )
        after = _state_of(sim)
        new_number = after["policy"]["tcbEvaluationDataNumber"]  # type: ignore[index]
        assert new_number in (number, number + 1), (run, code)
        if code == 0:
            assert new_number == number + 1
        name = f"extra{run}"
        code = _run_and_kill(["sim", "add-platform", str(sim), name], rng.uniform(0.2, 3.0))
        state = _state_of(sim)  # every registered platform loads whole
        if name in state["platforms"]:  # type: ignore[operator]
            continue
        assert code != 0
        # Not registered: adding it again works, or says what to remove.
        retry, err = _cli(["sim", "add-platform", str(sim), name])
        if retry != 0:
            assert "remove it first" in err or "exists already" in err, err
            shutil.rmtree(sim / "platforms" / name)
            assert _cli(["sim", "add-platform", str(sim), name])[0] == 0
        assert name in _state_of(sim)["platforms"]  # type: ignore[operator]


def test_pccs_killed_while_issuing_serves_valid_collateral_after_restart(work: Path) -> None:
    from sgx_quote_helper.pccs import PccsClient

    sim = work / "sim"
    manufacturer = Manufacturer.load(sim)
    fmspc = manufacturer.platforms()[0].fmspc.hex()
    rng = random.Random(SEED + 3)
    for _run in range(max(3, KILLS // 3)):
        port = free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sgx_quote_helper",
                "pccs",
                "--sim",
                str(sim),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Expire the cached collateral so the service issues and writes new files.
        shutil.rmtree(sim / "pcs" / "cache", ignore_errors=True)
        (sim / "pcs" / "cache").mkdir()
        stop = threading.Event()

        def fetch(port: int = port, stop: threading.Event = stop) -> None:
            while not stop.is_set():
                with (
                    contextlib.suppress(Exception),
                    PccsClient(f"http://127.0.0.1:{port}", timeout=5) as client,
                ):
                    client.get_collateral(fmspc=fmspc, ca="processor")

        threads = [threading.Thread(target=fetch) for _ in range(3)]
        for thread in threads:
            thread.start()
        time.sleep(rng.uniform(0.5, 3.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
        stop.set()
        for thread in threads:
            thread.join()
        # Whatever was written is whole: a fresh service serves valid collateral.
        from sgx_quote_helper.pcs import serve_in_thread

        with serve_in_thread(sim) as service, PccsClient(service.url) as client:
            collateral = client.get_collateral(fmspc=fmspc, ca="processor")
        assert collateral.tcb_info


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))


def test_full_disk_at_sealing_time_is_a_clear_not_ready_and_recovers(work: Path) -> None:
    # RLIMIT_FSIZE stands for a full disk: every write past 64 bytes fails
    # with EFBIG, as ENOSPC would, but needs no mount and works in any container.
    # The limit covers every file the daemon writes, so its log goes to a pipe.
    admin = f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "sgx_quote_helper", "serve"]
    command += ["--platform", str(work / "sim" / "platform"), "--socket", str(work / "s")]
    command += ["--admin-listen", admin, "--state-dir", str(work / "state")]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_limit_file_size
    )
    lines: list[bytes] = []
    assert process.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(process.stderr or ()), daemon=True)
    reader.start()
    try:
        _wait(lambda: any(b"daemon.not_ready" in line for line in lines), "the reason")
        assert not _ready(admin)
        metrics = httpx.get(f"http://{admin}/metrics", timeout=10).text
        assert "sgx_quote_helper_ready 0.0" in metrics
        text = b"".join(lines).decode()
        assert "SGX_QL_FILE_ACCESS_ERROR 0xE006" in text
        assert "sealed attestation key" in text
        # No partial file: the state directory holds no key and no temporary
        # (only lock files, which hold no data: the daemon's, and with several
        # workers the one that serializes their key initialization).
        leftovers = [p.name for p in (work / "state").iterdir() if p.is_file()]
        assert set(leftovers) <= {"daemon.lock", "attestation-key.lock"}
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        reader.join(timeout=30)
        process.stderr.close()
    process = _spawn_daemon(work, admin)  # room again
    try:
        _wait(lambda: _ready(admin), "the daemon with room on the disk")
        assert _persisted_public_key(work) is not None
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
