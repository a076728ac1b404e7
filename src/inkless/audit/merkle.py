"""RFC 9162 Merkle tree arithmetic: hashes, proofs and their verifiers. Pure functions, no I/O.

Notation follows RFC 9162 §2.1: ``D[n]`` is the list of ``n`` entries, ``MTH`` the
Merkle Tree Hash, ``PATH(m, D[n])`` an inclusion proof and ``PROOF(m, D[n])`` a
consistency proof. A *perfect subtree* ``(level, index)`` covers leaves
``[index * 2**level, (index + 1) * 2**level)``; the audit log stores the hash of
every perfect subtree once it is complete, so that any hash the proofs need is
the right fold of O(log n) stored hashes (see :func:`perfect_subtrees`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

Subtree = tuple[int, int]
"""A perfect subtree: (level, index)."""

RangeHash = Callable[[int, int], bytes]
"""Returns MTH(D[start:end]) for the ranges the proof recursions ask for."""


# --- hashes -----------------------------------------------------------------------------


def leaf_hash(entry: bytes) -> bytes:
    """RFC 9162 §2.1.1: SHA-256(0x00 || entry)."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2): where MTH splits D[n]."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH of a tree given its leaf hashes (RFC 9162 §2.1.1), without recursion."""
    if not hashes:
        return EMPTY_ROOT
    builder = TreeBuilder()
    for h in hashes:
        builder.append(h)
    return builder.root()


def mth(entries: Iterable[bytes]) -> bytes:
    """The Merkle Tree Hash of a list of entries."""
    return root_from_leaf_hashes([leaf_hash(e) for e in entries])


# --- perfect subtrees -------------------------------------------------------------------


def perfect_subtrees(start: int, end: int) -> list[Subtree]:
    """The perfect subtrees, left to right, whose right fold is MTH(D[start:end]).

    ``start`` must be aligned to the largest power of two not above ``end - start``:
    that holds for every range the RFC's recursions visit, and for every prefix D[0:n].
    """
    size = end - start
    if start < 0 or size <= 0:
        raise ValueError(f"empty or negative range [{start}, {end})")
    if start % (1 << (size.bit_length() - 1)):
        raise ValueError(f"range [{start}, {end}) is not a subtree of the Merkle tree")
    result: list[Subtree] = []
    position = start
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            result.append((level, position >> level))
            position += 1 << level
    return result


def fold_subtrees(hashes: Sequence[bytes]) -> bytes:
    """Right fold of perfect-subtree hashes (largest first): h0 ⊕ (h1 ⊕ (… ⊕ hk))."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def range_hash_from_subtrees(start: int, end: int, stored: Mapping[Subtree, bytes]) -> bytes:
    """MTH(D[start:end]) from stored perfect-subtree hashes; KeyError names a missing one."""
    return fold_subtrees([stored[s] for s in perfect_subtrees(start, end)])


def subtrees_completed_by(index: int) -> list[Subtree]:
    """The perfect subtrees that leaf ``index`` completes, level 0 (the leaf) upwards."""
    result = [(0, index)]
    level, position = 0, index
    while position & 1:
        level, position = level + 1, position >> 1
        result.append((level, position))
    return result


def append_siblings(index: int) -> list[Subtree]:
    """The stored left siblings needed to hash the subtrees completed by leaf ``index``."""
    return [(level, position - 1) for level, position in subtrees_completed_by(index)[:-1]]


def append_leaf(index: int, leaf: bytes, siblings: Sequence[bytes]) -> list[tuple[int, int, bytes]]:
    """(level, index, hash) of every subtree completed by leaf ``index``, given :func:`append_siblings`."""
    completed = subtrees_completed_by(index)
    if len(siblings) != len(completed) - 1:
        raise ValueError(f"leaf {index} needs {len(completed) - 1} sibling hashes, got {len(siblings)}")
    result = [(0, index, leaf)]
    current = leaf
    for (level, position), sibling in zip(completed[1:], siblings, strict=True):
        current = node_hash(sibling, current)
        result.append((level, position, current))
    return result


