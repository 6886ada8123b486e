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

from _protogen import SRC, ProtoTarget, main

TARGET = ProtoTarget(
    proto=SRC / "sgx_quote_helper" / "aesm" / "messages.proto",
    renames={"messages_pb2.py": "_messages_pb2.py", "messages_pb2.pyi": "_messages_pb2.pyi"},
    # Classes record the module they were built in (__module__).
    fixes={
        "messages_pb2.py": (
            "'sgx_quote_helper.aesm.messages_pb2'",
            "'sgx_quote_helper.aesm._messages_pb2'",
        )
    },
)

if __name__ == "__main__":
    raise SystemExit(main(TARGET, __doc__.splitlines()[0]))
