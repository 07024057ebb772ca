"""RFC 6962 / RFC 9162 Merkle tree: tree head, inclusion and consistency proofs.

Leaves are hashed as ``SHA-256(0x00 || data)``, interior nodes as
``SHA-256(0x01 || left || right)``; a tree of ``n`` leaves splits at the largest power of two
below ``n`` (RFC 9162 §2.1.1). All functions take the list of *leaf hashes*.

>>> leaves = [leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")]
>>> root = tree_hash(leaves)
>>> verify_inclusion(1, 3, leaves[1], inclusion_proof(1, leaves), root)
True
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "consistency_proof",
    "inclusion_proof",
    "inclusion_proofs",
    "leaf_hash",
    "node_hash",
    "tree_hash",
    "verify_consistency",
    "verify_inclusion",
]

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than `n` (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def tree_hash(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree hash (root) over `leaves` (leaf hashes), computed bottom-up in O(n)."""
    if not leaves:
        return EMPTY_ROOT
    # Left-to-right stack of complete subtrees: equivalent to the recursive definition
    # because the recursion splits at powers of two.
    stack: list[tuple[int, bytes]] = []  # (size, hash)
    for h in leaves:
        size, node = 1, h
        while stack and stack[-1][0] == size:
            left_size, left = stack.pop()
            node, size = node_hash(left, node), left_size + size
        stack.append((size, node))
    size, node = stack.pop()
    while stack:
        _, left = stack.pop()
        node = node_hash(left, node)
    return node


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The audit path for leaf `index` in the tree of `leaves` (RFC 9162 §2.1.3.1)."""
    return _audit_path(index, len(leaves), lambda lo, hi: tree_hash(leaves[lo:hi]))


def inclusion_proofs(indexes: Iterable[int], leaves: Sequence[bytes]) -> dict[int, list[bytes]]:
    """The audit paths of the leaves at `indexes` in the tree of `leaves`, each as
    `inclusion_proof` gives it; every subtree hash is computed once for all of them."""
    cache: dict[tuple[int, int], bytes] = {}

    def subtree(lo: int, hi: int) -> bytes:
        found = cache.get((lo, hi))
        if found is None:
            if hi - lo == 1:
                found = leaves[lo]
            else:
                k = _split(hi - lo)
                found = node_hash(subtree(lo, lo + k), subtree(lo + k, hi))
            cache[(lo, hi)] = found
        return found

    return {index: _audit_path(index, len(leaves), subtree) for index in indexes}


def _audit_path(index: int, n: int, subtree: Callable[[int, int], bytes]) -> list[bytes]:
    """The audit path for leaf `index` in a tree of `n` leaves, `subtree(lo, hi)` giving the
    hash of the leaves ``lo:hi``."""
    if not 0 <= index < n:
        raise ValueError(f"leaf index {index} is outside a tree of size {n}")
    proof: list[bytes] = []
    lo, hi, m = 0, n, index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            proof.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            proof.append(subtree(lo, lo + k))
            lo, m = lo + k, m - k
    proof.reverse()
    return proof


def consistency_proof(first: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The proof that the tree of size `first` is a prefix of the tree of `leaves` (§2.1.4.1)."""
    n = len(leaves)
    if not 0 < first <= n:
        raise ValueError(f"cannot prove size {first} against a tree of size {n}")
    proof: list[bytes] = []
    lo, hi, m, complete = 0, n, first, True
    while True:
        if m == hi - lo:
            if not complete:
                proof.append(tree_hash(leaves[lo:hi]))
            break
        k = _split(hi - lo)
        if m <= k:
            proof.append(tree_hash(leaves[lo + k : hi]))
            hi = lo + k
        else:
            proof.append(tree_hash(leaves[lo : lo + k]))
            lo, m, complete = lo + k, m - k, False
    proof.reverse()
    return proof


def _sides(fn: int, sn: int, proof: Sequence[bytes]) -> list[tuple[bytes, bool]] | None:
    """Walk `proof` up from node `fn` of a tree whose last node is `sn` (RFC 9162 §2.1.3.2 and
    §2.1.4.2): each proof node with True where it joins on the left, False on the right.

    None when the proof is too long or too short for the tree.
    """
    sides = []
    for p in proof:
        if sn == 0:
            return None
        left = bool(fn & 1) or fn == sn
        sides.append((p, left))
        if left and not fn & 1:
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        fn, sn = fn >> 1, sn >> 1
    return sides if sn == 0 else None


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """True when `proof` shows leaf hash `leaf` at `index` in the tree of `size` with `root`."""
    if not 0 <= index < size:
        return False
    sides = _sides(index, size - 1, proof)
    if sides is None:
        return False
    r = leaf
    for p, left in sides:
        r = node_hash(p, r) if left else node_hash(r, p)
    return hmac.compare_digest(r, root)


def verify_consistency(
    first: int, second: int, proof: Sequence[bytes], first_root: bytes, second_root: bytes
) -> bool:
    """True when `proof` shows the tree (`first`, `first_root`) is a prefix of
    (`second`, `second_root`) (RFC 9162 §2.1.4.2)."""
    if not 0 < first <= second:
        return False
    if first == second:
        return not proof and hmac.compare_digest(first_root, second_root)
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the first root is the first node
        path.insert(0, first_root)
    if not path:
        return False
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    sides = _sides(fn, sn, path[1:])
    if sides is None:
        return False
    fr = sr = path[0]
    for c, left in sides:
        if left:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
        else:
            sr = node_hash(sr, c)
    return hmac.compare_digest(fr, first_root) and hmac.compare_digest(sr, second_root)
