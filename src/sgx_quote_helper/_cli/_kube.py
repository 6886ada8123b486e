"""``sgx-quote-helper webhook`` and ``device-plugin``: the Kubernetes components (``kube``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sgx_quote_helper._logging import configure_logging
from sgx_quote_helper.errors import UsageError
from sgx_quote_helper.kube import (
    DEFAULT_ENCLAVE_RESOURCE,
    DEFAULT_EPC_RESOURCE,
    DEFAULT_PROVISION_RESOURCE,
    ResourceNames,
    TlsFiles,
    serve_webhook,
)

DEFAULT_WEBHOOK_LISTEN = "0.0.0.0:8443"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    webhook = subparsers.add_parser(
        "webhook",
        help="the SGX admission webhook (mutates pods that request EPC)",
        description="A mutating admission webhook that behaves as Intel's SGX webhook for the "
        "sgx.intel.com/quote-provider annotation: each container requesting EPC gets the "
        "enclave resource, the container the annotation names also the provision resource, "
        "and with the value `aesmd` every EPC container mounts /var/run/aesmd and gets "
        'SGX_AESM_ADDR="1". Serves POST /mutate (AdmissionReview v1) and GET /healthz over '
        "TLS. See docs/kube-components.md.",
    )
    webhook.add_argument(
        "--listen",
        default=DEFAULT_WEBHOOK_LISTEN,
        metavar="HOST:PORT",
        help=f"address to listen on (default {DEFAULT_WEBHOOK_LISTEN})",
    )
    webhook.add_argument(
        "--tls-cert", required=True, type=Path, metavar="FILE", help="certificate chain (PEM)"
    )
    webhook.add_argument("--tls-key", required=True, type=Path, metavar="FILE", help="key (PEM)")
    add_resource_options(webhook, provision=True)
    add_log_options(webhook)
    webhook.set_defaults(func=_webhook)


def add_resource_options(parser: argparse.ArgumentParser, *, provision: bool) -> None:
    parser.add_argument(
        "--epc-resource",
        default=DEFAULT_EPC_RESOURCE,
        metavar="NAME",
        help=f"EPC extended resource (default {DEFAULT_EPC_RESOURCE})",
    )
    parser.add_argument(
        "--enclave-resource",
        default=DEFAULT_ENCLAVE_RESOURCE,
        metavar="NAME",
        help=f"enclave device resource (default {DEFAULT_ENCLAVE_RESOURCE})",
    )
    if provision:
        parser.add_argument(
            "--provision-resource",
            default=DEFAULT_PROVISION_RESOURCE,
            metavar="NAME",
            help=f"provisioning device resource (default {DEFAULT_PROVISION_RESOURCE})",
        )


def add_log_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="info"
    )


def resource_names(args: argparse.Namespace) -> ResourceNames:
    names = ResourceNames(
        epc=args.epc_resource, enclave=args.enclave_resource, provision=args.provision_resource
    )
    for name in (names.epc, names.enclave, names.provision):
        domain, slash, short = name.partition("/")
        if not slash or not domain or not short or "/" in short:
            raise UsageError(
                f"{name!r} is not an extended resource name (DOMAIN/NAME, e.g. "
                f"{DEFAULT_ENCLAVE_RESOURCE})"
            )
    return names


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` as (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT, e.g. {DEFAULT_WEBHOOK_LISTEN}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def _webhook(args: argparse.Namespace) -> int:
    host, port = parse_listen(args.listen)
    names = resource_names(args)
    configure_logging(args.log_format, args.log_level)
    serve_webhook(host, port, TlsFiles(cert=args.tls_cert, key=args.tls_key), names)
    return 0
