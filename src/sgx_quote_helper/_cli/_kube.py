"""``sgx-quote-helper webhook`` and ``device-plugin``: the Kubernetes components (``kube``)."""

from __future__ import annotations

import argparse
import os
import signal

from sgx_quote_helper._cli import _args
from sgx_quote_helper._logging import configure_logging
from sgx_quote_helper._net import host_port
from sgx_quote_helper.errors import UsageError
from sgx_quote_helper.kube import (
    DEFAULT_DEVICE_COUNT,
    DEFAULT_ENCLAVE_RESOURCE,
    DEFAULT_EPC_BYTES,
    DEFAULT_EPC_RESOURCE,
    DEFAULT_HEALTH_INTERVAL,
    DEFAULT_HOST_DIR,
    DEFAULT_KUBELET_DIR,
    DEFAULT_PROVISION_RESOURCE,
    DEFAULT_RETRY_INTERVAL,
    DEFAULT_SECRET_PREFIX,
    ApiConfig,
    DevicePluginConfig,
    DevicePluginService,
    KubeError,
    KubernetesApi,
    ResourceNames,
    TlsFiles,
    serve_webhook,
)

DEFAULT_WEBHOOK_LISTEN = "0.0.0.0:8443"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _add_webhook(subparsers)
    _add_device_plugin(subparsers)


def _add_webhook(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        "--tls-cert", required=True, type=_args.path, metavar="FILE", help="certificate chain (PEM)"
    )
    webhook.add_argument(
        "--tls-key", required=True, type=_args.path, metavar="FILE", help="key (PEM)"
    )
    add_resource_options(webhook, provision=True)
    add_log_options(webhook)
    webhook.set_defaults(func=_webhook)


def _add_device_plugin(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    plugin = subparsers.add_parser(
        "device-plugin",
        help="SIMULATED SGX devices for clusters without SGX (kubelet device plugin)",
        description="Advertise simulated SGX devices (the enclave and provision resources) to "
        "the kubelet through the device plugin API v1beta1. The node's simulated platform comes "
        "from Secret PREFIX+NODE (made by `sim register-nodes`; waits while it does not exist) "
        "or from --platform-dir, and is written to --host-dir; Allocate mounts its files "
        "read-only at /var/run/sgx-sim/platform. Also patches the Node's status.capacity with "
        "the EPC resource, like Intel's EPC hook. Not for real SGX nodes: use Intel's or AKS's "
        "device plugin there. See docs/kube-components.md.",
    )
    plugin.add_argument(
        "--node-name",
        default=os.environ.get("NODE_NAME"),
        help="this node (default $NODE_NAME): names the Secret and the Node to patch",
    )
    plugin.add_argument("--namespace", help="namespace of the platform Secret")
    plugin.add_argument(
        "--secret-prefix",
        default=DEFAULT_SECRET_PREFIX,
        help=f"the Secret is PREFIX+NODE (default {DEFAULT_SECRET_PREFIX})",
    )
    plugin.add_argument(
        "--platform-dir",
        type=_args.path,
        metavar="DIR",
        help="read the platform from this directory instead of a Secret",
    )
    plugin.add_argument(
        "--host-dir",
        type=_args.path,
        default=DEFAULT_HOST_DIR,
        metavar="DIR",
        help=f"host directory the platform files are written to (default {DEFAULT_HOST_DIR})",
    )
    plugin.add_argument(
        "--provision-gid",
        type=_args.integer(0, 2**32 - 2),
        default=0,
        metavar="GID",
        help="group of provision.secret (mode 0640); the quote helper runs with it (default 0)",
    )
    plugin.add_argument(
        "--kubelet-dir",
        type=_args.path,
        default=DEFAULT_KUBELET_DIR,
        metavar="DIR",
        help=f"kubelet device plugin directory (default {DEFAULT_KUBELET_DIR})",
    )
    plugin.add_argument(
        "--enclave-limit",
        type=_args.integer(1, 100_000),
        default=DEFAULT_DEVICE_COUNT,
        metavar="N",
        help=f"enclave devices per node (default {DEFAULT_DEVICE_COUNT}, the pod capacity)",
    )
    plugin.add_argument(
        "--provision-limit",
        type=_args.integer(1, 100_000),
        default=DEFAULT_DEVICE_COUNT,
        metavar="N",
        help=f"provision devices per node (default {DEFAULT_DEVICE_COUNT})",
    )
    plugin.add_argument(
        "--epc-bytes",
        type=_args.integer(0, 2**63 - 1),
        default=DEFAULT_EPC_BYTES,
        metavar="N",
        help=f"EPC capacity patched into the Node status (default {DEFAULT_EPC_BYTES}; "
        "0: do not patch)",
    )
    plugin.add_argument(
        "--health-interval",
        type=_args.seconds(),
        default=DEFAULT_HEALTH_INTERVAL,
        metavar="SECONDS",
        help="how often the backing files and the kubelet socket are checked "
        f"(default {DEFAULT_HEALTH_INTERVAL})",
    )
    plugin.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help="serve Prometheus metrics (devices by health, allocations, registrations) on "
        "http://HOST:PORT/metrics (default: off)",
    )
    plugin.add_argument(
        "--retry-interval",
        type=_args.seconds(),
        default=DEFAULT_RETRY_INTERVAL,
        metavar="SECONDS",
        help="wait between reads of a Secret that does not exist yet "
        f"(default {DEFAULT_RETRY_INTERVAL})",
    )
    add_api_options(plugin)
    add_resource_options(plugin, provision=True)
    add_log_options(plugin)
    plugin.set_defaults(func=_device_plugin)


