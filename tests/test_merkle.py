"""gateway/audit/merkle.py against RFC 9162 §2.1 and the reference test data.

The known answers are those of the Certificate Transparency implementations
(transparency-dev/merkle proof/verify_test.go, the same eight leaves as
certificate-transparency-go): roots of every size 0..8, inclusion proofs and
consistency proofs.  They are checked against what the module computes, and
the module's own recursive definitions are checked against each other for every
size up to 64 (proofs) and 300 (frontier).
"""

import hashlib
from itertools import product

import pytest

from gateway.audit import merkle
from gateway.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

h = bytes.fromhex

LEAVES = [h(x) for x in ("", "00", "10", "2021", "3031", "40414243",
                         "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
ROOTS = [h(x) for x in (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]
# (leaf index from 0, tree size, proof)
INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (0, 1, []),
]
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]
REF = [leaf_hash(d) for d in LEAVES]


def flip(b: bytes, i: int = 0, bit: int = 0) -> bytes:
    return b[:i] + bytes([b[i] ^ (1 << bit)]) + b[i + 1:]


def test_hashing_primitives():
    assert EMPTY_ROOT == hashlib.sha256(b"").digest() == root([])
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    # A one-leaf tree's root is its leaf hash: SHA-256(0x00).
    assert root([leaf_hash(b"")]) == hashlib.sha256(b"\x00").digest() == ROOTS[1]


def test_reference_roots_for_every_size():
    for n in range(9):
        assert root(REF[:n]) == ROOTS[n], n
        assert Frontier.of(REF[:n]).root() == ROOTS[n], n


def test_rfc9162_example_tree_shape():
    # §2.1.5: the 7-leaf tree splits 4 + (2 + 1); with 8 leaves it is perfect.
    a, b, c, d, e, f, g, j = REF
    assert root(REF[:7]) == node_hash(node_hash(node_hash(a, b), node_hash(c, d)),
                                      node_hash(node_hash(e, f), g))
    assert root(REF) == node_hash(node_hash(node_hash(a, b), node_hash(c, d)),
                                  node_hash(node_hash(e, f), node_hash(g, j)))


@pytest.mark.parametrize("index,size,proof", INCLUSION)
def test_reference_inclusion_proofs(index, size, proof):
    proof = [h(p) for p in proof]
    assert inclusion_proof(REF, index, size) == proof
    assert verify_inclusion(index, size, REF[index], proof, ROOTS[size])


@pytest.mark.parametrize("first,second,proof", CONSISTENCY)
def test_reference_consistency_proofs(first, second, proof):
    proof = [h(p) for p in proof]
    assert consistency_proof(REF, first, second) == proof
    assert verify_consistency(first, second, ROOTS[first], ROOTS[second], proof)


def _leaves(n):
    return [leaf_hash(i.to_bytes(2, "big") + b"record") for i in range(n)]


MANY = _leaves(64)
MANY_ROOTS = [root(MANY[:n]) for n in range(65)]


def test_every_inclusion_proof_verifies_and_no_tampered_one_does():
    for size in range(1, 65):
        r = MANY_ROOTS[size]
        for i in range(size):
            p = inclusion_proof(MANY, i, size)
            assert len(p) <= (size - 1).bit_length()
            assert verify_inclusion(i, size, MANY[i], p, r), (i, size)
            assert not verify_inclusion(i, size, flip(MANY[i]), p, r)
            assert not verify_inclusion(i, size, MANY[i], p, flip(r, 31, 7))
            for k in range(len(p)):
                assert not verify_inclusion(i, size, MANY[i], p[:k] + [flip(p[k], k % 32, 3)] + p[k + 1:], r)
            if p:
                assert not verify_inclusion(i, size, MANY[i], p[:-1], r)
                assert not verify_inclusion(i, size, MANY[i], p[1:], r)
            assert not verify_inclusion(i, size, MANY[i], p + [r], r)
            assert not verify_inclusion(i, size, MANY[i], [r] + p, r)
            for j in range(size):
                if j != i:
                    assert not verify_inclusion(j, size, MANY[i], p, r), (i, j, size)


def test_every_consistency_proof_verifies_and_no_tampered_one_does():
    for first, second in product(range(65), repeat=2):
        if first > second:
            continue
        r1, r2 = MANY_ROOTS[first], MANY_ROOTS[second]
        p = consistency_proof(MANY, first, second)
        assert verify_consistency(first, second, r1, r2, p), (first, second)
        if first == 0:
            continue
        if first == second:
            assert not verify_consistency(first, second, r1, flip(r2), p)
            assert not verify_consistency(first, second, r1, r2, [r1])
            continue
        assert p
        assert not verify_consistency(first, second, flip(r1), r2, p)
        assert not verify_consistency(first, second, r1, flip(r2, 5), p)
        assert not verify_consistency(first, second, r2, r1, p)
        assert not verify_consistency(second, first, r2, r1, p)
        assert not verify_consistency(first, second, r1, r2, [])
        assert not verify_consistency(first, second, r1, r2, p[:-1])
        assert not verify_consistency(first, second, r1, r2, p + [r2])
        assert not verify_consistency(first, second, r1, r2, [r1] + p)
        for k in range(len(p)):
            assert not verify_consistency(first, second, r1, r2, p[:k] + [flip(p[k], 0, 4)] + p[k + 1:])
        if first > 1:
            assert not verify_consistency(first - 1, second, r1, r2, p)
        if first + 1 < second:
            assert not verify_consistency(first + 1, second, r1, r2, p)


def test_a_rewritten_leaf_breaks_consistency_with_the_earlier_root():
    rewritten = list(MANY)
    rewritten[3] = leaf_hash(b"a different record")
    for first in range(4, 40):
        p = consistency_proof(rewritten, first, 64)
        assert not verify_consistency(first, 64, MANY_ROOTS[first], root(rewritten), p)


def test_malformed_input_is_refused_not_raised():
    assert not verify_inclusion(0, 0, REF[0], [], ROOTS[0])
    assert not verify_inclusion(1, 1, REF[0], [], ROOTS[1])
    assert not verify_inclusion(-1, 8, REF[0], [], ROOTS[8])
    assert not verify_inclusion(0, 1, b"short", [], b"short")
    assert not verify_inclusion(0, 2, REF[0], [b""], ROOTS[2])
    assert not verify_consistency(2, 1, ROOTS[2], ROOTS[1], [])
    assert not verify_consistency(1, 2, ROOTS[1], ROOTS[2], [b"x" * 31])
    assert not verify_consistency(0, 1, ROOTS[0], ROOTS[1], [ROOTS[0]])
    with pytest.raises(ValueError):
        inclusion_proof(REF, 8)
    with pytest.raises(ValueError):
        consistency_proof(REF, 5, 9)


def test_frontier_root_matches_recomputed_root_up_to_300():
    leaves = _leaves(300)
    f = Frontier()
    assert f.root() == EMPTY_ROOT and f.to_bytes() == b""
    for n, leaf in enumerate(leaves, start=1):
        f = f.append(leaf)
        assert f.size == n
        assert len(f.hashes) == n.bit_count() <= n.bit_length()
        assert f.root() == root(leaves[:n]), n
        assert Frontier.from_bytes(n, f.to_bytes()) == f
    assert Frontier.of(leaves[:100]).extend(leaves[100:]) == f


def test_frontier_append_is_logarithmic(monkeypatch):
    calls = []
    real = merkle.node_hash
    monkeypatch.setattr(merkle, "node_hash", lambda a, b: calls.append(1) or real(a, b))
    f = Frontier.of(_leaves(1023))
    calls.clear()
    f.append(leaf_hash(b"one more"))  # 1023 = 0b1111111111: the worst case, 10 merges
    assert len(calls) == 10


def test_frontier_refuses_inconsistent_state():
    with pytest.raises(ValueError):
        Frontier(3, (REF[0],))
    with pytest.raises(ValueError):
        Frontier.from_bytes(3, b"\x00" * 32)
    with pytest.raises(ValueError):
        Frontier().append(b"short")


def test_proofs_from_stored_subtrees_are_the_proofs_from_the_leaves():
    """What a store answers from the subtrees ``extend_with_nodes`` made, reading
    only those ``proof_nodes`` names, is the RFC's proof over the leaves."""
    from gateway.audit.merkle import (
        Frontier, consistency_proof, consistency_proof_from, inclusion_proof,
        inclusion_proof_from, leaf_hash, proof_nodes, root, root_from,
    )

    for n in range(1, 40):
        leaves = [leaf_hash(bytes([i])) for i in range(n)]
        frontier, nodes = Frontier().extend_with_nodes(leaves)
        stored = {(level, idx): h for level, idx, h in nodes}
        assert frontier == Frontier.of(leaves) and frontier.root() == root(leaves)
        assert [stored[c] for c in Frontier.coordinates(n)] == list(frontier.hashes)
        assert root_from(stored, n) == root(leaves)
        for m in range(n):
            wanted = {c: stored[c] for c in proof_nodes("inclusion", m, n)}
            assert inclusion_proof_from(wanted, m, n) == inclusion_proof(leaves, m)
        for m in range(n + 1):
            wanted = {c: stored[c] for c in proof_nodes("consistency", m, n)}
            assert consistency_proof_from(wanted, m, n) == consistency_proof(leaves, m)
