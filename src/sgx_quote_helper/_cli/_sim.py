"""``sgx-quote-helper sim``: the simulated manufacturer and its platforms.

Every subcommand takes the ``sim init`` directory ``DIR`` (never ``DIR/pcs``).
Policy changes (recovery, status, revocation, expiry) are edits of
``DIR/pcs/policy.json``; a running ``pccs --sim DIR`` serves them at once.
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any, TypeAlias

from sgx_quote_helper._cli import _args
from sgx_quote_helper._cli._sim_register import add_register_nodes_command
from sgx_quote_helper._cli._sim_report import add_report_command
from sgx_quote_helper._version import PCE_SVN
from sgx_quote_helper.errors import UsageError
from sgx_quote_helper.pcs import (
    CA_CERTIFICATES,
    CA_TYPES,
    COLLATERAL_ARTIFACTS,
    DEFAULT_PCCS_URL,
    DEFAULT_TCB_COMPONENTS,
    MORE_PLATFORMS,
    PLATFORM_TCB_STATUSES,
    QE_TCB_STATUSES,
    Manufacturer,
    RegisteredPlatform,
    TcbPolicy,
    create_simulation,
    crl_base_url,
    provision_platform,
    serial_number_problem,
)

_Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def register(subparsers: _Commands) -> None:
    sim = subparsers.add_parser(
        "sim",
        help="simulated SGX manufacturer and platforms (development and tests only)",
        description="Create and administer a simulated SGX manufacturer (DIR/pcs) and its "
        "platforms (DIR/platform, DIR/platforms/NAME). Nothing simulated chains to Intel's "
        "root: verifiers accept it only when DIR/pcs/root-ca.der is passed to them explicitly.",
    )
    sim.set_defaults(func=lambda args: _usage(sim))
    commands = sim.add_subparsers(dest="sim_command", metavar="SUBCOMMAND")
    _add_init(commands)
    _add_add_platform(commands)
    _add_show(commands)
    _add_tcb_recovery(commands)
    _add_set_tcb_status(commands)
    _add_set_qe_status(commands)
    _add_revoke(commands)
    _add_expire(commands)
    add_report_command(commands)
    add_register_nodes_command(commands)


def _add_init(commands: _Commands) -> None:
    parser = commands.add_parser(
        "init",
        help="new manufacturer in DIR/pcs and one platform in DIR/platform",
        description="Create a simulated manufacturer in DIR/pcs (root CA, PCK Processor and "
        "Platform CAs, TCB signing key, PPID encryption key, master secret, TCB policy) and "
        "provision one platform in DIR/platform. The policy makes this release's QE and PCE "
        "SVNs and the platform's TCB UpToDate.",
    )
    parser.add_argument("dir", type=_args.path, metavar="DIR")
    parser.add_argument(
        "--pccs-url",
        type=_pccs_url,
        default=DEFAULT_PCCS_URL,
        help=f"collateral service URL written into the CRL distribution points "
        f"(default {DEFAULT_PCCS_URL})",
    )
    _platform_options(parser)
    parser.set_defaults(func=_init)


def _add_add_platform(commands: _Commands) -> None:
    parser = commands.add_parser(
        "add-platform",
        help="provision another platform in DIR/platforms/NAME",
        description="Provision another simulated platform, registered with the manufacturer. "
        "It shares the first platform's FMSPC unless --fmspc names another (which gets its "
        "own TCB Info).",
    )
    parser.add_argument("dir", type=_args.path, metavar="DIR")
    parser.add_argument("name", metavar="NAME")
    _platform_options(parser)
    parser.set_defaults(func=_add_platform)


def _add_show(commands: _Commands) -> None:
    parser = commands.add_parser("show", help="platforms, TCB policy and issued collateral")
    parser.add_argument("dir", type=_args.path, metavar="DIR")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=_show)


def _add_tcb_recovery(commands: _Commands) -> None:
    parser = commands.add_parser(
        "tcb-recovery",
        help="publish a TCB recovery (new QE and/or platform TCB level)",
        description="A TCB recovery: a new TCB evaluation data number; the new QE level "
        "(--qe-svn) and/or platform TCB level (--pce-svn, --components) become UpToDate and "
        "the levels they supersede OutOfDate (OutOfDateConfigurationNeeded where "
        "configuration was needed).",
    )
    parser.add_argument("dir", type=_args.path, metavar="DIR")
    parser.add_argument("--qe-svn", type=_args.u16(), help="the QE3 ISVSVN that is now UpToDate")
    parser.add_argument("--pce-svn", type=_args.u16(), help="the PCESVN that is now UpToDate")
    parser.add_argument(
        "--components",
        type=_components,
        help="the 16 TCB component SVNs now UpToDate (comma-separated, zero-padded, or "
        "32 hex digits of CPUSVN)",
    )
    parser.add_argument(
        "--fmspc",
        action="append",
        type=_fmspc,
        help="limit the platform TCB change to this FMSPC (repeatable; default: all)",
    )
    parser.add_argument(
        "--advisory", action="append", default=[], help="advisory ID for superseded levels"
    )
    parser.set_defaults(func=_tcb_recovery)


def _add_set_tcb_status(commands: _Commands) -> None:
    parser = commands.add_parser(
        "set-tcb-status",
        help="set the status of a platform TCB level",
        description="Set the tcbStatus (and advisory IDs) of one platform TCB level in TCB "
        "Info, adding the level if needed. The level defaults to the platform's own TCB "
        f"(its components and PCESVN {PCE_SVN}).",
    )
    parser.add_argument("dir", type=_args.path, metavar="DIR")
    parser.add_argument("--status", required=True, choices=PLATFORM_TCB_STATUSES)
    parser.add_argument("--advisory", action="append", default=[], help="advisory ID")
    parser.add_argument(
        "--platform",
        metavar="PATH_OR_NAME",
        type=_args.path_text,
        help="platform name or directory (default: the first platform)",
    )
    parser.add_argument("--fmspc", type=_fmspc, help="FMSPC of the level (default: platform's)")
    parser.add_argument("--components", type=_components, help="TCB component SVNs")
    parser.add_argument("--pce-svn", type=_args.u16(), default=PCE_SVN, help=f"default {PCE_SVN}")
    parser.set_defaults(func=_set_tcb_status)


def _add_set_qe_status(commands: _Commands) -> None:
    parser = commands.add_parser("set-qe-status", help="set the status of a QE Identity level")
    parser.add_argument("dir", type=_args.path, metavar="DIR")
    parser.add_argument("--qe-svn", type=_args.u16(), required=True, help="the QE3 ISVSVN")
    parser.add_argument("--status", required=True, choices=QE_TCB_STATUSES)
    parser.add_argument("--advisory", action="append", default=[], help="advisory ID")
    parser.set_defaults(func=_set_qe_status)


def _add_revoke(commands: _Commands) -> None:
    parser = commands.add_parser(
        "revoke",
        help="revoke a platform's PCK certificates, one certificate, or a CA",
        description="Put certificates on the CRLs: every PCK certificate issued to a "
        "platform (and any issued to it later), one PCK certificate by serial, or a PCK CA "
        "or the TCB signer on the root CA CRL.",
    )
    parser.add_argument("dir", type=_args.path, metavar="DIR")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--platform",
        metavar="PATH_OR_NAME",
        type=_args.path_text,
        help="platform directory or name",
    )
    target.add_argument(
        "--serial", metavar="HEX", type=_serial, help="PCK certificate serial number (hex)"
    )
    target.add_argument("--ca", choices=CA_CERTIFICATES, help="certificate for the root CA CRL")
    parser.set_defaults(func=_revoke)


def _add_expire(commands: _Commands) -> None:
    parser = commands.add_parser(
        "expire",
        help="issue collateral that is already expired (for tests)",
        description="From now on, issue the named collateral already expired (nextUpdate a "
        "day in the past), so that verifiers fail with an expiry reason. --clear returns to "
        "normal issuance.",
    )
    parser.add_argument("dir", type=_args.path, metavar="DIR")
    parser.add_argument(
        "--artifact",
        action="append",
        choices=COLLATERAL_ARTIFACTS,
        help="what to expire (repeatable; default: all of them)",
    )
    parser.add_argument("--clear", action="store_true", help="issue valid collateral again")
    parser.set_defaults(func=_expire)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _platform_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fmspc", type=_fmspc, help="FMSPC, 12 hex digits (default: random, then shared)"
    )
    parser.add_argument(
        "--components",
        type=_components,
        default=DEFAULT_TCB_COMPONENTS,
        help="TCB component SVNs (comma-separated, zero-padded to 16, or 32 hex digits; "
        "default " + ",".join(str(svn) for svn in DEFAULT_TCB_COMPONENTS[:6]) + ",0...)",
    )
    parser.add_argument(
        "--ca",
        choices=CA_TYPES,
        default="processor",
        help="PCK CA certifying the platform (platform: a multi-package platform whose PCK "
        "certificates carry PlatformInstanceID and Configuration)",
    )
    parser.add_argument(
        "--provisioning-group",
        metavar="GROUP",
        help="group allowed to read the provisioning secret (file mode 0640 instead of 0600)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _pccs_url(text: str) -> str:
    """A base URL (``_args.base_url``) that can go into CRL distribution points."""
    try:
        return crl_base_url(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _serial(text: str) -> int:
    try:
        value = int(text, 16)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not hex") from None
    problem = serial_number_problem(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return value


def _fmspc(text: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not hex") from None
    if len(value) != 6:
        raise argparse.ArgumentTypeError("an FMSPC is 12 hex digits")
    return value


def _components(text: str) -> tuple[int, ...]:
    if "," not in text and len(text) == 32:
        try:
            return tuple(bytes.fromhex(text))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not 32 hex digits") from None
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give comma-separated SVNs (e.g. 11,11,2,2,255,1) or 32 hex digits"
        ) from None
    if not 1 <= len(values) <= 16 or not all(0 <= v <= 255 for v in values):
        raise argparse.ArgumentTypeError("give 1 to 16 SVNs, each 0..255")
    return tuple(values + [0] * (16 - len(values)))


def _gid(group: str | None) -> int | None:
    if group is None:
        return None
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise UsageError(f"no group named {group!r}") from None


def _provision(manufacturer: Manufacturer, name: str, path: Path, args: Any) -> RegisteredPlatform:
    return provision_platform(
        manufacturer,
        name,
        path,
        fmspc=args.fmspc,
        tcb_components=args.components,
        ca_type=args.ca,
        provisioning_gid=_gid(args.provisioning_group),
    )


def _platform_json(manufacturer: Manufacturer, platform: RegisteredPlatform) -> dict[str, Any]:
    document = platform.to_document()
    document["path"] = str(manufacturer.sim_dir / platform.path)
    return document


def _print_platform(manufacturer: Manufacturer, platform: RegisteredPlatform) -> None:
    level = manufacturer.policy().platform_level(platform.fmspc, platform.tcb_components, PCE_SVN)
    status = level.status if level is not None else "no matching TCB level"
    print(
        f"platform {platform.name!r} in {manufacturer.sim_dir / platform.path}: "
        f"FMSPC {platform.fmspc.hex().upper()}, QE-ID {platform.qe_id.hex().upper()}, "
        f"{platform.ca_type} CA, CPUSVN {platform.cpu_svn.hex()}; "
        f"TCB status with PCESVN {PCE_SVN}: {status}"
    )


def _directory_warnings(path: Path) -> list[str]:
    """What is wrong with an existing ``sim init`` DIR that we do not change.

    DIR's mode and owner are its creator's choice; a new DIR gets 0755 whatever
    the umask. But a DIR someone else owns can be swapped under us (its owner
    can rename our files), and a DIR others cannot traverse hides
    ``platform/enclave.secret`` from the applications that need it.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return []
    if not stat.S_ISDIR(info.st_mode):
        return []  # Manufacturer.create says what is wrong with it
    warnings = []
    if info.st_uid != os.geteuid():
        warnings.append(
            f"{path} is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()}): "
            "its owner can replace the manufacturer's keys and the platform secrets; use a "
            "directory you own"
        )
    if info.st_mode & 0o022:
        warnings.append(
            f"{path} is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o}): "
            f"they can replace the files in it; chmod 755 {path}"
        )
    if not info.st_mode & 0o001:
        warnings.append(
            f"{path} is not searchable by others (mode {stat.S_IMODE(info.st_mode):04o}): "
            "applications of other users cannot reach platform/enclave.secret; "
            f"chmod 755 {path} if they should"
        )
    return warnings


