"""gateway/audit/offline.py: a record, its proof and a signed checkpoint, checked offline."""

import pytest

from gateway.audit.checkpoint import Checkpoint, NoteError, Signer, sign_checkpoint
from gateway.audit.merkle import Frontier, inclusion_proof, leaf_hash
from gateway.audit.offline import InclusionProof, ProofError, check_proof

ORIGIN = "audit.credit-gateway.example/log"
RECORDS = [b'{"seq":%d,"query":"creditProfile"}' % i for i in range(37)]
HASHES = [leaf_hash(r) for r in RECORDS]
LOG = Signer.generate(ORIGIN)
VKEY = str(LOG.verifier)


def note_for(size):
    f = Frontier.of(HASHES[:size])
    return sign_checkpoint(Checkpoint(ORIGIN, f.size, f.root()), LOG)


def proof_for(index, size):
    return InclusionProof(index, size, inclusion_proof(HASHES, index, size))


def test_every_record_checks_against_a_signed_checkpoint():
    for size in (1, 2, 7, 8, 37):
        note = note_for(size)
        for i in range(size):
            cp = check_proof(RECORDS[i], proof_for(i, size), note, VKEY, origin=ORIGIN)
            assert cp.size == size


def test_an_altered_record_proof_or_note_fails():
    note, proof = note_for(37), proof_for(5, 37)
    with pytest.raises(ProofError):
        check_proof(RECORDS[5] + b" ", proof, note, VKEY)
    with pytest.raises(ProofError):
        check_proof(RECORDS[6], proof, note, VKEY)
    with pytest.raises(ProofError):
        check_proof(RECORDS[5], InclusionProof(6, 37, proof.hashes), note, VKEY)
    bad = list(proof.hashes)
    bad[2] = bytes([bad[2][0] ^ 1]) + bad[2][1:]
    with pytest.raises(ProofError):
        check_proof(RECORDS[5], InclusionProof(5, 37, bad), note, VKEY)
    with pytest.raises(ProofError, match="tree of 36 leaves"):
        check_proof(RECORDS[5], proof_for(5, 36), note, VKEY)
    with pytest.raises(NoteError):
        check_proof(RECORDS[5], proof, note.replace("\n37\n", "\n36\n"), VKEY)
    with pytest.raises(NoteError):
        check_proof(RECORDS[5], proof, note, str(Signer.generate(ORIGIN).verifier))
    with pytest.raises(NoteError):
        check_proof(RECORDS[5], proof, note, VKEY, origin="another.example/log")
