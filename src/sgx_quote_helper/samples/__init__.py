"""Samples built on the public APIs: what an application using the quote helper looks like.

``remote_attestation``: two application enclaves, each its own process and
identity, quote through the quote helper (out of process), verify each other's
quote and identity, derive a session key from attested ECDH keys and exchange
encrypted messages. ``python -m sgx_quote_helper.samples.remote_attestation``
runs one side; ``sgx-quote-helper demo`` runs both. This package sits above
``client`` and ``verify`` (like the CLI); nothing below imports it.
"""

from sgx_quote_helper.samples._channel import MAX_FRAME_SIZE, FramedChannel, encode_frame
from sgx_quote_helper.samples._errors import (
    ChannelError,
    ExchangeError,
    PeerRejectedError,
    RefusedByPeerError,
)
from sgx_quote_helper.samples._manifests import (
    ALICE_MANIFEST,
    BOB_MANIFEST,
    MANIFESTS,
    sample_identity,
    write_manifests,
)
from sgx_quote_helper.samples._party import (
    STEPS,
    Event,
    ExchangeResult,
    PartyConfig,
    PeerExpectation,
    run_party,
)

#: ``python -m`` target of one side of the sample.
REMOTE_ATTESTATION_MODULE = "sgx_quote_helper.samples.remote_attestation"

__all__ = [
    "ALICE_MANIFEST",
    "BOB_MANIFEST",
    "MANIFESTS",
    "MAX_FRAME_SIZE",
    "REMOTE_ATTESTATION_MODULE",
    "STEPS",
    "ChannelError",
    "Event",
    "ExchangeError",
    "ExchangeResult",
    "FramedChannel",
    "PartyConfig",
    "PeerExpectation",
    "PeerRejectedError",
    "RefusedByPeerError",
    "encode_frame",
    "run_party",
    "sample_identity",
    "write_manifests",
]
