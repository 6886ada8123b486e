"""``sgx-quote-helper sim register-nodes``: a simulated platform and a Secret per Node."""

from __future__ import annotations

import argparse
import json

from sgx_quote_helper._cli import _args
from sgx_quote_helper._cli._kube import add_api_options, api_from_args
from sgx_quote_helper.kube import DEFAULT_SECRET_PREFIX, register_nodes


def add_register_nodes_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    parser = commands.add_parser(
        "register-nodes",
        help="one simulated platform per Kubernetes Node, delivered as a Secret",
        description="For each Node (matching --node-selector) without a platform, provision one "
        "named after the node (as `sim add-platform DIR NODE`), then create or update Secret "
        "PREFIX+NODE in NAMESPACE with platform.json, enclave.secret and provision.secret for "
        "the node's device plugin. Idempotent (the chart runs it as a post-install/post-upgrade "
        "hook). RBAC: list nodes; get/create/update secrets in NAMESPACE.",
    )
    parser.add_argument("dir", type=_args.path, metavar="DIR", help="the `sim init` directory")
    parser.add_argument("--namespace", required=True, help="namespace of the Secrets")
    parser.add_argument("--node-selector", metavar="SELECTOR", help="label selector of the Nodes")
    parser.add_argument(
        "--secret-prefix",
        default=DEFAULT_SECRET_PREFIX,
        help=f"Secret name prefix (default {DEFAULT_SECRET_PREFIX})",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_api_options(parser)
    parser.set_defaults(func=_register_nodes)


def _register_nodes(args: argparse.Namespace) -> int:
    done = []
    with api_from_args(args) as api:
        for outcome in register_nodes(
            args.dir,
            api,
            args.namespace,
            node_selector=args.node_selector,
            secret_prefix=args.secret_prefix,
        ):
            done.append(outcome)
            if not args.json:
                platform = "new platform" if outcome.platform_created else "platform"
                print(
                    f"node {outcome.node}: {platform} {outcome.platform}; secret "
                    f"{args.namespace}/{outcome.secret} {outcome.secret_action}"
                )
    if args.json:
        print(json.dumps([vars(outcome) for outcome in done], indent=2))
    elif not done:
        print("no nodes matched; nothing to register")
    return 0
