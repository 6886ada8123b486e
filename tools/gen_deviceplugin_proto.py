"""Regenerate the checked-in protobuf and gRPC code for the kubelet device plugin API.

    python tools/gen_deviceplugin_proto.py              # rewrite the checked-in files
    python tools/gen_deviceplugin_proto.py --check      # exit 1 if they are stale
    python tools/gen_deviceplugin_proto.py --out-dir D  # write into D instead

The schema is ``src/sgx_quote_helper/kube/deviceplugin.proto`` (``package
v1beta1``); the output is ``_deviceplugin_pb2.py``, ``_deviceplugin_pb2.pyi``
and ``_deviceplugin_pb2_grpc.py`` beside it (private modules: no generated type
leaves the ``kube`` package). ``protoc`` and the gRPC plugin are the ones bundled
with the pinned ``grpcio-tools`` dev dependency, so the output is reproducible.
The proto is compiled relative to ``src/`` (as the AESM schema is) so that its
descriptor is registered as ``sgx_quote_helper/kube/deviceplugin.proto``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PROTO = SRC / "sgx_quote_helper" / "kube" / "deviceplugin.proto"
PACKAGE_DIR = PROTO.parent

_RENAMES = {
    "deviceplugin_pb2.py": "_deviceplugin_pb2.py",
    "deviceplugin_pb2.pyi": "_deviceplugin_pb2.pyi",
    "deviceplugin_pb2_grpc.py": "_deviceplugin_pb2_grpc.py",
}
# (file, text protoc writes, what the private module name makes it)
_FIXES = {
    "deviceplugin_pb2.py": (
        "'sgx_quote_helper.kube.deviceplugin_pb2'",
        "'sgx_quote_helper.kube._deviceplugin_pb2'",
    ),
    "deviceplugin_pb2_grpc.py": (
        "from sgx_quote_helper.kube import deviceplugin_pb2 as",
        "from sgx_quote_helper.kube import _deviceplugin_pb2 as",
    ),
}


def generate(out_dir: Path) -> list[Path]:
    """Compile the schema into ``out_dir``; return the files written."""
    from grpc_tools import protoc  # type: ignore[import-untyped]  # dev dependency

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        argv = [
            "grpc_tools.protoc",
            f"--proto_path={SRC}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            str(PROTO),
        ]
        if protoc.main(argv) != 0:
            raise SystemExit(f"protoc failed on {PROTO}")
        produced = Path(tmp) / PROTO.relative_to(SRC).parent
        written = []
        for name, target in _RENAMES.items():
            text = (produced / name).read_text(encoding="utf-8")
            if name in _FIXES:
                before, after = _FIXES[name]
                if text.count(before) != 1:
                    raise SystemExit(f"unexpected protoc output in {name}: no single {before}")
                text = text.replace(before, after)
            path = out_dir / target
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def stale_files() -> list[str]:
    """Names of checked-in generated files that differ from a fresh build."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        return [
            path.name
            for path in fresh
            if not (PACKAGE_DIR / path.name).is_file()
            or (PACKAGE_DIR / path.name).read_bytes() != path.read_bytes()
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=PACKAGE_DIR)
    parser.add_argument("--check", action="store_true", help="fail if checked-in code is stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        if stale:
            print(f"stale generated code: {', '.join(stale)}; run {sys.argv[0]}", file=sys.stderr)
            return 1
        return 0
    for path in generate(args.out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
