"""Run a check as ``nobody``: a forked child with uid/gid 65534, for permission tests.

A child, because root ignores file and socket permissions (the test could not
fail as root) and ``nobody`` cannot exec the venv's python under ``/root``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

NOBODY = 65534


def run_as_nobody(
    task: Callable[[], Mapping[str, Any]], *, groups: Sequence[int] = ()
) -> dict[str, Any]:
    """Run ``task`` in a forked child as uid/gid 65534 with ``groups``; return its JSON."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        status = 1
        payload: Mapping[str, Any]
        try:
            os.close(read_end)
            os.setgroups(list(groups))
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            payload = task()
            status = 0
        except BaseException as exc:
            payload = {"child_error": repr(exc)}
        finally:
            try:
                os.write(write_end, json.dumps(payload).encode())
            finally:
                os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        output = pipe.read()
    _, wait_status = os.waitpid(pid, 0)
    result: dict[str, Any] = json.loads(output)
    assert os.waitstatus_to_exitcode(wait_status) == 0, result
    return result
