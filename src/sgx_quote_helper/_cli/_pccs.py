"""``sgx-quote-helper pccs``: the PCCS v4 collateral service of a simulated manufacturer."""

from __future__ import annotations

import argparse
import ssl

from sgx_quote_helper._cli import _args
from sgx_quote_helper._logging import configure_logging
from sgx_quote_helper._net import host_port
from sgx_quote_helper.errors import UsageError
from sgx_quote_helper.pcs import serve

DEFAULT_LISTEN = "127.0.0.1:8081"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "pccs",
        help="serve PCCS v4 collateral for a simulated manufacturer",
        description="Serve the PCCS v4 API (pckcert, pckcrl, tcb, qe/identity, rootcacrl) "
        "for the simulated manufacturer of a `sim init` directory, plus the DER root CA CRL "
        "its certificates name. Changes made with `sim` commands are served without a "
        "restart; several replicas may serve one directory.",
    )
    parser.add_argument(
        "--sim",
        required=True,
        type=_args.path,
        metavar="DIR",
        help="the `sim init` directory (not DIR/pcs)",
    )
    parser.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"address to listen on (default {DEFAULT_LISTEN}; [::1]:PORT for IPv6)",
    )
    parser.add_argument(
        "--tls-cert", metavar="FILE", type=_args.path_text, help="TLS certificate chain (PEM)"
    )
    parser.add_argument(
        "--tls-key", metavar="FILE", type=_args.path_text, help="TLS private key (PEM)"
    )
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="info"
    )
    parser.set_defaults(func=_pccs)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` as (host, port)."""
    try:
        return host_port(text)
    except UsageError as exc:
        raise UsageError(f"--listen {text!r}: {exc} (HOST:PORT, e.g. 127.0.0.1:8081)") from None


def _check_tls_files(cert: str, key: str) -> None:
    """Load the certificate and key once before listening, to name what is wrong."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except OSError as exc:  # ssl.SSLError is an OSError
        reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
        raise UsageError(
            f"cannot use --tls-cert {cert} with --tls-key {key} ({reason}): give a PEM "
            "certificate chain and the PEM private key that matches it, both readable"
        ) from None


def _pccs(args: argparse.Namespace) -> int:
    host, port = parse_listen(args.listen)
    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("give both --tls-cert and --tls-key, or neither")
    if args.tls_cert is not None:
        _check_tls_files(args.tls_cert, args.tls_key)
    configure_logging(args.log_format, args.log_level)
    try:
        serve(args.sim, host=host, port=port, ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from None
    return 0
