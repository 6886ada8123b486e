"""Every command line the chart renders is one the CLI accepts (flags drift otherwise)."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from typing import Any

import pytest
from deploy_support import SAMPLE_APP, WORKLOADS, Helm, make_helm, pod_spec, preset

from sgx_quote_helper._cli import build_parser


@pytest.fixture(scope="module")
def command_lines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """container -> the sgx-quote-helper argv it runs, over every flavour and option."""
    helm: Helm = make_helm(tmp_path_factory)
    renders = [
        helm.template([preset("sim")], ["sample.enabled=true", "simPccs.nodeSelector=a=b"]),
        helm.template([preset("aks")], ["legacyEpc.enabled=true", "sample.enabled=true"]),
        helm.template(
            [preset("intel")],
            [
                "daemon.pccsUrl=https://pccs.example:8081",
                "daemon.allowGids={5}",
                "webhook.enabled=true",
            ],
        ),
    ]
    found: dict[str, list[str]] = {}
    for docs in renders:
        for doc in docs:
            if doc["kind"] not in WORKLOADS:
                continue
            spec = pod_spec(doc)
            for container in spec.get("initContainers", []) + spec["containers"]:
                for n, argv in enumerate(_argvs(container)):
                    key = f"{doc['kind']}/{doc['metadata']['name']}/{container['name']}/{n}"
                    found[f"{key}/{argv[0]}"] = argv
    return found


def _entry_point_argvs(env: dict[str, str]) -> list[list[str]]:
    """The sample image's entry point (deploy/docker/sample-app.sh): its CLI lines, filled in."""
    values = {"report_data": env["SAMPLE_REPORT_DATA"], "out": "/tmp/quote.bin"}
    argvs = []
    for line in SAMPLE_APP.read_text().splitlines():
        if line.startswith("sgx-quote-helper "):
            line = re.sub(r'"?\$(\w+)"?', lambda m: shlex.quote(values[m.group(1)]), line)
            argvs.append(shlex.split(line.replace('"$@"', ""))[1:])
    return argvs


def _argvs(container: dict[str, Any]) -> list[list[str]]:
    """The CLI invocations of a container: its args, `sgx-quote-helper ...` in a shell line,
    or the sample image's entry point."""
    command = container.get("command")
    env = {item["name"]: item.get("value", "") for item in container.get("env", [])}
    if command is None and "args" not in container:
        return _entry_point_argvs(env)
    if command is None:
        return [list(container["args"])]
    if command[:2] != ["/bin/sh", "-c"]:
        return []  # e.g. chown
    line = re.sub(r'"?\$(\w+)"?', lambda m: shlex.quote(env[m.group(1)]), command[2])
    return [shlex.split(part)[1:] for part in re.findall(r"sgx-quote-helper [^&|;]+", line)]


def test_every_component_runs_the_cli(command_lines: dict[str, list[str]]) -> None:
    commands = {
        argv[0] if argv[0] != "sim" else f"sim {argv[1]}" for argv in command_lines.values()
    }
    assert commands == {
        "serve",
        "pccs",
        "device-plugin",
        "webhook",
        "sim init",
        "sim register-nodes",
        "quote",
        "inspect",
    }


def _choices(parser: argparse.ArgumentParser, path: list[str]) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            if not path:
                return set(action.choices)
            return _choices(action.choices[path[0]], path[1:])
    return set()


def test_the_cli_accepts_each_rendered_command_line(command_lines: dict[str, list[str]]) -> None:
    parser = build_parser()
    missing = []
    for where, argv in command_lines.items():
        top = _choices(parser, [])
        if argv[0] not in top or (argv[0] == "sim" and argv[1] not in _choices(parser, ["sim"])):
            missing.append(" ".join(argv[:2]))
            continue
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors):
            try:
                parser.parse_args(argv)
            except SystemExit:
                pytest.fail(f"{where}: {shlex.join(argv)}\n{errors.getvalue()}")
    if missing:
        pytest.skip(f"not in this build yet (issue 10, package kube): {sorted(set(missing))}")