def _init(args: argparse.Namespace) -> int:
    for warning in _directory_warnings(args.dir):
        print(f"sgx-quote-helper: warning: {warning}", file=sys.stderr)
    gid = _gid(args.provisioning_group)
    simulation = create_simulation(
        args.dir,
        pccs_url=args.pccs_url,
        fmspc=args.fmspc,
        tcb_components=args.components,
        ca_type=args.ca,
        provisioning_gid=gid,
    )
    manufacturer, platform = simulation.manufacturer, simulation.platform
    if args.json:
        print(
            json.dumps(
                {
                    "sim_dir": str(args.dir),
                    "root_ca": str(manufacturer.root_ca_path),
                    "pccs_url": manufacturer.pccs_url,
                    "platform": _platform_json(manufacturer, platform),
                },
                indent=2,
            )
        )
        return 0
    print(f"simulated manufacturer in {manufacturer.pcs_dir} (NOT Intel; for tests only)")
    print(f"trust anchor for verifiers: {manufacturer.root_ca_path}")
    print(f"CRL distribution points name {manufacturer.pccs_url}")
    _print_platform(manufacturer, platform)
    print(f"serve its collateral with: sgx-quote-helper pccs --sim {args.dir}")
    return 0


def _add_platform(args: argparse.Namespace) -> int:
    manufacturer = Manufacturer.load(args.dir)
    if "/" in args.name or args.name in ("", ".", ".."):
        raise UsageError(f"{args.name!r} is not a usable platform name")
    platform = _provision(manufacturer, args.name, args.dir / MORE_PLATFORMS / args.name, args)
    if args.json:
        print(json.dumps(_platform_json(manufacturer, platform), indent=2))
    else:
        _print_platform(manufacturer, platform)
    return 0


