"""``credit-gateway audit ...``: verify, prune, sign checkpoints, prove records.

``verify`` and ``prune`` read the trail's database; ``checkpoint`` signs and
publishes the tree's checkpoint now (``[transparency]``); ``prove`` writes a
record's inclusion proof; ``check-proof`` and ``keygen`` need no database
and no configuration: an enterprise or an auditor runs them with only the
log's published verifier key.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path


def _settings(args: argparse.Namespace):
    from gateway.settings import load_settings

    return load_settings(args.config)


async def _with_store(settings, work):
    from gateway.audit import AuditStore

    store = AuditStore(settings.audit.url)
    try:
        return await work(store)
    finally:
        await store.aclose()


def _key_argument(value: str) -> str:
    """A verifier key given as the key itself or as a file holding it."""
    path = Path(value)
    if "+" not in value or path.is_file():
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"{value}: {exc.strerror}") from None
    return value


def _log_key(args: argparse.Namespace, settings) -> str | None:
    if args.key:
        return args.key
    if settings.transparency is not None:
        return str(settings.transparency.signer.verifier)
    return None


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from gateway.audit import AuditUnavailable
    from gateway.audit.checkpoint import NoteError, open_checkpoint

    settings = _settings(args)
    checkpoint = None
    if args.checkpoint is not None:
        key = _log_key(args, settings)
        if key is None:
            print("credit-gateway: --checkpoint needs the log's key: --key, or [transparency] "
                  "in the configuration", file=sys.stderr)
            return 2
        try:
            checkpoint = open_checkpoint(args.checkpoint.read_bytes(), _verifier(key))
        except (OSError, NoteError) as exc:
            print(f"credit-gateway: the checkpoint is not one signed by {key.split('+')[0]}: "
                  f"{exc}", file=sys.stderr)
            return 2
    try:
        report = asyncio.run(_with_store(settings, lambda s: s.verify(checkpoint)))
    except AuditUnavailable as exc:
        print(f"credit-gateway: the audit trail cannot be read: {exc}", file=sys.stderr)
        return 2
    if report.ok:
        against = "" if checkpoint is None else \
            f"; an append-only extension of the checkpoint of {_records(checkpoint.size)}"
        print(f"audit trail OK: {_records(report.records)}, hash chain intact, Merkle tree of "
              f"{report.tree_size} leaves intact{against}")
        return 0
    where = f"at record {report.seq}" if report.seq is not None else "(not one record's problem)"
    print(f"audit trail TAMPERED {where}: {report.problem} "
          f"({report.records} records checked before it)")
    return 1


def _records(n: int) -> str:
    return f"{n} record" if n == 1 else f"{n} records"


def _verifier(key: str):
    from gateway.audit.checkpoint import Verifier

    return Verifier.parse(key)


def cmd_audit_prune(args: argparse.Namespace) -> int:
    """Remove the records older than ``retention_days`` (``--dry-run``: only
    count them), after verifying the trail: a tampered trail is not pruned (exit 1)."""
    from datetime import UTC, datetime, timedelta

    from gateway.audit import AuditUnavailable

    settings = _settings(args)
    cutoff = datetime.now(UTC) - timedelta(days=settings.audit.retention_days)

    async def prune(store):
        report = await store.verify()
        if not report.ok:
            return report, None
        return report, await store.prune(cutoff, dry_run=args.dry_run)

    try:
        verified, pruned = asyncio.run(_with_store(settings, prune))
    except AuditUnavailable as exc:
        print(f"credit-gateway: the audit trail cannot be pruned: {exc}", file=sys.stderr)
        return 2
    if pruned is None:
        print(f"audit trail TAMPERED at record {verified.seq}: {verified.problem}; "
              f"nothing was pruned")
        return 1
    when = f"recorded before {cutoff.isoformat(timespec='seconds')}"
    if not pruned.removed:
        print(f"nothing to prune: no record {when} ({settings.audit.retention_days} days)")
        return 0
    first = pruned.anchor_seq - pruned.removed + 1
    print(f"{'would remove' if args.dry_run else 'removed'} {pruned.removed} records "
          f"({first}..{pruned.anchor_seq}) {when}; "
          f"{'the anchor would be' if args.dry_run else 'anchor now'} record "
          f"{pruned.anchor_seq}, hash {pruned.anchor_hash}")
    return 0


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    """Sign and publish the checkpoint of the tree now; print its note."""
    from gateway.audit import AuditUnavailable
    from gateway.audit.publisher import CheckpointNotPublished, CheckpointPublisher

    settings = _settings(args)
    if settings.transparency is None:
        print("credit-gateway: no [transparency] table: no key to sign checkpoints with",
              file=sys.stderr)
        return 2
    try:
        note = asyncio.run(_with_store(
            settings, lambda s: CheckpointPublisher(s, settings.transparency).publish()))
    except (AuditUnavailable, CheckpointNotPublished) as exc:
        print(f"credit-gateway: no checkpoint published: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(note)
    return 0


def cmd_audit_prove(args: argparse.Namespace) -> int:
    """Print record ``--seq``'s proof (JSON) against the latest checkpoint, or
    the one given; with its canonical record and every subject's salt."""
    import base64

    from gateway.audit import AuditUnavailable
    from gateway.audit.chain import canonical_bytes
    from gateway.audit.checkpoint import Checkpoint, NoteError

    settings = _settings(args)

    async def prove(store):
        found = [r for r in await store.query(after_seq=args.seq - 1, limit=1,
                                              newest_first=False) if r.seq == args.seq]
        if args.checkpoint is not None:
            note = args.checkpoint.read_text(encoding="utf-8")
            cut = note.rfind("\n\n")
            size = Checkpoint.parse(note[:cut + 1]).size if cut > 0 else -1
            if size < 0:
                raise NoteError("not a signed note")
        else:
            latest = await store.latest_checkpoint()
            if latest is None:
                return None, None, "no checkpoint has been signed yet: run audit checkpoint"
            size, note = latest
        if not found:
            return None, None, f"there is no record {args.seq}"
        proofs = await store.record_proofs(found, size)
        if args.seq not in proofs:
            return None, None, (f"the checkpoint of {size} records does not cover record "
                                f"{args.seq} yet")
        return found[0], proofs[args.seq], note

    try:
        record, proof, note = asyncio.run(_with_store(settings, prove))
    except (AuditUnavailable, OSError, NoteError) as exc:
        print(f"credit-gateway: no proof: {exc}", file=sys.stderr)
        return 2
    if record is None:
        print(f"credit-gateway: no proof: {note}", file=sys.stderr)
        return 1
    bundle = {
        "leaf": proof.leaf.decode(),
        "salts": [{"subject": s, "salt": salt.hex()} for s, salt in proof.salts.items()],
        "leafIndex": proof.index, "treeSize": proof.size,
        "auditPath": [base64.b64encode(h).decode() for h in proof.hashes],
        "checkpoint": note,
        "record": canonical_bytes(record.seq, record.prev_hash, record.entry).decode(),
    }
    print(json.dumps(bundle, ensure_ascii=False, indent=2))
    return 0


