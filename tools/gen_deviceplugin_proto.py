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

from _protogen import SRC, ProtoTarget, main

TARGET = ProtoTarget(
    proto=SRC / "sgx_quote_helper" / "kube" / "deviceplugin.proto",
    renames={
        "deviceplugin_pb2.py": "_deviceplugin_pb2.py",
        "deviceplugin_pb2.pyi": "_deviceplugin_pb2.pyi",
        "deviceplugin_pb2_grpc.py": "_deviceplugin_pb2_grpc.py",
    },
    fixes={
        "deviceplugin_pb2.py": (
            "'sgx_quote_helper.kube.deviceplugin_pb2'",
            "'sgx_quote_helper.kube._deviceplugin_pb2'",
        ),
        "deviceplugin_pb2_grpc.py": (
            "from sgx_quote_helper.kube import deviceplugin_pb2 as",
            "from sgx_quote_helper.kube import _deviceplugin_pb2 as",
        ),
    },
    grpc=True,
)

if __name__ == "__main__":
    raise SystemExit(main(TARGET, __doc__.splitlines()[0]))
