"""The Merkle arithmetic against the RFC's recursive definitions, written out naively here."""

from __future__ import annotations

import hashlib

import pytest

from inkless.audit import merkle

SIZES = range(1, 41)


# --- the reference: RFC 9162 §2.1 transcribed literally --------------------------------------


def ref_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def entries(n: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(n)]


def leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(e) for e in entries(n)]


def stored_subtrees(n: int) -> dict[merkle.Subtree, bytes]:
    """What the audit log stores for a tree of size n: every completed perfect subtree."""
    builder = merkle.TreeBuilder()
    stored: dict[merkle.Subtree, bytes] = {}
    for leaf in leaves(n):
        for level, index, h in builder.append(leaf):
            stored[(level, index)] = h
    return stored


# --- hashes and roots ------------------------------------------------------------------------


def test_hash_prefixes() -> None:
    assert merkle.leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert merkle.node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert merkle.mth([]) == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("n", SIZES)
def test_root_matches_reference(n: int) -> None:
    expected = ref_mth(entries(n))
    assert merkle.mth(entries(n)) == expected
    assert merkle.root_from_leaf_hashes(leaves(n)) == expected
    assert merkle.range_hash_from_subtrees(0, n, stored_subtrees(n)) == expected


def test_stored_subtrees_cover_exactly_the_complete_ones() -> None:
    n = 40
    stored = stored_subtrees(n)
    d = entries(n)
    expected = {
        (level, i): ref_mth(d[i << level:(i + 1) << level])
        for level in range(7)
        for i in range(n >> level)
    }
    assert stored == expected


def test_every_prefix_root_from_the_builder() -> None:
    builder = merkle.TreeBuilder()
    d = entries(40)
    for n in SIZES:
        builder.append(merkle.leaf_hash(d[n - 1]))
        assert builder.root() == ref_mth(d[:n])


def test_append_leaf_uses_only_the_named_siblings() -> None:
    stored = stored_subtrees(39)
    leaf = merkle.leaf_hash(b"entry 39")
    siblings = [stored[s] for s in merkle.append_siblings(39)]
    assert merkle.append_siblings(39) == [(0, 38), (1, 18), (2, 8)]
    completed = merkle.append_leaf(39, leaf, siblings)
    assert [(lv, i) for lv, i, _ in completed] == [(0, 39), (1, 19), (2, 9), (3, 4)]
    full = stored_subtrees(40)
    assert all(full[(lv, i)] == h for lv, i, h in completed)


def test_misaligned_range_is_refused() -> None:
    with pytest.raises(ValueError, match="not a subtree"):
        merkle.perfect_subtrees(3, 7)
    with pytest.raises(ValueError, match="empty"):
        merkle.perfect_subtrees(4, 4)


# --- inclusion --------------------------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
def test_inclusion_proofs_match_reference_and_verify(n: int) -> None:
    d = entries(n)
    hashes = leaves(n)
    root = ref_mth(d)
    stored = stored_subtrees(n)
    for m in range(n):
        expected = ref_path(m, d)
        assert merkle.inclusion_proof(m, n, merkle.leaf_range_hash(hashes)) == expected
        assert merkle.inclusion_proof(m, n, merkle.subtree_range_hash(stored)) == expected
        assert merkle.verify_inclusion(m, n, hashes[m], expected, root)


@pytest.mark.parametrize("n", [1, 2, 5, 8, 13, 40])
def test_inclusion_rejects_wrong_leaf_root_index_or_size(n: int) -> None:
    d = entries(n)
    hashes = leaves(n)
    root = ref_mth(d)
    wrong = merkle.leaf_hash(b"forged")
    for m in range(n):
        proof = ref_path(m, d)
        assert not merkle.verify_inclusion(m, n, wrong, proof, root)
        assert not merkle.verify_inclusion(m, n, hashes[m], proof, wrong)
        assert not merkle.verify_inclusion(n, n, hashes[m], proof, root)
        # The size only shapes the proof (the signed tree head binds root and size together):
        # any size whose proof has a different length is rejected.
        for size in range(m + 1, n + 9):
            if len(merkle.inclusion_ranges(m, size)) != len(proof):
                assert not merkle.verify_inclusion(m, size, hashes[m], proof, root)
        if n > 1:
            assert not merkle.verify_inclusion((m + 1) % n, n, hashes[m], proof, root)
            assert not merkle.verify_inclusion(m, n, hashes[m], [*proof, wrong], root)
            assert not merkle.verify_inclusion(m, n, hashes[m], proof[:-1], root)
            assert not merkle.verify_inclusion(m, n, hashes[m], [b"short", *proof[1:]], root)


# --- consistency ------------------------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
def test_consistency_proofs_match_reference_and_verify(n: int) -> None:
    d = entries(n)
    hashes = leaves(n)
    stored = stored_subtrees(n)
    new_root = ref_mth(d)
    for m in range(1, n + 1):
        expected = ref_subproof(m, d, True)
        assert merkle.consistency_proof(m, n, merkle.leaf_range_hash(hashes)) == expected
        assert merkle.consistency_proof(m, n, merkle.subtree_range_hash(stored)) == expected
        assert merkle.verify_consistency(m, n, ref_mth(d[:m]), new_root, expected)