def _policy_summary(policy: TcbPolicy) -> list[str]:
    lines = [f"TCB evaluation data number {policy.tcb_evaluation_data_number}"]
    qe = ", ".join(f"{lv.isv_svn}:{lv.status}" for lv in policy.qe_levels)
    lines.append(f"QE Identity levels (ISVSVN:status): {qe}")
    for fmspc, entry in policy.fmspcs.items():
        lines.append(f"TCB Info FMSPC {fmspc.hex().upper()} (PCE-ID {entry.pce_id.hex().upper()}):")
        for level in entry.levels:
            advisories = f" {','.join(level.advisory_ids)}" if level.advisory_ids else ""
            lines.append(
                f"  {','.join(str(c) for c in level.components)} / PCESVN {level.pce_svn}: "
                f"{level.status}{advisories}"
            )
    revocations = policy.revocations
    revoked = len(revocations.platforms) + len(revocations.pck_certificates)
    revoked += len(revocations.ca_certificates)
    if revoked:
        lines.append(
            f"revoked: {len(revocations.platforms)} platform(s), "
            f"{len(revocations.pck_certificates)} PCK certificate(s), "
            f"CAs {[r.subject for r in revocations.ca_certificates]}"
        )
    if policy.validity.expired:
        lines.append(f"issued EXPIRED: {', '.join(sorted(policy.validity.expired))}")
    return lines


