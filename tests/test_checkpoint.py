"""gateway/audit/checkpoint.py: C2SP signed notes and tlog-checkpoints.

The known answer is the example of golang.org/x/mod/sumdb/note (note.go's
package documentation and note_test.go): Ed25519 signatures are deterministic
(RFC 8032), so signing its text with its key must give its note byte for byte,
and its verifier key string must be the one derived here.
"""

import base64

import pytest

from gateway.audit.checkpoint import (
    Checkpoint,
    NoteError,
    Signer,
    Verifier,
    key_id,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
)
from gateway.audit.merkle import Frontier, leaf_hash

GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = ("If you think cryptography is the answer to your problem,\n"
           "then you don't know what your problem is.\n")
GO_NOTE = (GO_TEXT + "\n— PeterNeumann "
           "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")

ORIGIN = "audit.credit-gateway.example/log"


def test_go_reference_note_is_reproduced_and_opened():
    signer = Signer.parse(GO_SKEY)
    assert str(signer.verifier) == GO_VKEY
    assert signer.private_key_string() == GO_SKEY
    assert sign_note(GO_TEXT, signer) == GO_NOTE
    verifier = Verifier.parse(GO_VKEY)
    assert verifier == signer.verifier
    assert verifier.key_id == bytes.fromhex("c74f20a3") == key_id("PeterNeumann", verifier.public_key)
    assert open_note(GO_NOTE, verifier) == GO_TEXT
    assert open_note(GO_NOTE.encode(), [verifier]) == GO_TEXT


@pytest.mark.parametrize("altered", [
    GO_NOTE.replace("cryptography", "cryptographY"),
    GO_NOTE.replace("problem,", "problem, "),
    GO_NOTE.replace("x08go", "x08gp"),                 # signature bytes
    GO_NOTE.replace("x08go", "x08gO"),                 # key ID bytes
    GO_NOTE.replace("AM=\n", "AA=\n"),
    GO_NOTE.replace("— PeterNeumann", "— PeterNeumanm"),  # another (unknown) key
    GO_NOTE.replace("\n\n", "\n"),                     # no blank line
    GO_NOTE[:-1],                                      # no final newline
    GO_NOTE.replace("— ", "- "),
    GO_NOTE.replace("problem,\n", "problem,\r\n"),     # a control character
    GO_TEXT + "\n",                                    # no signature at all
])
def test_an_altered_note_is_refused(altered):
    with pytest.raises(NoteError):
        open_note(altered, Verifier.parse(GO_VKEY))


def test_unknown_signatures_are_ignored_and_a_failing_known_one_rejects():
    log, witness = Signer.generate(ORIGIN), Signer.generate("witness.example/w1")
    note = sign_note(GO_TEXT, witness, log)
    assert open_note(note, log.verifier) == GO_TEXT
    assert open_note(note, [witness.verifier, log.verifier]) == GO_TEXT
    # Same name, another key: not this verifier's signature, so none verifies.
    with pytest.raises(NoteError, match="no signature from a known key"):
        open_note(note, Signer.generate(ORIGIN).verifier)
    # A known key's signature that fails rejects the note, even beside a good one.
    good = sign_note(GO_TEXT, log)
    forged_line = good.splitlines()[-1][:-6] + "AAAAA="
    with pytest.raises(NoteError):
        open_note(good + forged_line + "\n", log.verifier)


def test_too_many_signatures_are_refused():
    s = Signer.generate("k")
    note = sign_note(GO_TEXT, *[s] * 101)
    with pytest.raises(NoteError):
        open_note(note, s.verifier)
    assert open_note(sign_note(GO_TEXT, *[s] * 16), s.verifier) == GO_TEXT


@pytest.mark.parametrize("vkey", [
    GO_VKEY.replace("c74f20a3", "c74f20a4"),          # key ID does not match
    GO_VKEY.replace("c74f20a3", "C74F20A3"),
    GO_VKEY.replace("PeterNeumann", "PeterNeumanm"),  # name does not match the ID
    GO_VKEY.replace("+ARpc", "+AhpC"),                # another type byte
    GO_VKEY[:-4],                                     # truncated key
    "PeterNeumann+c74f20a3",
    "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
])
def test_malformed_verifier_keys_are_refused(vkey):
    with pytest.raises(NoteError):
        Verifier.parse(vkey)


def test_signing_refuses_what_no_verifier_would_accept():
    s = Signer.generate("k")
    with pytest.raises(NoteError):
        sign_note("no final newline", s)
    with pytest.raises(NoteError):
        sign_note("a\ttab\n", s)
    with pytest.raises(NoteError):
        Signer.generate("has space")
    with pytest.raises(NoteError):
        Signer.generate("has+plus")


def test_checkpoint_of_an_audit_tree_signs_and_opens():
    frontier = Frontier.of([leaf_hash(b"record %d" % i) for i in range(1000)])
    log = Signer.generate(ORIGIN)
    cp = Checkpoint(ORIGIN, frontier.size, frontier.root())
    assert cp.text() == f"{ORIGIN}\n1000\n{base64.b64encode(frontier.root()).decode()}\n"
    note = sign_checkpoint(cp, log)
    vkey = str(log.verifier)
    assert open_checkpoint(note, Verifier.parse(vkey), origin=ORIGIN) == cp
    with pytest.raises(NoteError):
        open_checkpoint(note, log.verifier, origin="another.example/log")
    with pytest.raises(NoteError):
        open_checkpoint(note.replace("\n1000\n", "\n1001\n"), log.verifier)
    other = base64.b64encode(Frontier.of([leaf_hash(b"x")]).root()).decode()
    with pytest.raises(NoteError):
        open_checkpoint(note.replace(base64.b64encode(cp.root_hash).decode(), other), log.verifier)


def test_checkpoint_extensions_and_empty_tree():
    root = bytes(32)
    cp = Checkpoint(ORIGIN, 0, root, ("Timestamp: 1700000000",))
    assert Checkpoint.parse(cp.text()) == cp
    assert cp.text().splitlines()[1:] == ["0", "A" * 43 + "=", "Timestamp: 1700000000"]


@pytest.mark.parametrize("text", [
    f"{ORIGIN}\n01\n{'A' * 43}=\n",       # leading zero
    f"{ORIGIN}\n-1\n{'A' * 43}=\n",
    f"{ORIGIN}\n1 \n{'A' * 43}=\n",
    f"{ORIGIN}\n١\n{'A' * 43}=\n",        # a non-ASCII digit
    f"{ORIGIN}\n1\n{'A' * 42}==\n",       # 31 bytes
    f"{ORIGIN}\n1\n{'A' * 43}\n",         # unpadded
    f"{ORIGIN}\n1\n{'A' * 42}B=\n",       # non-canonical base64
    f"{ORIGIN}\n1\n{'A' * 43}=\n\n",      # empty extension line
    f"{ORIGIN}\n1\n",
    f"\n1\n{'A' * 43}=\n",
    f"{ORIGIN}\n1\n{'A' * 43}=",
])
def test_malformed_checkpoints_are_refused(text):
    with pytest.raises(NoteError):
        Checkpoint.parse(text)