@pytest.mark.parametrize("n", [2, 3, 8, 9, 21, 40])
def test_consistency_rejects_wrong_roots_sizes_and_proofs(n: int) -> None:
    d = entries(n)
    new_root = ref_mth(d)
    wrong = merkle.leaf_hash(b"forged")
    for m in range(1, n):
        old_root = ref_mth(d[:m])
        proof = ref_subproof(m, d, True)
        assert not merkle.verify_consistency(m, n, wrong, new_root, proof)
        assert not merkle.verify_consistency(m, n, old_root, wrong, proof)
        for size in range(m + 1, n + 9):
            if len(merkle.consistency_ranges(m, size)) != len(proof):
                assert not merkle.verify_consistency(m, size, old_root, new_root, proof)
        for old in range(1, n):
            if len(merkle.consistency_ranges(old, n)) != len(proof):
                assert not merkle.verify_consistency(old, n, old_root, new_root, proof)
        assert not merkle.verify_consistency(m, n, old_root, new_root, [])
        assert not merkle.verify_consistency(m, n, old_root, new_root, [*proof, wrong])
        assert not merkle.verify_consistency(m, n, old_root, new_root, proof[:-1])
        assert not merkle.verify_consistency(m, n, old_root, new_root, [wrong, *proof[1:]])
    assert merkle.verify_consistency(n, n, new_root, new_root, [])
    assert not merkle.verify_consistency(n, n, new_root, wrong, [])
    assert not merkle.verify_consistency(0, n, merkle.EMPTY_ROOT, new_root, [])


def test_wrong_sizes_are_rejected_explicitly() -> None:
    d = entries(12)
    root = ref_mth(d)
    proof = ref_path(11, d)
    assert merkle.verify_inclusion(11, 12, merkle.leaf_hash(d[11]), proof, root)
    assert not merkle.verify_inclusion(11, 13, merkle.leaf_hash(d[11]), proof, root)
    assert not merkle.verify_inclusion(11, 16, merkle.leaf_hash(d[11]), proof, root)
    cproof = ref_subproof(5, d, True)
    assert merkle.verify_consistency(5, 12, ref_mth(d[:5]), root, cproof)
    assert not merkle.verify_consistency(5, 17, ref_mth(d[:5]), root, cproof)
    assert not merkle.verify_consistency(6, 12, ref_mth(d[:5]), root, cproof)


def test_a_rewritten_history_is_inconsistent() -> None:
    d = entries(20)
    forged = [*d[:7], b"rewritten", *d[8:]]
    proof = ref_subproof(12, forged, True)
    assert not merkle.verify_consistency(12, 20, ref_mth(d[:12]), ref_mth(forged), proof)


def test_proof_ranges_refuse_impossible_sizes() -> None:
    with pytest.raises(ValueError, match="not in a tree of size 5"):
        merkle.inclusion_ranges(5, 5)
    with pytest.raises(ValueError, match="from size 6 to size 5"):
        merkle.consistency_ranges(6, 5)
    with pytest.raises(ValueError, match="from size 0"):
        merkle.consistency_ranges(0, 5)


def test_append_leaf_refuses_a_wrong_number_of_siblings_and_says_how_many() -> None:
    stored = stored_subtrees(39)
    siblings = [stored[s] for s in merkle.append_siblings(39)]
    with pytest.raises(ValueError, match=r"^leaf 39 needs 3 sibling hashes, got 2$"):
        merkle.append_leaf(39, merkle.leaf_hash(b"entry 39"), siblings[:2])


def test_inclusion_proof_with_a_short_hash_or_an_extra_hash_has_no_root() -> None:
    d = entries(13)
    hashes = leaves(13)
    proof = ref_path(5, d)
    assert merkle.root_from_inclusion_proof(5, 13, hashes[5], proof) == ref_mth(d)
    # Malformed, not merely wrong: no root at all, whatever the hashes.
    assert merkle.root_from_inclusion_proof(5, 13, hashes[5], [proof[0][:31], *proof[1:]]) is None
    assert merkle.root_from_inclusion_proof(5, 13, hashes[5], [*proof, proof[0]]) is None


def test_no_consistency_proof_from_the_empty_tree() -> None:
    assert not merkle.verify_consistency(0, 0, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, [])


def test_subtrees_for_ranges_are_exactly_what_the_proof_reads() -> None:
    assert merkle.subtrees_for_ranges([(0, 5), (8, 12)]) == {(2, 0), (0, 4), (2, 2)}
    assert merkle.subtrees_for_ranges([]) == set()
    n = 21
    stored = stored_subtrees(n)
    for ranges in (merkle.inclusion_ranges(6, n), merkle.consistency_ranges(7, n)):
        needed = merkle.subtrees_for_ranges(ranges)
        only = {key: stored[key] for key in needed}
        # The proof computes from just those stored hashes, and from none fewer.
        assert [merkle.range_hash_from_subtrees(a, b, only) for a, b in ranges] == [
            merkle.range_hash_from_subtrees(a, b, stored) for a, b in ranges]
        for key in needed:
            with pytest.raises(KeyError):
                [merkle.range_hash_from_subtrees(a, b, {k: v for k, v in only.items() if k != key})
                 for a, b in ranges]
