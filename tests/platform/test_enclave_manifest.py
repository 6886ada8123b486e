"""Enclave identities: the TOML manifest, derived measurements, built-in enclaves."""

from __future__ import annotations

import hashlib
import io
import os
import re
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, x25519
from cryptography.utils import CryptographyDeprecationWarning

from sgx_quote_helper._fs import InputTooLargeError
from sgx_quote_helper.errors import UsageError
from sgx_quote_helper.platform import (
    ManifestError,
    _enclave,
    demo_app_identity,
    load_manifest,
    measure_enclave,
    mrsigner_from_seed,
    parse_manifest,
    pce_identity,
    quoting_enclave_identity,
)
from sgx_quote_helper.platform._enclave import MAX_MANIFEST_SIZE, CodeMeasurement
from sgx_quote_helper.sgx import QE3_MRSIGNER, QE3_PROD_ID, AttributeFlags, Attributes

MANIFEST = """
name = "hello"
code = { text = "print('hello from an enclave')" }
signer = { seed = "my signer" }
isv_prod_id = 7
isv_svn = 3
config_svn = 2
misc_select = 0
attributes = ["MODE64BIT"]
xfrm = 3
"""


def test_manifest_fields() -> None:
    identity = parse_manifest(MANIFEST, base_dir=Path())
    assert identity.name == "hello"
    assert identity.isv_prod_id == 7
    assert identity.isv_svn == 3
    assert identity.config_svn == 2
    # INIT is always set; DEBUG only when asked for.
    assert identity.attributes == Attributes(flags=0x05, xfrm=3)
    assert identity.mr_signer == mrsigner_from_seed("my signer")
    expected = measure_enclave(b"print('hello from an enclave')", Attributes(flags=0x05, xfrm=3), 0)
    assert identity.mr_enclave == expected
    assert identity.target_info().mr_enclave == expected


def test_mrenclave_is_derived_from_code_attributes_and_miscselect() -> None:
    base = parse_manifest(MANIFEST, base_dir=Path()).mr_enclave
    other_code = MANIFEST.replace("hello from", "goodbye from")
    debug = MANIFEST.replace('["MODE64BIT"]', '["MODE64BIT", "DEBUG"]')
    misc = MANIFEST.replace("misc_select = 0", "misc_select = 1")
    xfrm = MANIFEST.replace("xfrm = 3", "xfrm = 231")
    values = {base} | {
        parse_manifest(text, base_dir=Path()).mr_enclave for text in (other_code, debug, misc, xfrm)
    }
    assert len(values) == 5
    # ...but not from the cosmetic name or the SVNs.
    renamed = MANIFEST.replace('name = "hello"', 'name = "other"').replace(
        "isv_svn = 3", "isv_svn = 4"
    )
    assert parse_manifest(renamed, base_dir=Path()).mr_enclave == base


def test_measurement_encoding_is_unambiguous() -> None:
    attrs = Attributes(flags=5, xfrm=3)
    assert measure_enclave(b"ab", attrs, 0) != measure_enclave(b"a", attrs, 0)
    assert len(measure_enclave(b"", attrs, 0)) == 32


def test_code_file_relative_to_manifest(tmp_path: Path) -> None:
    (tmp_path / "enclave.bin").write_bytes(b"\x7fELF...")
    manifest = tmp_path / "app.toml"
    manifest.write_text(
        MANIFEST.replace(
            "code = { text = \"print('hello from an enclave')\" }",
            'code = { file = "enclave.bin" }',
        )
    )
    identity = load_manifest(manifest)
    assert identity.mr_enclave == measure_enclave(b"\x7fELF...", identity.attributes, 0)


def _pkcs8(key: Any) -> bytes:
    """A private key as unencrypted PKCS#8 PEM."""
    return bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _signed_by(directory: Path, pem: bytes) -> Path:
    """The example manifest, signed by the key in ``pem`` (as ``signer.pem`` beside it)."""
    (directory / "signer.pem").write_bytes(pem)
    manifest = directory / "app.toml"
    manifest.write_text(MANIFEST.replace('{ seed = "my signer" }', '{ key = "signer.pem" }'))
    return manifest


