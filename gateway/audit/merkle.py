"""RFC 9162 Merkle tree hashing, proofs and a compact frontier.

The audit trail is made verifiable from outside the way Certificate
Transparency logs are: its records are the leaves of an RFC 9162 §2.1 Merkle
tree (SHA-256), a signed checkpoint (gateway/audit/checkpoint.py) commits to
the root at a tree size, and anyone holding a record can check an inclusion
proof against it; anyone holding two checkpoints can check a consistency proof
that the later tree extends the earlier one (append-only, nothing rewritten).

Why not a library: pymerkle (RFC 9162-compatible, in-memory and SQLite
trees of its own) was the candidate; this tree must live in the audit
database itself (SQLite or PostgreSQL), grow inside the append's transaction
of whichever process appends, and answer proofs from subtrees stored there
in one query. What that needs is the RFC's hashing, its proof recursions
over stored subtrees and a frontier, checked against the transparency-dev
test vectors (tests/test_merkle.py): a few hundred lines, written here.

Contracts
---------
* Leaves are numbered from 0 (RFC 9162 ``leaf_index``).  Every function below
  except :func:`leaf_hash` takes *leaf hashes* (32 bytes each), not leaf data:
  the store keeps or recomputes the hashes, proofs never need the data.
* ``leaf_hash(d) = SHA-256(0x00 || d)``, ``node_hash(l, r) = SHA-256(0x01 ||
  l || r)`` (§2.1.1); the root of the empty tree is ``SHA-256("")``; for n > 1
  leaves the tree splits at k, the largest power of two smaller than n.
* Proof *generation* (:func:`inclusion_proof`, :func:`consistency_proof`) takes
  the full list of leaf hashes, O(n) time; it is for the log side.
* Proof *verification* (:func:`verify_inclusion`, :func:`verify_consistency`)
  needs only sizes, hashes and the proof, O(log n), and returns ``False`` (never
  raises) for any malformed or wrong input: a hash of the wrong length, an index
  out of range, a proof with an element too many or too few.
* :class:`Frontier` holds the roots of the perfect subtrees covering the first
  n leaves (one per set bit of n, at most floor(log2 n) + 1 hashes, largest
  first).  An append costs O(log n) hashes and the root is computed from it
  alone, so a store can keep it in its head row and update it in the same
  transaction as the records it covers.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
Node = tuple[int, int, bytes]  # (level, idx, hash) of a perfect subtree


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 §2.1.1: the hash of a leaf, ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: an interior node, ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1): k < n <= 2k."""
    return 1 << ((n - 1).bit_length() - 1)


