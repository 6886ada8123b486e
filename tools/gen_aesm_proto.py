"""Regenerate the checked-in protobuf code for the AESM wire schema.

    python tools/gen_aesm_proto.py              # rewrite the checked-in files
    python tools/gen_aesm_proto.py --check      # exit 1 if they are stale
    python tools/gen_aesm_proto.py --out-dir D  # write into D instead

The schema is ``src/sgx_quote_helper/aesm/messages.proto``; the output is
``_messages_pb2.py`` and ``_messages_pb2.pyi`` beside it (private modules: no
generated type leaves the ``aesm`` package). ``protoc`` is the one bundled with
the pinned ``grpcio-tools`` dev dependency, so the output is reproducible.

The proto is compiled relative to ``src/`` so that the descriptor registered in
protobuf's global pool is named ``sgx_quote_helper/aesm/messages.proto``, not a
bare ``messages.proto`` that another library could also register.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PROTO = SRC / "sgx_quote_helper" / "aesm" / "messages.proto"
PACKAGE_DIR = PROTO.parent

# protoc names its output after the .proto file; the package keeps it private.
_RENAMES = {
    "messages_pb2.py": "_messages_pb2.py",
    "messages_pb2.pyi": "_messages_pb2.pyi",
}
_MODULE_FROM = "'sgx_quote_helper.aesm.messages_pb2'"
_MODULE_TO = "'sgx_quote_helper.aesm._messages_pb2'"


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
            str(PROTO),
        ]
        if protoc.main(argv) != 0:
            raise SystemExit(f"protoc failed on {PROTO}")
        produced = Path(tmp) / PROTO.relative_to(SRC).parent
        written = []
        for name, target in _RENAMES.items():
            text = (produced / name).read_text(encoding="utf-8")
            if name.endswith(".py"):
                # Classes record the module they were built in (__module__).
                if text.count(_MODULE_FROM) != 1:
                    raise SystemExit(f"unexpected protoc output: no single {_MODULE_FROM}")
                text = text.replace(_MODULE_FROM, _MODULE_TO)
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
