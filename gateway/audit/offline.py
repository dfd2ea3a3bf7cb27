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


__all__ = ["InclusionProof", "NoteError", "ProofError", "check_proof"]