def cmd_audit_check_proof(args: argparse.Namespace) -> int:
    """Offline: check a proof file with the log's verifier key (no database)."""
    from gateway.audit.offline import NoteError, ProofError, check_bundle

    try:
        bundle = json.loads(Path(args.proof).read_text(encoding="utf-8")
                            if args.proof != "-" else sys.stdin.read())
        proven = check_bundle(bundle, args.key, subject=args.subject)
    except (OSError, ValueError) as exc:
        kind = "NOT PROVEN" if isinstance(exc, ProofError | NoteError) else "not a proof"
        print(f"{kind}: {exc}")
        return 1
    leaf, cp = proven.leaf, proven.checkpoint
    released = ", ".join(leaf.get("released", [])) or "nothing"
    print(f"PROVEN: record {leaf.get('seq')} ({leaf.get('recorded_at')}, "
          f"{leaf.get('organization')}, purpose {leaf.get('purpose')}, outcome "
          f"{leaf.get('outcome')}; released {released})"
          + (f", naming {args.subject}," if args.subject else "")
          + f" is leaf {bundle['leafIndex']} of the log {cp.origin}, in its checkpoint of "
          f"{_records(cp.size)} signed by {args.key.split('+')[0]}")
    return 0


def cmd_audit_keygen(args: argparse.Namespace) -> int:
    """Write a new Ed25519 note signer key to ``--out`` (mode 0600); print its verifier key."""
    import os

    from gateway.audit.checkpoint import NoteError, Signer

    try:
        signer = Signer.generate(args.name)
    except NoteError as exc:
        print(f"credit-gateway: {exc}", file=sys.stderr)
        return 2
    try:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        print(f"credit-gateway: {args.out}: {exc.strerror}", file=sys.stderr)
        return 2
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(signer.private_key_string() + "\n")
    print(signer.verifier)
    return 0


