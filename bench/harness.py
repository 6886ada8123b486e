"""``make bench``: the whole benchmark against the physical floor, in one run.

Writes ``bench/results/latest.json`` (and a PNG plot next to it); each key is
described in ``docs/performance.md``, with its target. In order:

1. ``raw_crypto_us_per_quote``: the floor, ECDSA P-256 sign over 432 bytes plus
   AES-CMAC over 384 bytes with the same ``cryptography`` build;
2. the daemon (``sgx-quote-helper serve``, a separate process) at 1, 8, 32 and
   128 clients: each client a separate load-generator process speaking the wire
   protocol, one connection per request (``bench/_loadgen.py``, native C when a
   compiler exists); the daemon's CPU summed over all its processes;
3. ``idle_1000_p99_ms``: 8 clients quote while another uid holds 1,000
   connections that never send; ``attack_p99_ms``: the same with 300 stalled
   connections and a garbage flood from another uid (``bench/_attack.py``),
   and ``attack_same_uid`` with the attacker sharing the clients' uid;
4. ``inproc_first_quote_ms`` / ``outproc_first_quote_ms``: a fresh application
   process's first quote (``bench/_first_quote.py``), and ``epc_bytes``;
5. ``verify_qps`` / ``verify_ratio``: ``Verifier`` (default construction, warm)
   against ``dcap_qvl.verify_with_root_ca`` on the same quote and collateral;
6. ``pccs_get_ms``: GET latency to the project's PCCS, project client vs urllib.

``--smoke`` is the bounded version ``make test`` runs: two small load levels,
short windows, no plot; it checks the harness works and no request fails.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import cmac, hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import algorithms

from bench._loadgen import CpuWindow, native_client, run_clients
from bench.daemon import RESULTS, Daemon, _daemon, _frames, _machine, _starvation, _tree

_CLK_TCK = os.sysconf("SC_CLK_TCK")
NOBODY = 65534

#: The declared sizes of Intel's QE3 and PCE enclaves (heap + stack), from the
#: enclave configuration files Intel builds them with (docs/performance.md).
QE3_HEAP, QE3_STACK = 0x24000, 0x44000  # DCAP QuoteGeneration/quote_wrapper/quote/enclave
PCE_HEAP, PCE_STACK = 0x8000, 0x5000  # linux-sgx psw/ae/pce/config.xml
QE3_PCE_BYTES = QE3_HEAP + QE3_STACK + PCE_HEAP + PCE_STACK


# -- measurements of processes ----------------------------------------------------


def _tree_cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime
    return total


def _tree_peak_rss_mib(pids: list[int]) -> float:
    """The sum of every process's peak resident set (VmHWM), in MiB."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, StopIteration):
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
            total += int(next(x for x in status if x.startswith("VmHWM:")).split()[1])
    return round(total / 1024, 1)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def _ms(values: list[float], fraction: float) -> float | None:
    return round(_percentile(values, fraction) * 1e3, 3) if values else None


# -- 1. the floor ------------------------------------------------------------------


def raw_crypto_us_per_quote(seconds: float = 1.0) -> float:
    """CPU µs for what a quote must cost at least: one ECDSA P-256 sign, one AES-CMAC."""
    key = ec.generate_private_key(ec.SECP256R1())
    signed, maced, mac_key = os.urandom(432), os.urandom(384), os.urandom(16)

    def one() -> None:
        key.sign(signed, ec.ECDSA(hashes.SHA256()))
        mac = cmac.CMAC(algorithms.AES(mac_key))
        mac.update(maced)
        mac.finalize()

    best = float("inf")
    for _ in range(3):  # the least disturbed of three rounds
        count, began = 0, time.process_time()
        while time.process_time() - began < seconds / 3:
            for _ in range(50):
                one()
            count += 50
        best = min(best, (time.process_time() - began) / count)
    return round(best * 1e6, 2)


# -- 2. load levels ---------------------------------------------------------------


def load_level(
    daemon: Daemon, frame: Path, clients: int, duration: float, native: Path | None
) -> dict[str, Any]:
    pids = _tree(daemon.process.pid)
    window = CpuWindow(lambda: _tree_cpu_seconds(pids))
    result = run_clients(
        daemon.socket, frame, clients, duration, on_window=window.on_window, native=native
    )
    count = len(result.latencies)
    cpu = window.seconds()
    return {
        "clients": clients,
        "quotes": count,
        "errors": result.errors,
        "quotes_per_second": round(result.throughput, 1),
        "p50_ms": _ms(result.latencies, 0.50),
        "p99_ms": _ms(result.latencies, 0.99),
        "p999_ms": _ms(result.latencies, 0.999),
        "server_processes": len(pids),
        "server_cpu_us_per_quote": round(cpu / count * 1e6, 1) if count else None,
        "server_cpu_utilisation": round(cpu / duration, 2),
        "peak_rss_mib": _tree_peak_rss_mib(pids),
        "loadgen_cpu_us_per_request": (
            round(result.client_cpu_seconds / count * 1e6, 1) if count else None
        ),
    }


