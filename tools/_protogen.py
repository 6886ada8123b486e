"""Shared machinery of the two protobuf generators in this directory.

Each schema is compiled relative to ``src/`` so that its descriptor is
registered under its package path, with the ``protoc`` (and gRPC plugin) of
the pinned ``grpcio-tools`` dev dependency, so the output is reproducible.
protoc names its output after the ``.proto`` file; the generated modules are
renamed private (``_NAME_pb2``) and the module names recorded inside them are
fixed to match.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"


@dataclass(frozen=True)
class ProtoTarget:
    proto: Path
    #: protoc's output name -> the checked-in (private) module name
    renames: dict[str, str]
    #: protoc's output name -> (text protoc writes, what the private name makes it)
    fixes: dict[str, tuple[str, str]] = field(default_factory=dict)
    grpc: bool = False

    @property
    def package_dir(self) -> Path:
        return self.proto.parent


def generate(target: ProtoTarget, out_dir: Path) -> list[Path]:
    """Compile the schema into ``out_dir``; return the files written."""
    from grpc_tools import protoc  # type: ignore[import-untyped]  # dev dependency

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        argv = [
            "grpc_tools.protoc",
            f"--proto_path={SRC}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            *([f"--grpc_python_out={tmp}"] if target.grpc else []),
            str(target.proto),
        ]
        if protoc.main(argv) != 0:
            raise SystemExit(f"protoc failed on {target.proto}")
        produced = Path(tmp) / target.proto.relative_to(SRC).parent
        written = []
        for name, private_name in target.renames.items():
            text = (produced / name).read_text(encoding="utf-8")
            if name in target.fixes:
                before, after = target.fixes[name]
                if text.count(before) != 1:
                    raise SystemExit(f"unexpected protoc output in {name}: no single {before}")
                text = text.replace(before, after)
            path = out_dir / private_name
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def stale_files(target: ProtoTarget) -> list[str]:
    """Names of checked-in generated files that differ from a fresh build."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(target, Path(tmp))
        return [
            path.name
            for path in fresh
            if not (target.package_dir / path.name).is_file()
            or (target.package_dir / path.name).read_bytes() != path.read_bytes()
        ]


def main(target: ProtoTarget, description: str, argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out-dir", type=Path, default=target.package_dir)
    parser.add_argument("--check", action="store_true", help="fail if checked-in code is stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(target)
        if stale:
            print(f"stale generated code: {', '.join(stale)}; run {sys.argv[0]}", file=sys.stderr)
            return 1
        return 0
    for path in generate(target, args.out_dir):
        print(path)
    return 0
