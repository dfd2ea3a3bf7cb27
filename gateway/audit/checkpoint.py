"""Signed checkpoints of the audit tree: C2SP tlog-checkpoint in a C2SP signed note.

A checkpoint (c2sp.org/tlog-checkpoint) is the note text::

    <origin>\\n<tree size>\\n<base64 root hash>\\n[<extension line>\\n ...]

and a signed note (c2sp.org/signed-note) is that text, a blank line, and
signature lines ``— <key name> <base64(key ID || signature)>`` (U+2014 em
dash).  With Ed25519 (signature type 0x01, RFC 8032) the key ID is
``SHA-256(name || 0x0A || 0x01 || public key)[:4]`` and the signature is over
the note text, final newline included.  The wire format is that of Go's
golang.org/x/mod/sumdb/note, so its verifiers and witnesses read these notes.

Keys are exchanged as strings in the same format as that package:

* verifier key ``<name>+<8 hex digits key ID>+<base64(0x01 || public key)>``;
* signer key ``PRIVATE+KEY+<name>+<key ID>+<base64(0x01 || 32-byte seed)>``.

Contracts
---------
* :func:`open_note` returns the note text only if at least one signature from
  a given verifier (same name *and* key ID) verifies, and no signature from a
  given verifier fails; signatures from other keys are ignored.  Anything else
  (altered text or signature, malformed note, control characters, more than
  :data:`MAX_SIGNATURES` signatures) raises :class:`NoteError`.
* :meth:`Checkpoint.parse` is strict: no leading zeroes in the size, canonical
  base64 of exactly 32 bytes, non-empty extension lines; :func:`open_checkpoint`
  parses only text that :func:`open_note` has verified.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PrivateFormat, PublicFormat, NoEncryption

ED25519 = 0x01
MAX_SIGNATURES = 100
_DASH = "\u2014 "


class NoteError(ValueError):
    """A note, key or checkpoint that is malformed or does not verify."""


def _b64decode(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise NoteError(f"not standard base64: {text!r}") from None
    if base64.b64encode(raw).decode() != text:
        raise NoteError(f"not canonical base64: {text!r}")
    return raw


def _check_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() for c in name) or not name.isprintable():
        raise NoteError(f"a key name is non-empty, without spaces or '+': {name!r}")


def key_id(name: str, public_key: bytes) -> bytes:
    """The signed-note key ID of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public_key).digest()[:4]


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 note verifier: the key name, its key ID and the 32-byte public key."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """Parse ``<name>+<hex key ID>+<base64(0x01 || public key)>``, checking the ID."""
        name, sep, rest = vkey.partition("+")
        hex_id, sep2, material = rest.partition("+")
        if not sep or not sep2 or len(hex_id) != 8 or hex_id != hex_id.lower():
            raise NoteError("a verifier key is <name>+<8 hex digits>+<base64 key>")
        _check_name(name)
        raw = _b64decode(material)
        if len(raw) != 33 or raw[0] != ED25519:
            raise NoteError("only Ed25519 verifier keys (type 0x01, 32 bytes) are supported")
        try:
            kid = bytes.fromhex(hex_id)
        except ValueError:
            raise NoteError(f"a key ID is 8 hex digits: {hex_id!r}") from None
        if kid != key_id(name, raw[1:]):
            raise NoteError("the key ID does not match the key name and public key")
        return cls(name, kid, raw[1:])

    def __str__(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(bytes([ED25519]) + self.public_key).decode()}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


class Signer:
    """An Ed25519 note signer under a key name."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey):
        _check_name(name)
        self.name = name
        self._key = private_key
        public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verifier = Verifier(name, key_id(name, public), public)

    def __eq__(self, other: object) -> bool:
        """Equal signers sign alike: same name, same key (the public key determines it)."""
        return isinstance(other, Signer) and other.verifier == self.verifier

    def __hash__(self) -> int:
        return hash(self.verifier)

    def __repr__(self) -> str:
        return f"Signer({self.verifier})"  # never the private key

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def parse(cls, skey: str) -> Signer:
        """Parse ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>``."""
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("a signer key is PRIVATE+KEY+<name>+<key ID>+<base64 seed>")
        raw = _b64decode(parts[4])
        if len(raw) != 33 or raw[0] != ED25519:
            raise NoteError("only Ed25519 signer keys (type 0x01, 32-byte seed) are supported")
        signer = cls(parts[2], Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if parts[3] != signer.verifier.key_id.hex():
            raise NoteError("the key ID does not match the key name and key")
        return signer

    def private_key_string(self) -> str:
        seed = self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return (f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+"
                f"{base64.b64encode(bytes([ED25519]) + seed).decode()}")

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


def _check_text(text: str, what: str) -> None:
    if any(c < " " and c != "\n" for c in text):
        raise NoteError(f"a {what} has no control characters but newline")


def sign_note(text: str, *signers: Signer) -> str:
    """The signed note of ``text`` (which must end in a newline) by each signer."""
    if not text.endswith("\n"):
        raise NoteError("a note text ends in a newline")
    _check_text(text, "note text")
    if not signers:
        raise NoteError("a signed note has at least one signature")
    message = text.encode()
    lines = []
    for s in signers:
        blob = base64.b64encode(s.verifier.key_id + s.sign(message)).decode()
        lines.append(f"{_DASH}{s.name} {blob}\n")
    return text + "\n" + "".join(lines)


def open_note(note: str | bytes, verifiers: Verifier | Iterable[Verifier]) -> str:
    """The verified text of a signed note, or :class:`NoteError` (see module contracts)."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("a note is UTF-8") from None
    known = [verifiers] if isinstance(verifiers, Verifier) else list(verifiers)
    _check_text(note, "note")
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise NoteError("a note is text, a blank line and signature lines")
    text, block = note[:cut + 1], note[cut + 2:]
    lines = block[:-1].split("\n") if block else []
    if not lines or len(lines) > MAX_SIGNATURES:
        raise NoteError(f"a note has 1 to {MAX_SIGNATURES} signature lines")
    message, verified = text.encode(), 0
    for line in lines:
        if not line.startswith(_DASH):
            raise NoteError(f"not a signature line: {line!r}")
        name, sep, blob = line[len(_DASH):].partition(" ")
        if not sep:
            raise NoteError(f"not a signature line: {line!r}")
        _check_name(name)
        raw = _b64decode(blob)
        if len(raw) < 5:
            raise NoteError("a signature is a 4-byte key ID and the signature bytes")
        for v in known:
            if v.name == name and v.key_id == raw[:4]:
                if not v.verify(message, raw[4:]):
                    raise NoteError(f"the signature of {name} does not verify")
                verified += 1
    if not verified:
        raise NoteError("no signature from a known key")
    return text


@dataclass(frozen=True)
class Checkpoint:
    """A C2SP tlog-checkpoint: origin, tree size, RFC 9162 root hash, extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise NoteError("a checkpoint's origin is one non-empty line")
        if not isinstance(self.size, int) or self.size < 0:
            raise NoteError("a checkpoint's tree size is a non-negative integer")
        if len(self.root_hash) != 32:
            raise NoteError("a checkpoint's root hash is 32 bytes (SHA-256)")
        if any(not e or "\n" in e for e in self.extensions):
            raise NoteError("a checkpoint's extension lines are non-empty single lines")
        _check_text(self.origin + "".join(self.extensions), "checkpoint")

    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode(), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        if not text.endswith("\n"):
            raise NoteError("a checkpoint text ends in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("a checkpoint has an origin, a tree size and a root hash")
        origin, size, root_b64, *extensions = lines
        if not size.isascii() or not size.isdigit() or (size != "0" and size.startswith("0")):
            raise NoteError(f"a tree size is decimal without leading zeroes: {size!r}")
        return cls(origin, int(size), _b64decode(root_b64), tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> str:
    """The signed note of a checkpoint (the key name SHOULD be the origin)."""
    return sign_note(checkpoint.text(), signer)


def open_checkpoint(note: str | bytes, verifiers: Verifier | Iterable[Verifier],
                    origin: str | None = None) -> Checkpoint:
    """The checkpoint of a signed note once verified; ``origin``, if given, must match."""
    checkpoint = Checkpoint.parse(open_note(note, verifiers))
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"the checkpoint is of {checkpoint.origin!r}, not {origin!r}")
    return checkpoint


def signature_lines(note: str) -> list[str]:
    """The signature lines of a signed note (each ending in a newline), unverified."""
    cut = note.rfind("\n\n")
    if cut < 0:
        raise NoteError("a note is text, a blank line and signature lines")
    return [line + "\n" for line in note[cut + 2:].split("\n") if line]


def add_signatures(note: str, lines: Iterable[str]) -> str:
    """``note`` with the signature ``lines`` it does not already carry appended
    (a cosigned note: open it with each signer's verifier to trust a line)."""
    have = signature_lines(note)
    extra = [line for line in dict.fromkeys(lines) if line not in have]
    if len(have) + len(extra) > MAX_SIGNATURES:
        raise NoteError(f"a note has at most {MAX_SIGNATURES} signature lines")
    for line in extra:
        if not line.startswith(_DASH) or not line.endswith("\n") or line.count("\n") != 1:
            raise NoteError(f"not a signature line: {line!r}")
    return note + "".join(extra)


def signed_by(note: str, verifier: Verifier) -> bool:
    """Does ``note`` carry a valid signature of ``verifier``?"""
    try:
        open_note(note, verifier)
    except NoteError:
        return False
    return True