def register_audit_commands(commands, default_config: str) -> None:
    audit = commands.add_parser("audit", help="the access audit trail and its signed checkpoints")
    sub = audit.add_subparsers(dest="audit_command", required=True)

    verify = sub.add_parser(
        "verify", help="walk the hash chain and the Merkle tree and report the first altered, "
        "inserted or deleted record (exit 1); with --checkpoint, prove the trail is an "
        "append-only extension of that signed checkpoint")
    verify.add_argument("--config", type=Path, default=default_config)
    verify.add_argument("--checkpoint", type=Path, metavar="FILE",
                        help="a signed checkpoint note kept outside the database")
    verify.add_argument("--key", type=_key_argument, metavar="VKEY",
                        help="the log's verifier key (or a file holding it); default: the "
                        "configuration's [transparency] key")
    verify.set_defaults(handler=cmd_audit_verify)

    prune = sub.add_parser(
        "prune", help="remove the records older than retention_days (the oldest first, "
        "recorded in the trail; the Merkle tree keeps their hashes); --dry-run only counts them")
    prune.add_argument("--config", type=Path, default=default_config)
    prune.add_argument("--dry-run", action="store_true", help="change nothing, report only")
    prune.set_defaults(handler=cmd_audit_prune)

    checkpoint = sub.add_parser("checkpoint", help="sign and publish the tree's checkpoint now "
                                "(with the witnesses' cosignatures); print it")
    checkpoint.add_argument("--config", type=Path, default=default_config)
    checkpoint.set_defaults(handler=cmd_audit_checkpoint)

    prove = sub.add_parser("prove", help="print a record's inclusion proof (JSON, with the "
                           "record and every subject's salt: for auditors)")
    prove.add_argument("--config", type=Path, default=default_config)
    prove.add_argument("--seq", type=int, required=True, help="the record's number")
    prove.add_argument("--checkpoint", type=Path, metavar="FILE",
                       help="prove against this checkpoint (default: the latest)")
    prove.set_defaults(handler=cmd_audit_prove)

    check = sub.add_parser("check-proof", help="offline: check a proof (from accessHistory, "
                           "auditTrail or audit prove) with the log's verifier key alone")
    check.add_argument("proof", help="the proof's JSON file ('-': standard input)")
    check.add_argument("--key", type=_key_argument, required=True, metavar="VKEY",
                       help="the log's verifier key (or a file holding it)")
    check.add_argument("--subject", metavar="USCC",
                       help="also check that the record names this subject")
    check.set_defaults(handler=cmd_audit_check_proof)

    keygen = sub.add_parser("keygen", help="make an Ed25519 checkpoint (or witness) key")
    keygen.add_argument("--name", required=True, help="the key's name: the log's origin")
    keygen.add_argument("--out", type=Path, required=True, help="the signer key file (new)")
    keygen.set_defaults(handler=cmd_audit_keygen)
