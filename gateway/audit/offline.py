"""Offline check of one audit record against a signed checkpoint.

Someone holding a record, its inclusion proof and a checkpoint note signed by
the gateway can check, with only the gateway's verifier key and no access to
the store, that the record is in the audit tree the gateway committed to:

1. the note verifies under the key and its text is a checkpoint
   (c2sp.org/signed-note, c2sp.org/tlog-checkpoint; gateway/audit/checkpoint.py);
2. the proof is for the checkpoint's tree size, and the leaf hash of the record
   (RFC 9162 §2.1.1, ``SHA-256(0x00 || data)``) with the proof's audit path
   leads to the checkpoint's root hash (RFC 9162 §2.1.3.2).

Contract: :func:`check_proof` returns the verified :class:`Checkpoint`, or
raises :class:`ProofError` (a :class:`NoteError` for the note) and never
returns on a failed check.  ``record_leaf_data`` are the exact leaf bytes the
store hashed for the record (what they are is the store's contract).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from gateway.audit.checkpoint import Checkpoint, NoteError, Verifier, open_checkpoint
from gateway.audit.merkle import leaf_hash, verify_inclusion


class ProofError(ValueError):
    """The record is not shown to be in the tree the checkpoint commits to."""


@dataclass(frozen=True)
class InclusionProof:
    """Leaf ``index`` (from 0) in the tree of ``size`` leaves, with its audit path."""

    index: int
    size: int
    hashes: Sequence[bytes]


def check_proof(record_leaf_data: bytes, inclusion_proof: InclusionProof,
                checkpoint_note: str | bytes, verifier_key: str | Verifier,
                origin: str | None = None) -> Checkpoint:
    """Verify the note, then the record's inclusion in its tree (see module)."""
    verifier = verifier_key if isinstance(verifier_key, Verifier) else Verifier.parse(verifier_key)
    checkpoint = open_checkpoint(checkpoint_note, verifier, origin=origin)
    if inclusion_proof.size != checkpoint.size:
        raise ProofError(f"the proof is for a tree of {inclusion_proof.size} leaves, "
                         f"the checkpoint for {checkpoint.size}")
    if not verify_inclusion(inclusion_proof.index, checkpoint.size, leaf_hash(record_leaf_data),
                            list(inclusion_proof.hashes), checkpoint.root_hash):
        raise ProofError(f"the record is not leaf {inclusion_proof.index} of the checkpoint's tree")
    return checkpoint


@dataclass(frozen=True)
class ProvenRecord:
    """What a checked proof shows: the checkpoint, and the leaf (a dict)."""

    checkpoint: Checkpoint
    leaf: dict


def check_bundle(bundle: object, verifier_key: str | Verifier, subject: str | None = None,
                 ) -> ProvenRecord:
    """Check a proof as ``accessHistory``/``auditTrail`` (``proof``) or ``credit-gateway
    audit prove`` give it: a JSON object with ``leaf``, ``salts``, ``leafIndex``,
    ``treeSize``, ``auditPath``, ``checkpoint`` and, from ``audit prove``,
    ``record`` (the record's canonical JSON). Checks the note and the inclusion
    (:func:`check_proof`), then, with ``subject``, that the leaf commits to it
    under its salt, and, with ``record``, that the leaf's ``record_hash`` is the
    record's hash and every subject of the record is committed to.
    ``ProofError``/``NoteError`` on any failure."""
    import base64
    import binascii
    import hashlib

    import orjson

    from gateway.audit.leaf import names_subject, subject_commitment

    if not isinstance(bundle, dict):
        raise ProofError("a proof is a JSON object")
    try:
        leaf_text = bundle["leaf"]
        salts = {s["subject"]: bytes.fromhex(s["salt"]) for s in bundle.get("salts", [])}
        proof = InclusionProof(int(bundle["leafIndex"]), int(bundle["treeSize"]),
                               [base64.b64decode(h, validate=True) for h in bundle["auditPath"]])
        note = bundle["checkpoint"]
        leaf = orjson.loads(leaf_text)
    except KeyError as missing:
        raise ProofError(f"not a proof: it has no {missing}") from None
    except (TypeError, ValueError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise ProofError(f"not a proof: {exc}") from None
    if not isinstance(leaf_text, str) or not isinstance(leaf, dict):
        raise ProofError("not a proof: leaf is a JSON object in a string")
    checkpoint = check_proof(leaf_text.encode(), proof, note, verifier_key)
    if subject is not None:
        if subject not in salts:
            raise ProofError(f"the proof holds no salt for {subject}")
        if not names_subject(leaf, subject, salts[subject]):
            raise ProofError(f"the record does not name {subject}")
    if "record" in bundle:
        record = bundle["record"]
        if not isinstance(record, str):
            raise ProofError("record is the record's canonical JSON in a string")
        if hashlib.sha256(record.encode()).hexdigest() != leaf.get("record_hash"):
            raise ProofError("the record is not the one the leaf commits to")
        try:
            subjects = orjson.loads(record)["entry"]["subjects"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise ProofError("the record is not a canonical audit record") from None
        commitments = sorted(subject_commitment(salts[s], s) for s in dict.fromkeys(subjects)
                             if s in salts)
        if len(commitments) != len(set(subjects)) or commitments != leaf.get("subjects"):
            raise ProofError("the leaf does not commit to exactly the record's subjects")
    return ProvenRecord(checkpoint, leaf)


__all__ = ["InclusionProof", "NoteError", "ProofError", "ProvenRecord", "check_bundle",
           "check_proof"]