def test_rsa_signer_key_gives_sgx_style_mrsigner(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=3, key_size=3072)
    manifest = _signed_by(tmp_path, _pkcs8(key))
    modulus_le = key.public_key().public_numbers().n.to_bytes(384, "little")
    assert load_manifest(manifest).mr_signer == hashlib.sha256(modulus_le).digest()


def test_ec_public_signer_key(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    (tmp_path / "signer.pub").write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    manifest = tmp_path / "app.toml"
    manifest.write_text(MANIFEST.replace('{ seed = "my signer" }', '{ key = "signer.pub" }'))
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert load_manifest(manifest).mr_signer == hashlib.sha256(point[1:]).digest()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("isv_svn = 3", "isv_svn = 70000"), "isv_svn"),
        (("isv_svn = 3", 'isv_svn = "3"'), "isv_svn"),
        (('["MODE64BIT"]', '["TURBO"]'), "unknown attribute 'TURBO'"),
        (('["MODE64BIT"]', '"MODE64BIT"'), "list of flag names"),
        (('name = "hello"', 'name = "hello"\nmrenclave = "00"'), "unknown key"),
        (('name = "hello"', 'name = ""'), "name"),
        (('{ seed = "my signer" }', '"my signer"'), "signer"),
        (('{ seed = "my signer" }', '{ seed = "a", key = "b" }'), "exactly one"),
        (("code = {", 'code = { file = "x", '), "exactly one"),
        (("misc_select = 0", "misc_select = -1"), "misc_select"),
        (("xfrm = 3", "xfrm = true"), "xfrm"),
    ],
)
def test_malformed_manifests_name_the_problem(change: tuple[str, str], message: str) -> None:
    text = MANIFEST.replace(*change)
    assert text != MANIFEST
    with pytest.raises(ManifestError, match=message):
        parse_manifest(text, base_dir=Path())


def test_unreadable_files_are_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read enclave manifest"):
        load_manifest(tmp_path / "missing.toml")
    manifest = tmp_path / "app.toml"
    manifest.write_text(MANIFEST.replace('{ seed = "my signer" }', '{ key = "missing.pem" }'))
    with pytest.raises(ManifestError, match="signer key"):
        load_manifest(manifest)
    (tmp_path / "bad.pem").write_text("not a key")
    manifest.write_text(MANIFEST.replace('{ seed = "my signer" }', '{ key = "bad.pem" }'))
    with pytest.raises(ManifestError, match="not a PEM key"):
        load_manifest(manifest)
    with pytest.raises(ManifestError, match="TOML"):
        parse_manifest("name = ", base_dir=tmp_path)


def test_quoting_enclave_identity_matches_intel_qe3_values() -> None:
    qe = quoting_enclave_identity(10)
    assert qe.mr_signer == QE3_MRSIGNER
    assert qe.isv_prod_id == QE3_PROD_ID == 1
    assert qe.isv_svn == 10
    assert qe.attributes.flags == 0x15  # INIT | MODE64BIT | PROVISION_KEY
    assert not qe.attributes.debug
    assert qe.misc_select == 0
    # A new QE release is a new MRENCLAVE with the same signer.
    assert quoting_enclave_identity(11).mr_enclave != qe.mr_enclave


def test_pce_and_demo_app_identities() -> None:
    pce = pce_identity(13)
    assert pce.isv_prod_id == 0
    assert pce.isv_svn == 13
    assert pce.has(AttributeFlags.PROVISION_KEY)
    app = demo_app_identity()
    assert not app.attributes.debug
    assert not app.has(AttributeFlags.PROVISION_KEY)
    assert app.has(AttributeFlags.INIT)
    assert app.has(AttributeFlags.MODE64BIT)
    assert app.mr_signer != QE3_MRSIGNER


def _dsa_key() -> Any:
    # cryptography deprecates DSA: making the test's key warns (the loader must not).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        from cryptography.hazmat.primitives.asymmetric import dsa

        return dsa.generate_private_key(2048)