def root(hashes: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH(D[n]) over the given leaf hashes (empty: SHA-256(""))."""
    n = len(hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return hashes[0]
    k = _split(n)
    return node_hash(root(hashes[:k]), root(hashes[k:]))


def inclusion_proof(hashes: Sequence[bytes], index: int, size: int | None = None) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n]) for leaf ``index`` in the tree of the
    first ``size`` leaves (default: all), ordered from the leaf up."""
    size = len(hashes) if size is None else size
    if size > len(hashes):
        raise ValueError(f"no leaf {index} in a tree of {size} leaves")
    return [root(hashes[lo:hi]) for lo, hi in _proof_ranges("inclusion", index, size)]


def consistency_proof(hashes: Sequence[bytes], first: int, second: int | None = None) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(m, D[n]) between the trees of the first ``first``
    and the first ``second`` leaves (default: all).  Empty when
    ``first`` is 0 or equal to ``second``."""
    second = len(hashes) if second is None else second
    if second > len(hashes):
        raise ValueError(f"no consistency proof from {first} to {second} leaves")
    return [root(hashes[lo:hi]) for lo, hi in _proof_ranges("consistency", first, second)]


# Proofs from stored subtrees --------------------------------------------------
# A store that keeps every perfect subtree (``Frontier.extend_with_nodes``)
# answers a proof in two steps: :func:`proof_nodes` names the ``(level, idx)``
# it needs (O(log n) of them), the store reads them in one query, and
# :func:`inclusion_proof_from` / :func:`consistency_proof_from` build the RFC
# 9162 proof from that mapping (``KeyError`` when one is missing).

NodeMap = dict[tuple[int, int], bytes]


def _range_root(lo: int, hi: int, nodes: NodeMap) -> bytes:
    """MTH of leaves ``lo .. hi - 1`` (a range of the RFC 9162 split) from perfect subtrees."""
    n = hi - lo
    if n & (n - 1) == 0 and lo % n == 0:
        level = n.bit_length() - 1
        return nodes[(level, lo >> level)]
    k = _split(n)
    return node_hash(_range_root(lo, lo + k, nodes), _range_root(lo + k, hi, nodes))


def _range_coordinates(lo: int, hi: int, out: set[tuple[int, int]]) -> None:
    n = hi - lo
    if n & (n - 1) == 0 and lo % n == 0:
        level = n.bit_length() - 1
        out.add((level, lo >> level))
        return
    k = _split(n)
    _range_coordinates(lo, lo + k, out)
    _range_coordinates(lo + k, hi, out)


def _inclusion_ranges(m: int, lo: int, hi: int) -> list[tuple[int, int]]:
    """PATH(m, D[lo:hi]) as the leaf ranges whose roots it lists, from the leaf up."""
    ranges = []
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    return ranges[::-1]


def _consistency_ranges(m: int, lo: int, hi: int, b: bool) -> list[tuple[int, int]]:
    """SUBPROOF(m, D[lo:hi], b) as leaf ranges (RFC 9162 §2.1.4.1)."""
    n = hi - lo
    if m == n:
        return [] if b else [(lo, hi)]
    k = _split(n)
    if m <= k:
        return _consistency_ranges(m, lo, lo + k, b) + [(lo + k, hi)]
    return _consistency_ranges(m - k, lo + k, hi, False) + [(lo, lo + k)]


def _proof_ranges(kind: str, a: int, size: int) -> list[tuple[int, int]]:
    if kind == "inclusion":
        if not 0 <= a < size:
            raise ValueError(f"no leaf {a} in a tree of {size} leaves")
        return _inclusion_ranges(a, 0, size)
    if not 0 <= a <= size:
        raise ValueError(f"no consistency proof from {a} to {size} leaves")
    return [] if a in (0, size) else _consistency_ranges(a, 0, size, True)


def proof_nodes(kind: str, a: int, size: int) -> set[tuple[int, int]]:
    """The perfect subtrees an ``"inclusion"`` proof of leaf ``a`` or a
    ``"consistency"`` proof from ``a`` leaves needs, in a tree of ``size``."""
    out: set[tuple[int, int]] = set()
    for lo, hi in _proof_ranges(kind, a, size):
        _range_coordinates(lo, hi, out)
    return out


def inclusion_proof_from(nodes: NodeMap, index: int, size: int) -> list[bytes]:
    """:func:`inclusion_proof` from the subtrees :func:`proof_nodes` named."""
    return [_range_root(lo, hi, nodes) for lo, hi in _proof_ranges("inclusion", index, size)]


def consistency_proof_from(nodes: NodeMap, first: int, second: int) -> list[bytes]:
    """:func:`consistency_proof` from the subtrees :func:`proof_nodes` named."""
    return [_range_root(lo, hi, nodes) for lo, hi in _proof_ranges("consistency", first, second)]


def root_from(nodes: NodeMap, size: int) -> bytes:
    """MTH of the first ``size`` leaves from the perfect subtrees of
    ``Frontier.coordinates(size)``."""
    return EMPTY_ROOT if size == 0 else _range_root(0, size, nodes)


def _well_formed(*hashes: bytes) -> bool:
    return all(isinstance(h, (bytes, bytearray)) and len(h) == HASH_SIZE for h in hashes)


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes | None:
    """RFC 9162 §2.1.3.2: the root an inclusion proof leads to, or ``None`` if the
    proof cannot be one for leaf ``index`` of a tree of ``size`` leaves."""
    if not (0 <= index < size) or not _well_formed(leaf, *proof):
        return None
    fn, sn, r = index, size - 1, bytes(leaf)
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root_hash: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` show that ``leaf`` (a leaf *hash*) is
    leaf ``index`` of the tree of ``size`` leaves whose root is ``root_hash``?"""
    r = root_from_inclusion_proof(index, size, leaf, proof)
    return r is not None and _well_formed(root_hash) and hmac.compare_digest(r, root_hash)


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: does ``proof`` show that the tree of ``second`` leaves
    with root ``second_root`` extends the tree of ``first`` leaves with root
    ``first_root``?  ``first == second`` needs an empty proof and equal roots;
    ``first == 0`` needs an empty proof (every tree extends the empty one), as in
    the transparency-dev/merkle verifier."""
    if not 0 <= first <= second or not _well_formed(*proof):
        return False
    if first == second:
        return not proof and _well_formed(first_root) and hmac.compare_digest(first_root, second_root)
    if first == 0:
        return not proof
    if not proof or not _well_formed(first_root, second_root):
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return (sn == 0 and hmac.compare_digest(fr, first_root)
            and hmac.compare_digest(sr, second_root))


@dataclass(frozen=True)
class Frontier:
    """The compact state of a tree of ``size`` leaves: the roots of its maximal
    perfect subtrees, left (largest) to right, one per set bit of ``size``.

    Immutable: :meth:`append` returns the frontier of ``size + 1`` leaves, in
    O(log n) hash operations.  :meth:`root` folds the hashes right to left into
    MTH of the first ``size`` leaves (RFC 9162 §2.1.1).  :meth:`to_bytes` /
    :meth:`from_bytes` give a storable form: the concatenated hashes, whose
    number the size determines (``from_bytes`` refuses any other length).
    """

    size: int = 0
    hashes: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if self.size < 0 or len(self.hashes) != self.size.bit_count() or not _well_formed(*self.hashes):
            raise ValueError(f"a frontier of {self.size} leaves has {self.size.bit_count()} hashes of {HASH_SIZE} bytes")

    @classmethod
    def of(cls, hashes: Sequence[bytes]) -> Frontier:
        """The frontier of the given leaf hashes (O(n))."""
        f = cls()
        for h in hashes:
            f = f.append(h)
        return f

    def append(self, leaf: bytes) -> Frontier:
        """The frontier after appending one leaf *hash*."""
        return self.extend_with_nodes([leaf])[0]

    @staticmethod
    def coordinates(size: int) -> list[tuple[int, int]]:
        """The ``(level, idx)`` of the perfect subtrees a frontier of ``size``
        leaves holds, largest first (``hashes`` in that order)."""
        out, start = [], 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                out.append((level, start >> level))
                start += 1 << level
        return out

    def extend(self, leaves: Sequence[bytes]) -> Frontier:
        """The frontier after appending several leaf hashes, in order."""
        return self.extend_with_nodes(leaves)[0]

    def extend_with_nodes(self, leaves: Sequence[bytes]) -> tuple[Frontier, list[Node]]:
        """The frontier after appending ``leaves`` (hashes, in order), and every
        perfect subtree they complete as ``(level, idx, hash)``: the leaves
        themselves at level 0, each merge at the level above (``idx`` counts
        subtrees of ``2**level`` leaves from the left), what a store keeps to
        answer proofs with :func:`inclusion_proof_from` in O(log n) reads."""
        stack, size, nodes = list(self.hashes), self.size, []
        for leaf in leaves:
            if not _well_formed(leaf):
                raise ValueError(f"a leaf hash is {HASH_SIZE} bytes")
            h, n, level = bytes(leaf), size, 0
            nodes.append((0, size, h))
            while n & 1:
                h = node_hash(stack.pop(), h)
                n >>= 1
                level += 1
                nodes.append((level, size >> level, h))
            stack.append(h)
            size += 1
        return Frontier(size, tuple(stack)), nodes

    def root(self) -> bytes:
        """MTH of the first ``size`` leaves."""
        if not self.hashes:
            return EMPTY_ROOT
        r = self.hashes[-1]
        for h in reversed(self.hashes[:-1]):
            r = node_hash(h, r)
        return r

    def to_bytes(self) -> bytes:
        return b"".join(self.hashes)

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> Frontier:
        if len(data) != HASH_SIZE * size.bit_count():
            raise ValueError(f"a frontier of {size} leaves is {HASH_SIZE * size.bit_count()} bytes, not {len(data)}")
        return cls(size, tuple(data[i:i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)))
