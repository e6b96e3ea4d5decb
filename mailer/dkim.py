"""DKIM signatures (dkimpy): relaxed/relaxed, rsa-sha256 or ed25519-sha256.

``MAILER_DKIM_KEY_FILE`` is a PEM private key; its type picks the algorithm:
RSA (PKCS#1 "RSA PRIVATE KEY" or PKCS#8 "PRIVATE KEY") signs rsa-sha256,
an Ed25519 PKCS#8 key ("PRIVATE KEY", as ``openssl genpkey -algorithm
ed25519`` writes it) signs ed25519-sha256 (RFC 8463). Each reader's copy is
signed after its final serialisation, and List-Unsubscribe and
List-Unsubscribe-Post are in h=, as RFC 8058 asks. Not in ``delivery/``: the
configuration loads and tries the key at start, and must not import a stage.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dkim

# The headers signed; From twice so that no second From can be added unseen.
SIGNED_HEADERS = (
    b"from", b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
    b"list-id", b"list-unsubscribe", b"list-unsubscribe-post", b"list-archive",
)
# DER prefix of an Ed25519 PKCS#8 private key (RFC 8410): the seed follows.
_ED25519_PKCS8 = bytes.fromhex("302e020100300506032b657004220420")
_PEM = re.compile(rb"-----BEGIN ([A-Z ]+)-----(.*?)-----END \1-----", re.S)


class DkimError(ValueError):
    """The key file cannot be used for DKIM."""


class DkimSigner:
    """Signs whole messages with one key for one domain and selector."""

    def __init__(self, domain: str, selector: str, pem: bytes) -> None:
        """Read the key; raise DkimError when it is neither RSA nor Ed25519."""
        self.domain = domain.encode("ascii")
        self.selector = selector.encode("ascii")
        match = _PEM.search(pem)
        if match is None:
            raise DkimError("no PEM private key in the DKIM key file")
        label, body = match.group(1), base64.b64decode(b"".join(match.group(2).split()))
        if label == b"PRIVATE KEY" and body.startswith(_ED25519_PKCS8) and len(body) == len(_ED25519_PKCS8) + 32:
            self.algorithm = b"ed25519-sha256"
            # dkimpy takes an Ed25519 key as its base64 seed.
            self.key = base64.b64encode(body[len(_ED25519_PKCS8) :])
        elif label in (b"RSA PRIVATE KEY", b"PRIVATE KEY"):
            self.algorithm = b"rsa-sha256"
            self.key = pem
            try:
                dkim.crypto.parse_pem_private_key(pem)
            except dkim.crypto.UnparsableKeyError as exc:
                raise DkimError(f"unreadable RSA key: {exc}") from None
        else:
            raise DkimError(f"unsupported DKIM key type {label.decode()!r}")

    def signature(self, message: bytes) -> bytes:
        """The ``DKIM-Signature:`` header (CRLF-ended) for ``message`` as it will be sent."""
        header: bytes = dkim.sign(
            message, self.selector, self.domain, self.key,
            canonicalize=(b"relaxed", b"relaxed"), signature_algorithm=self.algorithm,
            include_headers=[h for h in SIGNED_HEADERS if _has_header(message, h) or h == b"from"],
            linesep=b"\r\n",
        )
        return header

    def sign(self, message: bytes) -> bytes:
        """``message`` with its signature on top."""
        return self.signature(message) + message


def _has_header(message: bytes, name: bytes) -> bool:
    """Whether the header section of ``message`` has a ``name`` field (lower-case)."""
    head = message.split(b"\r\n\r\n", 1)[0].lower()
    return head.startswith(name + b":") or (b"\r\n" + name + b":") in head


def signer_from_config(config: Mapping[str, Any]) -> DkimSigner | None:
    """The signer of ``MAILER_DKIM_*``, or None when DKIM is not configured."""
    domain, selector, key_file = (config[k] for k in ("DKIM_DOMAIN", "DKIM_SELECTOR", "DKIM_KEY_FILE"))
    if not (domain and selector and key_file):
        return None
    try:
        pem = Path(key_file).read_bytes()
    except OSError as exc:
        raise DkimError(f"cannot read {key_file}: {exc.strerror}") from None
    return DkimSigner(domain, selector, pem)