@pytest.mark.parametrize("part", ["private", "public"])
def test_a_dsa_signer_key_is_refused_without_a_deprecation_warning(
    tmp_path: Path, part: str
) -> None:
    key = _dsa_key()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        if part == "private":
            pem = _pkcs8(key)
        else:
            pem = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
    manifest = _signed_by(tmp_path, pem)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ManifestError, match=r"is a DSA key; use an RSA .*, EC or EdDSA key"):
            load_manifest(manifest)
    assert [str(warning.message) for warning in caught] == []


def test_a_key_agreement_key_is_refused_as_a_signer(tmp_path: Path) -> None:
    manifest = _signed_by(tmp_path, _pkcs8(x25519.X25519PrivateKey.generate()))
    with pytest.raises(ManifestError, match="is an X25519 key"):
        load_manifest(manifest)


def _with_code_file(manifest: Path, name: str) -> Path:
    manifest.write_text(
        MANIFEST.replace(
            "code = { text = \"print('hello from an enclave')\" }", f'code = {{ file = "{name}" }}'
        )
    )
    return manifest


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"name = " + b"[" * 5000 + b"]" * 5000 + b"\n", "arrays or tables nested too deeply"),
        (b'name = "\xff"\n', "'utf-8' codec can't decode byte 0xff"),
    ],
)
def test_nested_or_non_utf8_manifests_are_not_valid_toml(
    tmp_path: Path, content: bytes, message: str
) -> None:
    manifest = tmp_path / "app.toml"
    manifest.write_bytes(content)
    with pytest.raises(ManifestError, match=re.escape(f"{manifest}: not valid TOML: {message}")):
        load_manifest(manifest)


def test_manifest_and_signer_key_are_read_only_up_to_their_caps(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"#" * MAX_MANIFEST_SIZE + b"\n")
    for path in (big, Path("/dev/zero")):
        with pytest.raises(InputTooLargeError, match=re.escape(f"{path} is larger than 1 MiB")):
            load_manifest(path)
    manifest = tmp_path / "app.toml"
    for key in (big, Path("/dev/zero")):
        manifest.write_text(MANIFEST.replace('{ seed = "my signer" }', f'{{ key = "{key}" }}'))
        with pytest.raises(InputTooLargeError, match="the most accepted for a PEM signer key"):
            load_manifest(manifest)


def test_code_file_is_measured_without_loading_it_whole(tmp_path: Path) -> None:
    size = 32 * 1024 * 1024
    with (tmp_path / "enclave.bin").open("wb") as handle:
        handle.truncate(size)  # sparse: no disk space
    manifest = _with_code_file(tmp_path / "app.toml", "enclave.bin")
    tracemalloc.start()
    try:
        identity = load_manifest(manifest)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < size // 8
    assert identity.mr_enclave == measure_enclave(bytes(size), identity.attributes, 0)


def test_code_file_cap_and_special_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "enclave.bin").write_bytes(b"x" * 100)
    manifest = _with_code_file(tmp_path / "app.toml", "enclave.bin")
    monkeypatch.setattr(_enclave, "MAX_CODE_FILE_SIZE", 99)
    with pytest.raises(InputTooLargeError, match=r"larger than 99 bytes, .* an enclave's code"):
        load_manifest(manifest)
    monkeypatch.setattr(_enclave, "MAX_CODE_FILE_SIZE", 100)
    assert load_manifest(manifest).mr_enclave == measure_enclave(
        b"x" * 100, Attributes(flags=0x05, xfrm=3), 0
    )
    # Its size must be known before it is hashed: no devices or FIFOs (which are
    # refused at once, without waiting for a writer).
    os.mkfifo(tmp_path / "fifo")
    for special in ("/dev/zero", "fifo"):
        with pytest.raises(
            UsageError, match="is not a regular file; an enclave's code must be one"
        ):
            load_manifest(_with_code_file(manifest, special))


def test_a_code_file_that_changes_while_read_is_refused() -> None:
    assert CodeMeasurement.of_file(io.BytesIO(b"abcd"), 3) is None  # grew
    assert CodeMeasurement.of_file(io.BytesIO(b"ab"), 3) is None  # shrank
    measured = CodeMeasurement.of_file(io.BytesIO(b"abc"), 3)
    assert measured is not None
    attributes = Attributes(flags=0x05, xfrm=3)
    assert measure_enclave(measured, attributes, 0) == measure_enclave(b"abc", attributes, 0)