class TreeBuilder:
    """Builds a tree leaf by leaf in O(log n) memory, reporting every completed subtree."""

    def __init__(self) -> None:
        self.size = 0
        # The perfect subtrees of D[size], largest first: exactly one per set bit of size.
        self._frontier: list[tuple[int, bytes]] = []

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf hash; returns (level, index, hash) of the subtrees it completes."""
        index = self.size
        siblings: list[bytes] = []
        level = 0
        while self._frontier and self._frontier[-1][0] == level:
            siblings.append(self._frontier.pop()[1])
            level += 1
        completed = append_leaf(index, leaf, siblings)
        top_level, _, top_hash = completed[-1]
        self._frontier.append((top_level, top_hash))
        self.size += 1
        return completed

    def root(self) -> bytes:
        """MTH of the leaves appended so far."""
        return fold_subtrees([h for _, h in self._frontier])


# --- proofs ------------------------------------------------------------------------------


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The ranges whose MTHs form PATH(index, D[size]) (RFC 9162 §2.1.3.1), leaf first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    # Walk down from the root; the sibling of each step is appended, then reversed to go leaf-to-root.
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start = start + k
    ranges.reverse()
    return ranges


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The ranges whose MTHs form PROOF(old_size, D[new_size]) (RFC 9162 §2.1.4.1)."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    ranges: list[tuple[int, int]] = []
    # SUBPROOF(m, D[start:end], b), iteratively; components are prepended, hence the final reverse.
    m, start, end, complete = old_size, 0, new_size, True
    while True:
        n = end - start
        if m == n:
            if not complete:
                ranges.append((start, end))
            break
        k = _split(n)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            m -= k
            start += k
            complete = False
    ranges.reverse()
    return ranges


def inclusion_proof(index: int, size: int, range_hash: RangeHash) -> list[bytes]:
    """PATH(index, D[size]) with hashes from ``range_hash``."""
    return [range_hash(a, b) for a, b in inclusion_ranges(index, size)]


def consistency_proof(old_size: int, new_size: int, range_hash: RangeHash) -> list[bytes]:
    """PROOF(old_size, D[new_size]) with hashes from ``range_hash``."""
    return [range_hash(a, b) for a, b in consistency_ranges(old_size, new_size)]


def leaf_range_hash(leaves: Sequence[bytes]) -> RangeHash:
    """A :data:`RangeHash` over an in-memory list of leaf hashes."""
    return lambda a, b: root_from_leaf_hashes(leaves[a:b])


def subtree_range_hash(stored: Mapping[Subtree, bytes]) -> RangeHash:
    """A :data:`RangeHash` over stored perfect-subtree hashes."""
    return lambda a, b: range_hash_from_subtrees(a, b, stored)


def subtrees_for_ranges(ranges: Iterable[tuple[int, int]]) -> set[Subtree]:
    """Every perfect subtree needed to compute the given ranges: what to fetch from storage."""
    needed: set[Subtree] = set()
    for a, b in ranges:
        needed.update(perfect_subtrees(a, b))
    return needed


# --- verifiers ---------------------------------------------------------------------------


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes | None:
    """RFC 9162 §2.1.3.2: the root implied by an inclusion proof, or None if the proof is malformed."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if len(p) != HASH_SIZE or sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return None
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """True if ``proof`` shows that ``leaf`` is leaf ``index`` of the tree of ``size`` with ``root``."""
    return root_from_inclusion_proof(index, size, leaf, proof) == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: True if the tree of ``old_size`` is a prefix of the tree of ``new_size``."""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    # Step 1: between two different sizes the proof is never empty.
    if not proof or any(len(p) != HASH_SIZE for p in proof):
        return False
    path = list(proof)
    # Step 2: if old_size is a power of two, the old root itself is the first node of the path.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    # Steps 3-4: right-shift both while the lowest bit of fn is set.
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
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