# -- 3. idle and hostile neighbours -------------------------------------------------


def _hold_idle_connections(path: str, count: int, ready: int, release: int) -> None:
    """In a forked child, as ``nobody``: open ``count`` connections, never send."""
    status = 1
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, count + 64)), hard))
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        held: list[socket.socket] = []
        deadline = time.monotonic() + 10
        while len(held) < count and time.monotonic() < deadline:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                sock.connect(path)
            except BlockingIOError:  # backlog full: the daemon is shedding, try again
                sock.close()
                time.sleep(0.001)
                continue
            except OSError:
                sock.close()
                time.sleep(0.001)
                continue
            held.append(sock)
        os.write(ready, str(len(held)).encode())
        os.read(release, 1)  # until the parent is done (or dies)
        status = 0
    finally:
        os._exit(status)


def idle_neighbours(
    daemon: Daemon, frame: Path, duration: float, native: Path | None, count: int = 1000
) -> dict[str, Any]:
    """8 clients quote while another uid holds ``count`` connections that never send."""
    if os.geteuid() != 0:
        return {"skipped": "needs root to open the connections as another uid"}
    ready_r, ready_w = os.pipe()
    release_r, release_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(release_w)
        _hold_idle_connections(str(daemon.socket), count, ready_w, release_r)
    os.close(ready_w)
    os.close(release_r)
    try:
        opened = int(os.read(ready_r, 32) or b"0")
        result = run_clients(daemon.socket, frame, 8, duration, native=native)
    finally:
        os.close(release_w)
        os.close(ready_r)
        os.waitpid(pid, 0)
    return {
        "idle_connections_opened": opened,
        "idle_uid": NOBODY,
        "clients": 8,
        "quotes": len(result.latencies),
        "errors": result.errors,
        "p50_ms": _ms(result.latencies, 0.5),
        "p99_ms": _ms(result.latencies, 0.99),
    }


def _attack_as(uid: int | None, path: str, stop: float, out: int) -> None:
    """In a forked child (as ``uid`` when given): bench/_attack.py until ``stop``."""
    status = 1
    try:
        from bench._attack import attack as run_attack

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 1024)), hard))
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        os.write(out, json.dumps(run_attack(path, stop, 300)).encode())
        status = 0
    finally:
        os._exit(status)


def attack(
    daemon: Daemon, frame: Path, duration: float, native: Path | None, *, same_uid: bool = False
) -> dict[str, Any]:
    """8 clients quote beside 300 stalled connections and a garbage flood (bench/_attack.py).

    The attacker is another uid (``nobody``), the reliability issue's
    scenario: one tenant abusing the socket while others quote. With
    ``same_uid`` it shares the clients' uid, the worst case for per-uid
    quotas (they then compete for the one quota the attacker fills).
    """
    if importlib.util.find_spec("bench._attack") is None:
        return {"skipped": "bench/_attack.py (the reliability issue's attacker) is not here yet"}
    uid = None if same_uid else NOBODY
    if uid is not None and os.geteuid() != 0:
        return {"skipped": "needs root to run the attacker as another uid"}
    stop = time.time() + duration + 4
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(reader)
        _attack_as(uid, str(daemon.socket), stop, writer)
    os.close(writer)
    try:
        time.sleep(1.0)  # the stalled connections are open, the flood runs
        result = run_clients(daemon.socket, frame, 8, duration, native=native)
        chunks = []
        while chunk := os.read(reader, 65536):
            chunks.append(chunk)
        out = b"".join(chunks)
    finally:
        os.close(reader)
        os.waitpid(pid, 0)
    return {
        "clients": 8,
        "attacker_uid": os.geteuid() if uid is None else uid,
        "quotes": len(result.latencies),
        "errors": result.errors,
        "p50_ms": _ms(result.latencies, 0.5),
        "p99_ms": _ms(result.latencies, 0.99),
        "attacker": json.loads(out) if out.strip() else None,
    }


# -- 4. first quote and EPC ----------------------------------------------------------


def first_quotes(work: Path, daemon: Daemon, runs: int) -> dict[str, Any]:
    root = Path(__file__).parent.parent
    times: dict[str, list[float]] = {"inproc": [], "outproc": []}
    for index in range(runs):
        for mode in times:
            where = daemon.socket if mode == "outproc" else work / f"inproc-state-{index}"
            command = [sys.executable, "-m", "bench._first_quote", mode]
            command += ["--platform", str(work / "sim" / "platform"), "--where", str(where)]
            env = {k: v for k, v in os.environ.items() if k != "SGX_AESM_ADDR"}
            out = subprocess.run(
                command, capture_output=True, text=True, check=True, cwd=root, env=env
            )
            times[mode].append(float(out.stdout.strip()))
    return {mode: round(statistics.median(values), 2) for mode, values in times.items()} | {
        "runs": runs
    }


