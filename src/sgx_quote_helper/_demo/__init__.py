"""``sgx-quote-helper demo``: the benefits of out-of-process quoting, shown end to end.

A user of the layers below, like ``samples`` and ``doctor``: it creates a
simulation with the ``pcs`` and ``platform`` functions, runs the daemon and the
remote attestation sample as real processes, and serves the PCCS in a thread.
``_cli`` prints its account; tests drive :func:`run_demo` and the helpers.

- ``_story``: the seven steps (:class:`Demo`, :data:`STEPS`, :func:`run_demo`);
- ``_pair``: the sample's two sides as processes and what they reported;
- ``_processes``: the daemon as a child process, its readiness and metrics.
"""

from sgx_quote_helper._demo._errors import DemoError
from sgx_quote_helper._demo._pair import PAIR_TIMEOUT, PartyOutcome, SampleSetup, run_pair
from sgx_quote_helper._demo._processes import (
    SERVICE_START_TIMEOUT,
    STOP_TIMEOUT,
    DaemonSpec,
    ManagedProcess,
    child_environment,
    cli_command,
    daemon_metrics,
    reserve_port,
    shown,
    start_daemon,
    wait_daemon_ready,
    wait_until,
)
from sgx_quote_helper._demo._story import (
    DEMO_ADVISORY,
    STEPS,
    Demo,
    DemoReport,
    StepOutcome,
    run_demo,
)

__all__ = [
    "DEMO_ADVISORY",
    "PAIR_TIMEOUT",
    "SERVICE_START_TIMEOUT",
    "STEPS",
    "STOP_TIMEOUT",
    "DaemonSpec",
    "Demo",
    "DemoError",
    "DemoReport",
    "ManagedProcess",
    "PartyOutcome",
    "SampleSetup",
    "StepOutcome",
    "child_environment",
    "cli_command",
    "daemon_metrics",
    "reserve_port",
    "run_demo",
    "run_pair",
    "shown",
    "start_daemon",
    "wait_daemon_ready",
    "wait_until",
]