def _report_policy(policy: TcbPolicy) -> int:
    print("\n".join(_policy_summary(policy)))
    return 0


def _show(args: argparse.Namespace) -> int:
    manufacturer = Manufacturer.load(args.dir)
    policy = manufacturer.policy()
    if args.json:
        print(
            json.dumps(
                {
                    "sim_dir": str(args.dir),
                    "pccs_url": manufacturer.pccs_url,
                    "root_ca": str(manufacturer.root_ca_path),
                    "platforms": [
                        _platform_json(manufacturer, p) for p in manufacturer.platforms()
                    ],
                    "policy": json.loads(policy.to_json()),
                },
                indent=2,
            )
        )
        return 0
    print(f"simulated manufacturer in {manufacturer.pcs_dir}, CDPs at {manufacturer.pccs_url}")
    for platform in manufacturer.platforms():
        _print_platform(manufacturer, platform)
    return _report_policy(policy)


def _tcb_recovery(args: argparse.Namespace) -> int:
    manufacturer = Manufacturer.load(args.dir)
    if args.qe_svn is None and args.pce_svn is None and args.components is None:
        raise UsageError("give --qe-svn, --pce-svn and/or --components for the recovered TCB")
    policy = manufacturer.tcb_recovery(
        qe_svn=args.qe_svn,
        pce_svn=args.pce_svn,
        tcb_components=args.components,
        fmspcs=args.fmspc,
        advisory_ids=args.advisory,
    )
    return _report_policy(policy)