def add_api_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "Kubernetes API (default: the pod's in-cluster configuration)"
    )
    group.add_argument(
        "--api-server", type=_args.base_url, metavar="URL", help="API server base URL"
    )
    group.add_argument(
        "--api-token-file", type=_args.path, metavar="FILE", help="bearer token file"
    )
    group.add_argument("--api-ca-file", type=_args.path, metavar="FILE", help="CA bundle (PEM)")


def api_from_args(args: argparse.Namespace) -> KubernetesApi:
    return KubernetesApi(
        ApiConfig.in_cluster(
            base_url=args.api_server, token_file=args.api_token_file, ca_file=args.api_ca_file
        )
    )


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


def parse_listen(text: str, flag: str = "--listen") -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` as (host, port)."""
    try:
        return host_port(text)
    except UsageError as exc:
        raise UsageError(
            f"{flag} {text!r}: {exc} (HOST:PORT, e.g. {DEFAULT_WEBHOOK_LISTEN})"
        ) from None


def _webhook(args: argparse.Namespace) -> int:
    host, port = parse_listen(args.listen)
    names = resource_names(args)
    configure_logging(args.log_format, args.log_level)
    serve_webhook(host, port, TlsFiles(cert=args.tls_cert, key=args.tls_key), names)
    return 0


def _device_plugin(args: argparse.Namespace) -> int:
    metrics_address = None
    if args.metrics_listen:
        metrics_address = parse_listen(args.metrics_listen, "--metrics-listen")
    config = DevicePluginConfig(
        node_name=args.node_name,
        namespace=args.namespace,
        secret_prefix=args.secret_prefix,
        platform_dir=args.platform_dir,
        host_dir=args.host_dir,
        provision_gid=args.provision_gid,
        kubelet_dir=args.kubelet_dir,
        names=resource_names(args),
        enclave_limit=args.enclave_limit,
        provision_limit=args.provision_limit,
        epc_bytes=args.epc_bytes,
        health_interval=args.health_interval,
        retry_interval=args.retry_interval,
        metrics_address=metrics_address,
    )
    try:
        config.check()
    except KubeError as exc:
        raise UsageError(str(exc)) from None
    configure_logging(args.log_format, args.log_level)
    # The API reads the Secret; with --platform-dir it is used for the EPC patch when a
    # server was named or the process runs in a pod.
    in_pod = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    api = api_from_args(args) if config.needs_api or args.api_server or in_pod else None
    try:
        service = DevicePluginService(config, api)
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, lambda *_: service.stop()) for sig in handled}
        try:
            service.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        if api is not None:
            api.close()
    return 0
