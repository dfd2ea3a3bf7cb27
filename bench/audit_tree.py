"""What the audit trail's Merkle tree costs: appends, proofs, verifying a million records.

``python -m bench.audit_tree [--before DIR] [--postgres URL] [--rounds N] [--quick]``
writes a markdown report to ``bench/results/audit-tree-<UTC date-time>.md`` and prints it.

``--before DIR`` is a checkout of the gateway before the tree (a second git
worktree); this file and ``bench/audit_cost.py`` are copied into it (untracked)
and every measurement that both versions can make runs there too, each in a
fresh process, the two versions' rounds interleaved:

1. Append cost per record (``AuditStore.append``; one appender, a lone
   request's append, and 64 concurrent appenders per process, so the
   group-commit writer makes batches as under load: ``LAYOUTS``), on SQLite and on PostgreSQL (a database of its own, dropped after),
   one process and two processes appending to one log; CPU time (the
   appending processes', writer threads included; not the PostgreSQL server's)
   and wall time per record, and the batch sizes the writer made.
2. Proofs (tree version only): ``AuditStore.record_proofs`` for 1 record and
   for a page of 50, and ``AuditStore.consistency_proof``, at tree sizes
   1,000, 100,000 and 1,000,000 of one SQLite trail (filled by ``append`` in
   big batches; the fill is timed too).
3. ``AuditStore.verify`` of that trail against a signed checkpoint of its head
   (wall, CPU, peak RSS of a process doing only that); the before version
   verifies a trail of its own of the same size (its chain only).
4. Workload 1 (``bench.workload.ONE``) in process through each version's
   ``create_app`` over its own demo data: CPU ms per request and requests per
   second at concurrency 1 and 32 (``bench.audit_cost.run``).

Workers (``python -m bench.audit_tree worker KIND JSON``) print one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
COPIED = ("bench/audit_tree.py", "bench/audit_cost.py")
SIZES = (1_000, 100_000, 1_000_000)
# (processes, concurrent appenders per process): a lone request's append, and under load.
LAYOUTS = ((1, 1), (1, 64), (2, 64))
AGAIN = "tree again"  # workload 1's A/A: this checkout a second time


# -- workers: run in the version under test ---------------------------------------------

def entry(n: int):
    """A release record like workload 1's: one enterprise, the fields it releases."""
    from gateway.audit.entry import AuditEntry

    return AuditEntry(
        kind="release", request_id=f"bench-{n}", recorded_at=datetime.now(UTC),
        client_id="hz-market-app", organization="惠州市市场监督管理局", purpose="SUPERVISION",
        legal_basis=("statutory_duty",), subjects=(f"91441300{n:09d}X",),
        released=("Entity.registration", "Entity.penalties", "Entity.taxRatings",
                  "Entity.licences", "Entity.dishonestDebtors"),
        masked=("Registration.legalRepresentativeId",), denied=(), withheld=0,
        sources=("hz-amr", "hz-tax"), outcome="ok", latency_ms=1.234)


def has_tree() -> bool:
    from gateway.audit.store import AuditStore

    return hasattr(AuditStore, "record_proofs")


async def _append(store, first: int, count: int, appenders: int) -> None:
    async def appender(k: int) -> None:
        for n in range(first + k, first + count, appenders):
            await store.append(entry(n))
    await asyncio.gather(*(appender(k) for k in range(appenders)))


async def worker_migrate(args: dict) -> dict:
    from gateway.audit.store import AuditStore

    async with AuditStore(args["url"]) as store:
        await store.migrate()
    return {"tree": has_tree()}


async def worker_append(args: dict) -> dict:
    """Warm up, wait for ``start_at`` (the other process), append ``records``."""
    from gateway.audit.store import AuditStore

    store = AuditStore(args["url"])
    batches: list[int] = []
    commit = store._writer._commit  # counted, not changed: the batch sizes the writer makes

    async def counted(entries):
        batches.append(len(entries))
        return await commit(entries)

    store._writer._commit = counted
    base = args["first"]
    async with store:
        await _append(store, base, 64, args["appenders"])
        batches.clear()
        time.sleep(max(0.0, args["start_at"] - time.time()))
        wall, cpu = time.perf_counter(), time.process_time()
        await _append(store, base + 64, args["records"], args["appenders"])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        ended = time.time()
    return {"tree": has_tree(), "wall_s": wall, "cpu_s": cpu, "ended": ended,
            "records": args["records"], "batches": len(batches),
            "batch_median": statistics.median(batches) if batches else 0}


