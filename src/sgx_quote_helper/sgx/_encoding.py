"""Recognise binary input given as raw bytes, hex text or base64 text.

Quotes reach tools in all three forms (files written by Intel's sample apps are
raw; JSON APIs and logs carry hex or base64). The rule, applied in this order:

1. **Raw** if any byte is not printable ASCII or whitespace. Every quote is
   detected as raw this way, since it starts with the little-endian version
   (``03 00`` or ``04 00``).
2. **Hex** if, with ASCII whitespace removed and an optional ``0x`` prefix
   dropped, what remains is an even number of hex digits (either case).
3. **Base64** if, with whitespace removed, what remains is standard (``+/``) or
   URL-safe (``-_``) base64, padded with ``=`` or unpadded.
4. Otherwise the input is refused with a ParseError.

Text that is both valid hex and valid base64 (say ``"AAAA"``) is read as hex;
base64 of real binary data practically never consists of hex digits only.
"""

from __future__ import annotations

import binascii
import enum
import re

from sgx_quote_helper.errors import ParseError
from sgx_quote_helper.sgx._quote import MAX_QUOTE_SIZE

#: The largest input that can hold a quote in any of the encodings: hex doubles
#: the size, and line breaks add a little more. A file reader's cap for a quote.
MAX_ENCODED_QUOTE_SIZE = 3 * MAX_QUOTE_SIZE


class InputEncoding(enum.Enum):
    """How the bytes were given."""

    RAW = "raw"
    HEX = "hex"
    BASE64 = "base64"


_TEXT = re.compile(rb"[\x20-\x7e\t\n\r\x0b\x0c]*")
_WHITESPACE = re.compile(rb"[ \t\n\r\x0b\x0c]+")
_HEX = re.compile(rb"(?:0[xX])?((?:[0-9a-fA-F]{2})+)")
_BASE64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}")
_BASE64_URLSAFE = re.compile(rb"[A-Za-z0-9\-_]+={0,2}")


def decode_binary_input(data: bytes) -> tuple[bytes, InputEncoding]:
    """The bytes ``data`` stands for, and which encoding carried them (rule above)."""
    if not data:
        raise ParseError("the input is empty")
    if not _TEXT.fullmatch(data):
        return bytes(data), InputEncoding.RAW
    text = _WHITESPACE.sub(b"", data)
    if not text:
        raise ParseError("the input contains only whitespace")
    hex_match = _HEX.fullmatch(text)
    if hex_match is not None:
        return bytes.fromhex(hex_match.group(1).decode("ascii")), InputEncoding.HEX
    decoded = _decode_base64(text)
    if decoded is None:
        raise ParseError(
            "the input is text but neither hex (an even number of hex digits) nor base64"
        )
    return decoded, InputEncoding.BASE64


def _decode_base64(text: bytes) -> bytes | None:
    if _BASE64.fullmatch(text) is None:
        if _BASE64_URLSAFE.fullmatch(text) is None:
            return None
        text = text.replace(b"-", b"+").replace(b"_", b"/")
    unpadded = text.rstrip(b"=")
    if len(unpadded) % 4 == 1:
        return None
    padded = unpadded + b"=" * (-len(unpadded) % 4)
    if len(text) != len(unpadded) and text != padded:
        return None  # padding present but wrong
    try:
        decoded = binascii.a2b_base64(padded, strict_mode=True)
    except binascii.Error:
        return None
    return decoded or None


__all__ = ["InputEncoding", "decode_binary_input"]