def epc_bytes() -> dict[str, dict[str, int]]:
    """Loaded QE3/PCE instances x their declared sizes, per node, for 1/10/100 applications."""
    return {
        str(apps): {
            # In process every application loads its own QE3 and PCE; out of
            # process the daemon loads one pair for the node, shared by its workers.
            "inproc": apps * QE3_PCE_BYTES,
            "outproc": QE3_PCE_BYTES,
        }
        for apps in (1, 10, 100)
    }


# -- 5 and 6. verification and the PCCS ----------------------------------------------


@contextlib.contextmanager
def _pccs(work: Path) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "sgx_quote_helper", "pccs", "--sim", str(work / "sim")]
    command += ["--listen", f"127.0.0.1:{port}", "--log-level", "warning"]
    process = subprocess.Popen(command)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the PCCS did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def verification(work: Path, url: str, seconds: float) -> dict[str, Any]:
    import dcap_qvl

    from sgx_quote_helper.backends import SimBackend
    from sgx_quote_helper.pccs import PccsClient
    from sgx_quote_helper.platform import Platform, demo_app_identity
    from sgx_quote_helper.sgx import DEFAULT_ECDSA_ATT_KEY_ID
    from sgx_quote_helper.verify import TrustAnchor, UnsafeNoAppraisal, Verifier

    sim = work / "sim"
    key_id = DEFAULT_ECDSA_ATT_KEY_ID.base
    with PccsClient(url) as client:
        backend = SimBackend(
            sim / "platform", work / "verify-qe", pck_source=client.get_pck_certificate
        )
        target = backend.init_quote(key_id).target_info
        cpu = Platform.load(sim / "platform", need_provisioning=False).cpu()
        report = cpu.ereport(demo_app_identity(), target, b"verify".ljust(64, b"\0"))
        quote = backend.get_quote(report.to_bytes(), key_id, None).quote
        collateral = client.get_collateral(quote).to_dcap_qvl()
    anchor = TrustAnchor.from_file(sim / "pcs" / "root-ca.der")
    root = anchor.certificate_der
    policy = UnsafeNoAppraisal()
    with Verifier(anchor, pccs=url) as verifier:  # the default construction
        verifier.verify(quote, policy=policy)  # warm: collateral fetched and kept

        def ours() -> None:
            verifier.verify(quote, policy=policy)

        def engine() -> None:
            dcap_qvl.verify_with_root_ca(quote, collateral, root, int(time.time()))

        # Interleaved batches, CPU time of this (single-threaded) process: on a
        # shared machine both sides see the same disturbance.
        spent = {ours: 0.0, engine: 0.0}
        done = {ours: 0, engine: 0}
        began = time.monotonic()
        while time.monotonic() - began < seconds:
            for call in (ours, engine):
                start = time.process_time()
                for _ in range(20):
                    call()
                spent[call] += time.process_time() - start
                done[call] += 20
    ours_qps = done[ours] / spent[ours]
    engine_qps = done[engine] / spent[engine]
    return {
        "verify_qps": round(ours_qps, 1),
        "dcap_qvl_qps": round(engine_qps, 1),
        "verify_ratio": round(ours_qps / engine_qps, 3),
    }


def pccs_get(url: str, count: int) -> dict[str, dict[str, float | None]]:
    from sgx_quote_helper.pccs import PccsClient

    document = f"{url}/sgx/certification/v4/qe/identity"

    def plain() -> None:
        with urllib.request.urlopen(document, timeout=10) as response:  # noqa: S310 (loopback)
            response.read()

    project: list[float] = []
    baseline: list[float] = []
    with PccsClient(url) as client:
        client.get_qe_identity()
        plain()
        # Alternated, so that both clients see the same disturbance of a shared machine.
        for _ in range(count):
            for call, values in ((client.get_qe_identity, project), (plain, baseline)):
                began = time.perf_counter()
                call()
                values.append(time.perf_counter() - began)
    return {
        name: {"p50": _ms(values, 0.5), "p99": _ms(values, 0.99)}
        for name, values in (("project_client", project), ("urllib", baseline))
    }


# -- the run --------------------------------------------------------------------------


