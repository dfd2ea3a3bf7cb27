"""The audit log checked from outside: a signed checkpoint taken before any
tampering finds it (even a rewrite of the tail with the head and the tree, which
the chain alone cannot), proofs verify offline and fail on any changed byte,
pruning keeps them valid, and a migrated trail gets its tree."""

from __future__ import annotations

import base64
from datetime import timedelta

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.audit import AuditStore, schema
from gateway.audit.append import extend_chain
from gateway.audit.chain import GENESIS, canonical_bytes
from gateway.audit.checkpoint import Checkpoint, Signer, open_checkpoint, sign_checkpoint
from gateway.audit.merkle import Frontier, verify_consistency
from gateway.audit.offline import NoteError, ProofError, check_bundle
from gateway.audit.proofs import read_nodes
from tests.audit_support import (  # noqa: F401 (fixtures)
    T0, USCC_A, USCC_B, PERSON, entry, pg_database, audit_url, store,
)

pytestmark = pytest.mark.anyio
SIGNER = Signer.generate("test.credit/audit")
SUBJECTS = [(), (USCC_B,), (USCC_A, USCC_B), (USCC_A, PERSON)]


async def _fill(store: AuditStore, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        await store.append(entry(n, subjects=SUBJECTS[n % 4]))


async def _checkpoint(store: AuditStore) -> tuple[Checkpoint, str]:
    """A checkpoint signed now and opened as an outsider would: by the key."""
    head = await store.tree_head()
    note = sign_checkpoint(Checkpoint(SIGNER.name, head.size, head.root), SIGNER)
    return open_checkpoint(note, SIGNER.verifier), note


def _rewrite(conn: sa.Connection, keep: int, entries) -> None:
    """The strongest forger: write access to the database and this code. Keeps
    records 1..keep, replaces the rest by ``entries``, and rebuilds the
    chain, the subject index, the tree and the head to match."""
    head = conn.execute(sa.select(schema.head)).one()
    size = keep - head.tree_base
    coordinates = Frontier.coordinates(size)
    nodes = read_nodes(conn, coordinates)
    conn.execute(sa.delete(schema.records).where(schema.records.c.seq > keep))
    conn.execute(sa.delete(schema.subjects).where(schema.subjects.c.seq > keep))
    for level, idx in conn.execute(sa.select(schema.tree.c.level, schema.tree.c.idx)).all():
        if (idx + 1) << level > size:
            conn.execute(sa.delete(schema.tree).where(schema.tree.c.level == level,
                                                      schema.tree.c.idx == idx))
    last = conn.execute(sa.select(schema.records.c.hash).where(schema.records.c.seq == keep)
                        ).scalar() or GENESIS
    conn.execute(sa.update(schema.head).values(
        seq=keep, hash=last, frontier=Frontier(size, tuple(nodes[c] for c in coordinates)).to_bytes()))
    if entries:
        extend_chain(conn, entries)


async def _tamper(url: str, work, *args) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(work, *args)
    finally:
        await engine.dispose()


def _forged(n: int):
    return entry(100 + n, client_id="intruder", subjects=(USCC_A,))


def alter_record_4(conn):
    conn.execute(sa.update(schema.records).where(schema.records.c.seq == 4)
                 .values(purpose="marketing"))


REWRITES = {
    # (records kept, replacements): each consistent in chain, index, tree and head.
    "rewrite_tail_and_head": (7, [_forged(n) for n in range(5)]),
    "truncate": (8, []),
    "delete_record_5": (4, [entry(n, subjects=SUBJECTS[n % 4]) for n in range(5, 12)]),
    "insert_after_5": (5, [_forged(0)] + [entry(n, subjects=SUBJECTS[n % 4])
                                          for n in range(5, 12)]),
    "rewrite_everything": (0, [_forged(n) for n in range(12)]),
}


@pytest.mark.parametrize("how", sorted(REWRITES))
async def test_a_consistent_rewrite_passes_the_chain_but_not_a_checkpoint(store, audit_url, how):
    await _fill(store, 10)
    checkpoint, _ = await _checkpoint(store)  # it left the building
    await _fill(store, 2, start=10)
    assert (await store.verify(checkpoint)).ok

    keep, entries = REWRITES[how]
    await _tamper(audit_url, _rewrite, keep, entries)

    assert (await store.verify()).ok  # the forgery is internally consistent...
    report = await store.verify(checkpoint)  # ...but not with what was published
    assert not report.ok
    words = "truncated" if how == "truncate" else "do not give the root of the checkpoint"
    assert words in report.problem, report.problem


async def test_an_altered_record_is_found_with_or_without_a_checkpoint(store, audit_url):
    await _fill(store, 10)
    checkpoint, _ = await _checkpoint(store)
    await _tamper(audit_url, alter_record_4)
    for report in (await store.verify(), await store.verify(checkpoint)):
        assert (report.ok, report.seq) == (False, 4)


async def test_an_altered_stored_subtree_is_found(store, audit_url):
    await _fill(store, 10)

    def alter_node(conn):
        conn.execute(sa.update(schema.tree).where(schema.tree.c.level == 1,
                                                  schema.tree.c.idx == 2)
                     .values(hash=bytes(32)))

    await _tamper(audit_url, alter_node)
    report = await store.verify()
    assert not report.ok and "subtree (1, 2)" in report.problem


async def test_a_checkpoint_of_a_larger_tree_than_the_log_is_truncation(store):
    await _fill(store, 5)
    head = await store.tree_head()
    report = await store.verify(Checkpoint(SIGNER.name, head.size + 3, head.root))
    assert not report.ok and "truncated" in report.problem


# --- proofs -----------------------------------------------------------------------------


def _bundle(proof, note: str, record=None, only: str | None = None) -> dict:
    bundle = {
        "leaf": proof.leaf.decode(),
        "salts": [{"subject": s, "salt": salt.hex()} for s, salt in proof.salts.items()
                  if only is None or s == only],
        "leafIndex": proof.index, "treeSize": proof.size,
        "auditPath": [base64.b64encode(h).decode() for h in proof.hashes],
        "checkpoint": note,
    }
    if record is not None:
        bundle["record"] = canonical_bytes(record.seq, record.prev_hash, record.entry).decode()
    return bundle


async def test_inclusion_proofs_verify_offline_and_fail_on_any_changed_byte(store):
    await _fill(store, 11)
    _, note = await _checkpoint(store)
    records = await store.query(newest_first=False, limit=100)
    proofs = await store.record_proofs(records, 11)
    assert sorted(proofs) == list(range(1, 12))
    for record in records:
        proven = check_bundle(_bundle(proofs[record.seq], note, record), str(SIGNER.verifier))
        assert proven.leaf["seq"] == record.seq and proven.checkpoint.size == 11

    record = records[3]  # record 4: USCC_A and a person
    bundle = _bundle(proofs[4], note, record)
    for field in ("leaf", "record", "checkpoint"):
        text = bundle[field]
        for at in range(0, len(text), max(1, len(text) // 40)):
            changed = text[:at] + ("0" if text[at] != "0" else "1") + text[at + 1:]
            with pytest.raises((ProofError, NoteError)):
                check_bundle({**bundle, field: changed}, str(SIGNER.verifier))
    for n, path_hash in enumerate(bundle["auditPath"]):
        raw = bytearray(base64.b64decode(path_hash))
        for at in range(len(raw)):
            raw[at] ^= 1
            with pytest.raises(ProofError):
                check_bundle({**bundle, "auditPath": [*bundle["auditPath"][:n],
                                                      base64.b64encode(bytes(raw)).decode(),
                                                      *bundle["auditPath"][n + 1:]]},
                             str(SIGNER.verifier))
            raw[at] ^= 1
    for index in (0, 2, 4, 10):
        with pytest.raises(ProofError):
            check_bundle({**bundle, "leafIndex": index}, str(SIGNER.verifier))
    with pytest.raises(NoteError):  # another key
        check_bundle(bundle, str(Signer.generate(SIGNER.name).verifier))


async def test_a_data_subject_sees_its_own_commitment_and_nobody_elses(store):
    await _fill(store, 4)
    _, note = await _checkpoint(store)
    record = (await store.query(subject=PERSON, limit=1))[0]  # record 4: USCC_A and PERSON
    proof = (await store.record_proofs([record], 4))[4]
    mine = _bundle(proof, note, only=USCC_A)
    assert [s["subject"] for s in mine["salts"]] == [USCC_A]
    assert PERSON not in mine["leaf"] and USCC_A not in mine["leaf"]
    assert check_bundle(mine, str(SIGNER.verifier), subject=USCC_A).leaf["seq"] == 4
    with pytest.raises(ProofError):  # no salt of another subject to check with
        check_bundle(mine, str(SIGNER.verifier), subject=USCC_B)
    wrong_salt = {**mine, "salts": [{"subject": USCC_A, "salt": "00" * 16}]}
    with pytest.raises(ProofError, match="does not name"):
        check_bundle(wrong_salt, str(SIGNER.verifier), subject=USCC_A)


async def test_consistency_proofs_verify_and_fail_on_any_changed_byte(store):
    await _fill(store, 5)
    old, _ = await _checkpoint(store)
    await _fill(store, 8, start=5)
    new, _ = await _checkpoint(store)
    proof = await store.consistency_proof(old.size, new.size)
    assert verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)
    for n in range(len(proof)):
        for at in range(32):
            changed = bytearray(proof[n])
            changed[at] ^= 0x80
            assert not verify_consistency(old.size, new.size, old.root_hash, new.root_hash,
                                          [*proof[:n], bytes(changed), *proof[n + 1:]])


# --- retention --------------------------------------------------------------------------


async def test_prune_keeps_proofs_and_checkpoints_valid(store, audit_url):
    await _fill(store, 10)  # entry(n) is recorded at T0 + n seconds
    early, early_note = await _checkpoint(store)
    pruned = await store.prune(T0 + timedelta(seconds=6))  # records 1..6
    assert pruned.removed == 6
    late, late_note = await _checkpoint(store)  # 11 leaves: the prune's record is one
    assert late.size == 11

    for checkpoint in (early, late):
        assert (await store.verify(checkpoint)).ok, checkpoint
    kept = await store.query(newest_first=False, limit=100)
    assert [r.seq for r in kept] == [7, 8, 9, 10, 11]
    for checkpoint, note in ((early, early_note), (late, late_note)):
        proofs = await store.record_proofs(kept, checkpoint.size)
        for record in kept:
            if record.seq <= checkpoint.size:
                check_bundle(_bundle(proofs[record.seq], note, record), str(SIGNER.verifier))
    await _tamper(audit_url, _rewrite, 8, [_forged(0)])  # after the prune, still found
    assert not (await store.verify(early)).ok


async def test_a_checkpoint_older_than_the_pruned_records_is_checked_by_consistency(
        store, audit_url):
    await _fill(store, 4)
    oldest, _ = await _checkpoint(store)
    await _fill(store, 6, start=4)
    await store.prune(T0 + timedelta(seconds=6))  # records 1..6: beyond the checkpoint's 4
    assert (await store.verify(oldest)).ok

    def alter_pruned_subtree(conn):  # the hashes standing for the pruned records
        conn.execute(sa.update(schema.tree).where(schema.tree.c.level == 2,
                                                  schema.tree.c.idx == 0)
                     .values(hash=bytes(32)))

    await _tamper(audit_url, alter_pruned_subtree)
    report = await store.verify(oldest)
    assert not report.ok


# --- migration --------------------------------------------------------------------------


async def test_a_trail_migrated_with_records_gets_its_tree(audit_url):
    """Records written under revision 0002 (no tree), then upgraded: every
    record gets its salts and leaf, and appends continue the same tree."""
    from alembic import command
    from gateway.audit.migrate import alembic_config

    engine = create_async_engine(audit_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0002"))
            await conn.run_sync(_legacy_append, [entry(n, subjects=SUBJECTS[n % 4])
                                                 for n in range(9)])
    finally:
        await engine.dispose()
    store = AuditStore(audit_url)
    try:
        await store.migrate()
        report = await store.verify()
        assert (report.ok, report.records, report.tree_size) == (True, 9, 9), report.problem
        await _fill(store, 3, start=9)
        checkpoint, note = await _checkpoint(store)
        assert (await store.verify(checkpoint)).ok and checkpoint.size == 12
        records = await store.query(newest_first=False, limit=100)
        proofs = await store.record_proofs(records, 12)
        for record in records:
            check_bundle(_bundle(proofs[record.seq], note, record), str(SIGNER.verifier))
    finally:
        await store.aclose()


def _legacy_append(conn: sa.Connection, entries) -> None:
    """What revision 0002's writer stored: records, subject index, head."""
    from gateway.audit.chain import record_hash
    from gateway.audit.rows import entry_row

    records = sa.table("audit_records", *(sa.column(c.name) for c in schema.records.c))
    subjects = sa.table("audit_subjects", sa.column("subject"), sa.column("seq"))
    prev = GENESIS
    for seq, item in enumerate(entries, start=1):
        digest = record_hash(seq, prev, item)
        conn.execute(sa.insert(records).values(**entry_row(item), seq=seq, prev_hash=prev,
                                               hash=digest))
        for subject in dict.fromkeys(item.subjects):
            conn.execute(sa.insert(subjects).values(subject=subject, seq=seq))
        prev = digest
    conn.execute(sa.text("UPDATE audit_head SET seq = :seq, hash = :hash"),
                 {"seq": len(entries), "hash": prev})


def test_leaf_document_is_canonical_json():
    from gateway.audit.entry import AuditRecord
    from gateway.audit.leaf import leaf_data

    record = AuditRecord(seq=3, entry=entry(3, subjects=(USCC_A,)), prev_hash=GENESIS,
                         hash="ab" * 32)
    data = leaf_data(record, {USCC_A: bytes(16)})
    assert data == orjson.dumps(orjson.loads(data), option=orjson.OPT_SORT_KEYS)
    assert USCC_A not in data.decode()


@pytest.mark.parametrize(("bundle", "words"), [
    ({"leaf": "{}"}, "it has no .leafIndex."),
    ("not an object", "a JSON object"),
    ({"leaf": "{", "salts": [], "leafIndex": 0, "treeSize": 1, "auditPath": [],
      "checkpoint": ""}, "not a proof"),
    ({"leaf": "{}", "salts": [{"subject": "x", "salt": "zz"}], "leafIndex": 0, "treeSize": 1,
      "auditPath": [], "checkpoint": ""}, "not a proof"),
])
def test_a_malformed_proof_is_refused_with_a_clear_reason(bundle, words):
    with pytest.raises(ProofError, match=words):
        check_bundle(bundle, str(SIGNER.verifier))
