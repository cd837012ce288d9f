"""A ticket's code: what its QR code encodes, signed with Ed25519 so that a door device can tell a real
ticket from a forged one with the public key alone, without the database.

A code reads ``T1.<payload>.<signature>``: the payload is compact JSON in base64url (``k`` the key id,
``t`` the ticket id, ``p`` the performance id, ``s`` the seat's label); the signature (base64url) is
over the ASCII text ``T1.<payload>``. Ed25519 signatures are deterministic, so a ticket's code is the
same every time it is shown and needs no storage.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from functools import cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings

VERSION = "T1"
MAX_CODE_LENGTH = 400  # a real code is about 150 characters; anything far longer is not worth parsing
ALGORITHM = "Ed25519"


class BadTicketCode(ValueError):
    """Not a code this shop signed: malformed, or its signature does not verify."""


@dataclass(frozen=True)
class TicketClaims:
    ticket_id: int
    performance_id: int
    label: str


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@cache
def signing_key() -> Ed25519PrivateKey:
    """TICKET_SIGNING_KEY's seed, or one derived from SECRET_KEY (HKDF) when it is unset."""
    if settings.TICKET_SIGNING_KEY:
        seed = b64decode(settings.TICKET_SIGNING_KEY)
    else:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"ticketing: ticket signing key")
        seed = hkdf.derive(settings.SECRET_KEY.encode())
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_bytes() -> bytes:
    return signing_key().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_key_pem() -> str:
    return signing_key().public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def key_id() -> str:
    """Names the key in every code, so that a door device notices a new key instead of refusing everyone."""
    return hashlib.sha256(public_key_bytes()).hexdigest()[:8]


def ticket_code(*, ticket_id: int, performance_id: int, label: str) -> str:
    claims = {"k": key_id(), "t": ticket_id, "p": performance_id, "s": label}
    signed = f"{VERSION}.{b64encode(json.dumps(claims, separators=(',', ':'), ensure_ascii=False).encode())}"
    return f"{signed}.{b64encode(signing_key().sign(signed.encode('ascii')))}"


def ticket_code_verify(code: str) -> TicketClaims:
    """The claims of a genuine code; BadTicketCode for anything else (never another exception)."""
    if not isinstance(code, str) or len(code) > MAX_CODE_LENGTH or not code.isascii():
        raise BadTicketCode("This is not a ticket code.")
    version, _, rest = code.strip().partition(".")
    payload, _, signature = rest.partition(".")
    if version != VERSION or not payload or not signature:
        raise BadTicketCode("This is not a ticket code.")
    public_key = Ed25519PublicKey.from_public_bytes(public_key_bytes())
    try:
        public_key.verify(b64decode(signature), f"{version}.{payload}".encode("ascii"))
        claims = json.loads(b64decode(payload))
        return TicketClaims(ticket_id=int(claims["t"]), performance_id=int(claims["p"]), label=str(claims["s"]))
    except (InvalidSignature, binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise BadTicketCode("The ticket code is forged or damaged: its signature does not verify.") from exc