async def worker_fill(args: dict) -> dict:
    """Append up to ``size`` records in batches of ``batch`` (one transaction each)."""
    from gateway.audit.store import AuditStore

    async with AuditStore(args["url"], max_batch=args["batch"]) as store:
        newest = await store.query(limit=1)
        have = newest[0].seq if newest else 0
        wall, cpu = time.perf_counter(), time.process_time()
        while have < args["size"]:
            step = min(args["batch"], args["size"] - have)
            await asyncio.gather(*(store.append(entry(have + k)) for k in range(step)))
            have += step
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"size": have, "wall_s": wall, "cpu_s": cpu, "added": args["added"]}


async def worker_proofs(args: dict) -> dict:
    """Median ms of ``repeats`` calls: proofs of 1 and of 50 records, consistency proofs."""
    import random

    from gateway.audit.store import AuditStore

    rng = random.Random(16)
    async with AuditStore(args["url"]) as store:
        head = await store.tree_head()
        size = head.size
        times: dict[str, list[float]] = {"1 record": [], "50 records": [], "consistency n/2 → n": [],
                                         "consistency n−1 → n": []}
        for _ in range(args["repeats"]):
            seq = rng.randrange(1, size - 50)
            page = await store.query(after_seq=seq - 1, limit=50, newest_first=False)
            one = page[:1]
            for name, call in (("1 record", lambda: store.record_proofs(one, size)),
                               ("50 records", lambda: store.record_proofs(page, size)),
                               ("consistency n/2 → n", lambda: store.consistency_proof(
                                   rng.randrange(size // 4, size // 2), size)),
                               ("consistency n−1 → n", lambda: store.consistency_proof(
                                   size - 1, size))):
                started = time.perf_counter()
                result = await call()
                times[name].append((time.perf_counter() - started) * 1000)
                assert result, name
    return {"size": size, **{k: statistics.median(v) for k, v in times.items()}}


async def worker_verify(args: dict) -> dict:
    """Sign a checkpoint of the head (tree version), then time ``verify`` alone."""
    from gateway.audit.store import AuditStore

    async with AuditStore(args["url"]) as store:
        checkpoint = None
        if has_tree():
            from gateway.audit.checkpoint import (
                Checkpoint, Signer, open_checkpoint, sign_checkpoint)

            signer = Signer.generate("bench.example/audit")
            head = await store.tree_head()
            note = sign_checkpoint(Checkpoint(signer.name, head.size, head.root), signer)
            checkpoint = open_checkpoint(note, signer.verifier, origin=signer.name)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        wall, cpu = time.perf_counter(), time.process_time()
        report = await (store.verify(checkpoint) if checkpoint else store.verify())
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert report.ok, report
    return {"tree": has_tree(), "records": report.records, "wall_s": wall, "cpu_s": cpu,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_before_mb": rss_before / 1024, "checkpoint": checkpoint is not None}


def worker_demo(args: dict) -> dict:  # create_demo_data runs its own event loop
    from demo.generate import create_demo_data

    return {"config": str(create_demo_data(Path(args["dir"]), size=2000))}


async def worker_workload(args: dict) -> dict:
    from bench.apps import bench_settings
    from bench.audit_cost import run
    from bench.workload import ONE
    from demo.population import build_population
    from gateway.settings import load_settings

    settings = bench_settings(load_settings(Path(args["config"]), env={}))
    usccs = [e.uscc for e in build_population(2000, 500).enterprises][: args["requests"]]
    p50, rps, cpu_ms = await run(settings, True, usccs, args["concurrency"], query=ONE,
                                 warmup=100)
    return {"p50_ms": p50, "rps": rps, "cpu_ms": cpu_ms}


WORKERS = {name[len("worker_"):]: fn for name, fn in globals().items() if name.startswith("worker_")}


# -- the driver ---------------------------------------------------------------------------

def work(checkout: Path, kind: str, **args) -> subprocess.Popen:
    return subprocess.Popen([PYTHON, "-m", "bench.audit_tree", "worker", kind, json.dumps(args)],
                            cwd=checkout, stdout=subprocess.PIPE, text=True)


def result(process: subprocess.Popen) -> dict:
    out, _ = process.communicate()
    if process.returncode:
        raise RuntimeError(f"worker failed ({process.returncode}): {process.args}")
    return json.loads(out.strip().splitlines()[-1])


def one(checkout: Path, kind: str, **args) -> dict:
    return result(work(checkout, kind, **args))


def postgres_database(admin_url: str, name: str, create: bool) -> str:
    """Create (or drop) database ``name`` on the server of ``admin_url``; its async URL."""
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if create:
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(go())
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def append_round(checkout: Path, url: str, processes: int, records: int, appenders: int) -> dict:
    one(checkout, "migrate", url=url)
    start_at = time.time() + 3.0  # after every worker's imports and warm-up
    runs = [result(p) for p in [
        work(checkout, "append", url=url, first=k * 10**9, records=records,
             appenders=appenders, start_at=start_at) for k in range(processes)]]
    total = sum(r["records"] for r in runs)
    wall = max(r["ended"] for r in runs) - start_at
    return {"cpu_us": sum(r["cpu_s"] for r in runs) / total * 1e6,
            "wall_us": wall / total * 1e6, "batch": statistics.median(r["batch_median"] for r in runs)}


def appends(checkouts: dict[str, Path], stores: dict[str, str], args, tmp: Path) -> list[str]:
    cells: dict[tuple, list[dict]] = {}
    for round_ in range(args.rounds):
        for store, admin in stores.items():
            for processes, appenders in LAYOUTS:
                for version, checkout in checkouts.items():
                    name = f"bench_audit_tree_{uuid.uuid4().hex[:8]}"
                    if admin is None:
                        url = f"sqlite+aiosqlite:///{tmp / (name + '.db')}"
                    else:
                        url = postgres_database(admin, name, create=True)
                    try:
                        records = args.records if appenders > 1 else args.records // 4
                        cells.setdefault((store, processes, appenders, version), []).append(
                            append_round(checkout, url, processes, records, appenders))
                    finally:
                        if admin is None:
                            for suffix in ("", "-wal", "-shm"):
                                Path(url.split(":///", 1)[1] + suffix).unlink(missing_ok=True)
                        else:
                            postgres_database(admin, name, create=False)
        print(f"append round {round_ + 1} done", file=sys.stderr)
    lines = ["| store | processes × appenders | version | CPU µs/record | wall µs/record "
             "| median batch |", "|---|---|---|---|---|---|"]
    for (store, processes, appenders, version), runs in cells.items():
        lines.append(f"| {store} | {processes} × {appenders} | {version} "
                     f"| {statistics.median(r['cpu_us'] for r in runs):.0f} "
                     f"| {statistics.median(r['wall_us'] for r in runs):.0f} "
                     f"| {statistics.median(r['batch'] for r in runs):.0f} |")
    return lines


def proofs_and_verify(checkouts: dict[str, Path], args, tmp: Path) -> list[str]:
    """Fill one SQLite trail per version up to each size; proofs (tree only); verify at the last."""
    urls = {v: f"sqlite+aiosqlite:///{tmp / f'million-{v}.db'}" for v in checkouts}
    fills, proofs, verifies = [], [], []
    for version, checkout in checkouts.items():
        one(checkout, "migrate", url=urls[version])
    have = 0
    for size in args.sizes:
        for version, checkout in checkouts.items():
            fill = one(checkout, "fill", url=urls[version], size=size, batch=5000, added=size - have)
            fills.append((version, fill))
            print(f"filled {version} to {size}: {fill}", file=sys.stderr)
            if version == "tree":
                proofs.append(one(checkout, "proofs", url=urls[version], repeats=args.repeats))
        have = size
    for version, checkout in checkouts.items():
        verifies.append((version, one(checkout, "verify", url=urls[version])))
        print(f"verified {version}: {verifies[-1][1]}", file=sys.stderr)
    lines = ["Filling (`append`, batches of 5,000, one process):", "",
             "| version | to size | records added | CPU µs/record | wall µs/record |", "|---|---|---|---|---|"]
    for version, fill in fills:
        lines.append(f"| {version} | {fill['size']:,} | {fill['added']:,} "
                     f"| {fill['cpu_s'] / fill['added'] * 1e6:.0f} | {fill['wall_s'] / fill['added'] * 1e6:.0f} |")
    names = [k for k in proofs[0] if k != "size"] if proofs else []
    lines += ["", f"Proofs (tree version, median ms of {args.repeats} calls, each from a fresh "
              "connection of the store's pool):", "",
              "| tree size | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for p in proofs:
        lines.append(f"| {p['size']:,} | " + " | ".join(f"{p[n]:.2f}" for n in names) + " |")
    lines += ["", "Verify (`AuditStore.verify`, a process doing only that):", "",
              "| version | records | against a checkpoint | wall s | CPU s | µs/record (wall) | peak RSS MB |",
              "|---|---|---|---|---|---|---|"]
    for version, v in verifies:
        lines.append(f"| {version} | {v['records']:,} | {'yes' if v['checkpoint'] else 'no (chain only)'} "
                     f"| {v['wall_s']:.1f} | {v['cpu_s']:.1f} | {v['wall_s'] / v['records'] * 1e6:.1f} "
                     f"| {v['peak_rss_mb']:.0f} |")
    return lines


def workload(checkouts: dict[str, Path], args, tmp: Path) -> list[str]:
    configs = {v: one(c, "demo", dir=str(tmp / f"demo-{v.replace(' ', '-')}"))["config"]
               for v, c in checkouts.items()}
    cells: dict[tuple, list[dict]] = {}
    for round_ in range(args.rounds):
        for concurrency in (1, 32):
            order = list(checkouts.items())
            for version, checkout in (order if round_ % 2 == 0 else reversed(order)):
                cells.setdefault((concurrency, version), []).append(one(
                    checkout, "workload", config=configs[version], requests=args.requests,
                    concurrency=concurrency))
        print(f"workload round {round_ + 1} done", file=sys.stderr)
    lines = ["| concurrency | version | CPU ms/request | req/s (wall) | p50 ms |", "|---|---|---|---|---|"]
    for (concurrency, version), runs in sorted(cells.items()):
        lines.append(f"| {concurrency} | {version} | {statistics.median(r['cpu_ms'] for r in runs):.3f} "
                     f"| {statistics.median(r['rps'] for r in runs):.0f} "
                     f"| {statistics.median(r['p50_ms'] for r in runs):.2f} |")
    if "before" in checkouts:
        for concurrency in (1, 32):
            before = statistics.median(r["cpu_ms"] for r in cells[(concurrency, "before")])
            for version in checkouts.keys() - {"before"}:
                cpu = statistics.median(r["cpu_ms"] for r in cells[(concurrency, version)])
                lines.append(f"\nConcurrency {concurrency}: CPU per request of {version} against "
                             f"before: {cpu / before * 100 - 100:+.1f}%.")
    return lines


def load_line() -> str:
    return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="a checkout of the gateway before the tree")
    parser.add_argument("--postgres", help="admin URL of a PostgreSQL server (a database is "
                        "created and dropped), e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--records", type=int, default=4000, help="appended per process and round")
    parser.add_argument("--requests", type=int, default=300, help="workload 1 requests per run")
    parser.add_argument("--repeats", type=int, default=20, help="proof calls per kind and size")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--parts", nargs="+", default=["append", "proofs", "workload"],
                        choices=["append", "proofs", "workload"])
    parser.add_argument("--aa", action="store_true", help=f"workload 1 also on {AGAIN!r}, a "
                        "second identical run of this checkout: the noise floor")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.records, args.requests, args.repeats = 1, 300, 30, 3
        args.sizes = [1_000, 3_000]
    checkouts = {"tree": HERE}
    if args.before:
        for name in COPIED:
            shutil.copyfile(HERE / name, args.before / name)
        checkouts = {"before": args.before.resolve(), "tree": HERE}
    stores = {"SQLite": None, **({"PostgreSQL": args.postgres} if args.postgres else {})}
    started = datetime.now(UTC)
    report = [f"# Audit tree cost, {started:%Y-%m-%d %H:%M} UTC", "",
              f"Command: `python -m bench.audit_tree {' '.join(argv if argv is not None else sys.argv[1:])}`",
              "", f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
              f"{platform.python_version()}; {load_line()} at the start (shared with other "
              "helpers running test suites on the same 2 cores). Versions: "
              + ", ".join(f"{v} = `{_commit(c)}`" for v, c in checkouts.items()) + "."]
    with tempfile.TemporaryDirectory() as tmp:
        if "append" in args.parts:
            report += ["", f"## 1. Append cost ({args.records:,} records per process and round, "
                       "a quarter of that with 1 appender; "
                       f"{args.rounds} interleaved rounds, medians)", "", *appends(checkouts, stores, args, Path(tmp)),
                       "", f"({load_line()} after this part.)"]
        if "proofs" in args.parts:
            report += ["", "## 2–3. Proofs and verifying, SQLite", "",
                       *proofs_and_verify(checkouts, args, Path(tmp)), "", f"({load_line()} after this part.)"]
        if "workload" in args.parts:
            report += ["", f"## 4. Workload 1 in process ({args.requests} requests per run, "
                       f"{args.rounds} rounds, the versions' order alternating, medians)", "",
                       *workload({**checkouts, **({AGAIN: HERE} if args.aa else {})}, args, Path(tmp)), "", f"({load_line()} after this part.)"]
    text = "\n".join(report) + "\n"
    output = args.output or HERE / "bench" / "results" / f"audit-tree-{started:%Y-%m-%d-%H%M}.md"
    if not args.quick or args.output:
        output.write_text(text, encoding="utf-8")
    print(text)
    return 0


def _commit(checkout: Path) -> str:
    return subprocess.run(["git", "log", "-1", "--format=%h %s"], cwd=checkout, capture_output=True,
                          text=True).stdout.strip()[:60]


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        done = WORKERS[sys.argv[2]](json.loads(sys.argv[3]))
        print(json.dumps(asyncio.run(done) if asyncio.iscoroutine(done) else done))
        sys.exit(0)
    sys.exit(main())