def _plot(levels: list[dict[str, Any]], path: Path) -> str | None:
    try:
        import matplotlib  # type: ignore[import-not-found,unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return "matplotlib is not installed (pip install '.[bench]')"
    clients = [row["clients"] for row in levels]
    figure, left = plt.subplots(figsize=(7, 4))
    left.plot(clients, [row["quotes_per_second"] for row in levels], "o-", color="tab:blue")
    left.set_xscale("log", base=2)
    left.set_xticks(clients, [str(c) for c in clients])
    left.set_xlabel("concurrent clients (one connection per request)")
    left.set_ylabel("quotes/s", color="tab:blue")
    right = left.twinx()
    right.plot(clients, [row["p99_ms"] for row in levels], "s--", color="tab:red")
    right.set_ylabel("p99 latency (ms)", color="tab:red")
    left.set_title("sgx-quote-helper daemon: throughput and p99 against clients")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return None


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="the bounded run `make test` does")
    parser.add_argument("--duration", type=float, help="seconds per load level")
    parser.add_argument("--workers", type=int, help="daemon worker processes (default: its own)")
    parser.add_argument("--out", type=Path, help="where to write the JSON (default: latest.json)")
    parser.add_argument(
        "--loadgen", choices=("native", "python"), default="native", help="client processes"
    )
    args = parser.parse_args(argv)
    smoke = args.smoke
    duration = args.duration or (0.5 if smoke else 4.0)
    levels = (1, 4) if smoke else (1, 8, 32, 128)
    native = native_client() if args.loadgen == "native" else None
    out = args.out or RESULTS / "latest.json"
    cores = os.cpu_count() or 1
    started = time.monotonic()

    results: dict[str, Any] = {"machine": {**_machine(), "load_before": _load_average()}}
    results["loadgen"] = "native" if native is not None else "python"
    results["raw_crypto_us_per_quote"] = raw_crypto_us_per_quote(0.3 if smoke else 1.5)
    work = Path(tempfile.mkdtemp(prefix="sqh-bench-"))
    work.chmod(0o755)  # the idle neighbour (uid nobody) must reach the socket
    try:
        with contextlib.redirect_stdout(sys.stderr):
            from sgx_quote_helper._cli import main as cli_main

            cli_main(["sim", "init", str(work / "sim")])
        extra = ["--workers", str(args.workers)] if args.workers else []
        with _daemon(work, loop="asyncio", profile=None, extra=extra) as daemon:
            (work / "run").chmod(0o755)
            frame, count_frame = _frames(work, daemon)
            rows = []
            for clients in levels:
                row = load_level(daemon, frame, clients, duration, native)
                rows.append(row)
                print(f"{clients:4d} clients: {row}", file=sys.stderr)
            results["load"] = rows
            raw = results["raw_crypto_us_per_quote"]
            for row in rows:
                cpu = row["server_cpu_us_per_quote"]
                row["cpu_ratio"] = round(cpu / raw, 2) if cpu else None
            at32 = next((r for r in rows if r["clients"] == 32), rows[-1])
            loadgen_us = at32["loadgen_cpu_us_per_request"] or 0.0
            limit = cores * 1e6 / (raw + loadgen_us)
            results["limit_qps"] = round(limit, 1)
            results["throughput_fraction"] = round(at32["quotes_per_second"] / limit, 3)
            results["cpu_ratio"] = at32["cpu_ratio"]
            results["server_cpu_us_per_quote"] = at32["server_cpu_us_per_quote"]
            results["loadgen_cpu_us_per_request"] = at32["loadgen_cpu_us_per_request"]
            results["p99_ms_at_32"] = at32["p99_ms"]
            if not smoke:
                # GetSupportedAttKeyIDNum from one client while 32 others quote.
                results["keyid_probe_under_32_clients"] = _starvation(
                    daemon, frame, count_frame, duration, native
                )
                idle = idle_neighbours(daemon, frame, duration, native)
                results["idle_1000"] = idle
                results["idle_1000_p99_ms"] = idle.get("p99_ms")
                hostile = attack(daemon, frame, duration, native)
                results["attack"] = hostile
                results["attack_p99_ms"] = hostile.get("p99_ms")
                results["attack_same_uid"] = attack(daemon, frame, duration, native, same_uid=True)
            first = first_quotes(work, daemon, 1 if smoke else 3)
            results["inproc_first_quote_ms"] = first["inproc"]
            results["outproc_first_quote_ms"] = first["outproc"]
            results["first_quote_runs"] = first["runs"]
        results["epc_bytes"] = epc_bytes()
        results["epc_sizes"] = {
            "qe3_heap_plus_stack": QE3_HEAP + QE3_STACK,
            "pce_heap_plus_stack": PCE_HEAP + PCE_STACK,
        }
        with _pccs(work) as url:
            results |= verification(work, url, 0.5 if smoke else 6.0)
            results["pccs_get_ms"] = pccs_get(url, 20 if smoke else 200)
        results["machine"]["load_after"] = _load_average()
        results["seconds"] = round(time.monotonic() - started, 1)
        if not smoke:
            plot = out.with_suffix(".png")
            problem = _plot(results["load"], plot)
            results["plot"] = plot.name if problem is None else problem
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results, indent=2))
        print(f"results written to {out}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0
