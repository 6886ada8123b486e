"""An abusive local tenant: stalled connections and a flood of garbage frames.

``python -m bench._attack --socket PATH --stop T [--stalled N]`` keeps ``N``
connections open that each sent one byte of a request and then nothing
(re-opening any the daemon closes), and between checks floods the daemon with
connections that send a frame header announcing a 4 GiB body. It runs until
``stop`` (a ``time.time()`` value) and prints one JSON document with what it
did. The benchmark runs it beside the quoting clients, as another uid
(``attack_p99_ms``) and as theirs (``attack_same_uid``, the worst case: they
share the uid's quota).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import selectors
import socket
import sys
import time

GARBAGE = b"\xff\xff\xff\xff"
#: Garbage connections between two looks at the stalled ones.
_BURST = 20


def attack(path: str, stop: float, stalled: int) -> dict[str, int]:
    selector = selectors.DefaultSelector()
    opened = reopened = garbage = refused = 0

    def stall() -> None:
        nonlocal opened
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)  # blocking, as a simple script would
            sock.sendall(b"\x06")
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        opened += 1

    try:
        while time.time() < stop:
            while len(selector.get_map()) < stalled and time.time() < stop:
                try:
                    stall()
                except OSError:
                    refused += 1
                    break
            for _ in range(_BURST):
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    try:
                        sock.connect(path)
                        sock.sendall(GARBAGE)
                        garbage += 1
                    except OSError:
                        refused += 1
            for key, _ in selector.select(0):
                held = key.fileobj
                assert isinstance(held, socket.socket)
                with contextlib.suppress(OSError):
                    if held.recv(1):
                        continue  # a reply to one byte? keep it anyway
                selector.unregister(held)
                held.close()
                reopened += 1
    finally:
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        selector.close()
    return {
        "stalled_target": stalled,
        "stalled_opened": opened,
        "stalled_closed_by_daemon": reopened,
        "garbage_frames": garbage,
        "connect_failures": refused,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._attack")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--stop", required=True, type=float, help="time.time() to end")
    parser.add_argument("--stalled", type=int, default=300)
    args = parser.parse_args(argv)
    json.dump(attack(args.socket, args.stop, args.stalled), sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