def _set_tcb_status(args: argparse.Namespace) -> int:
    manufacturer = Manufacturer.load(args.dir)
    platform = manufacturer.find_platform(args.platform) if args.platform else None
    policy = manufacturer.set_platform_tcb_status(
        args.status,
        platform=platform,
        fmspc=args.fmspc,
        tcb_components=args.components,
        pce_svn=args.pce_svn,
        advisory_ids=args.advisory,
    )
    return _report_policy(policy)


def _set_qe_status(args: argparse.Namespace) -> int:
    manufacturer = Manufacturer.load(args.dir)
    policy = manufacturer.set_qe_tcb_status(
        args.status, isv_svn=args.qe_svn, advisory_ids=args.advisory
    )
    return _report_policy(policy)


def _revoke(args: argparse.Namespace) -> int:
    manufacturer = Manufacturer.load(args.dir)
    if args.platform is not None:
        platform = manufacturer.find_platform(args.platform)
        manufacturer.revoke_platform(platform)
        serials = [f"{c.serial_number:X}" for c in manufacturer.issued_pck_certificates(platform)]
        print(
            f"revoked platform {platform.name!r}: {len(serials)} PCK certificate(s) issued so "
            "far, and any issued later, are on its PCK CA's CRL"
        )
    elif args.serial is not None:
        manufacturer.revoke_serial(args.serial)
        print(f"revoked PCK certificate serial {args.serial:X}")
    else:
        manufacturer.revoke_ca(args.ca)
        print(f"revoked the {args.ca} certificate on the root CA CRL")
    return 0


def _expire(args: argparse.Namespace) -> int:
    manufacturer = Manufacturer.load(args.dir)
    if args.clear and args.artifact:
        raise UsageError("give --artifact or --clear, not both")
    artifacts = [] if args.clear else (args.artifact or list(COLLATERAL_ARTIFACTS))
    policy = manufacturer.set_expired(artifacts)
    if artifacts:
        print(f"issuing expired: {', '.join(sorted(policy.validity.expired))}")
    else:
        print("issuing valid collateral again")
    return 0
