"""The Merkle tree against the RFC 6962 reference vectors.

Source of the vectors: the Certificate Transparency reference implementation's tests
(google/certificate-transparency, cpp/merkletree/merkle_tree_test.cc; the same values are in
transparency-dev/merkle, testonly/constants.go): eight leaves, the tree head at each size, and
inclusion and consistency proofs.
"""

from __future__ import annotations

import random
import time

import pytest

from certissuer.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    inclusion_proofs,
    leaf_hash,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)

DATA = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
LEAVES = [leaf_hash(d) for d in DATA]
ROOTS = {
    0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
# (leaf index from 0, tree size, proof)
INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


def test_tree_heads_match_the_reference() -> None:
    assert EMPTY_ROOT.hex() == ROOTS[0]
    for size in range(9):
        assert tree_hash(LEAVES[:size]).hex() == ROOTS[size], f"size {size}"


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_proofs_match_the_reference(index: int, size: int, proof: list[str]) -> None:
    got = inclusion_proof(index, LEAVES[:size])
    assert [p.hex() for p in got] == proof
    root = bytes.fromhex(ROOTS[size])
    assert verify_inclusion(index, size, LEAVES[index], got, root)
    assert not verify_inclusion(index, size, LEAVES[(index + 1) % size], got, root)
    assert not verify_inclusion(index, size, LEAVES[index], got, bytes.fromhex(ROOTS[0]))
    if got:
        assert not verify_inclusion(index, size, LEAVES[index], got[:-1], root)


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY)
def test_consistency_proofs_match_the_reference(first: int, second: int, proof: list[str]) -> None:
    got = consistency_proof(first, LEAVES[:second])
    assert [p.hex() for p in got] == proof
    r1, r2 = bytes.fromhex(ROOTS[first]), bytes.fromhex(ROOTS[second])
    assert verify_consistency(first, second, got, r1, r2)
    if first != second:
        assert not verify_consistency(first, second, got, r2, r2)
        assert not verify_consistency(first, second, got[1:], r1, r2)


def test_every_proof_in_many_tree_shapes() -> None:
    rng = random.Random(6962)
    leaves = [leaf_hash(rng.randbytes(rng.randint(0, 12))) for _ in range(70)]
    for n in range(1, 70, 3):
        root = tree_hash(leaves[:n])
        for i in range(n):
            assert verify_inclusion(i, n, leaves[i], inclusion_proof(i, leaves[:n]), root)
        for m in range(1, n + 1):
            proof = consistency_proof(m, leaves[:n])
            assert verify_consistency(m, n, proof, tree_hash(leaves[:m]), root)


def test_tree_hash_equals_recursive_definition() -> None:
    def mth(d: list[bytes]) -> bytes:
        import hashlib

        if len(d) == 1:
            return d[0]
        k = 1 << ((len(d) - 1).bit_length() - 1)
        return hashlib.sha256(b"\x01" + mth(d[:k]) + mth(d[k:])).digest()

    leaves = [leaf_hash(bytes([i])) for i in range(100)]
    for n in range(1, 100):
        assert tree_hash(leaves[:n]) == mth(leaves[:n])


def test_inclusion_proofs_at_once_equal_one_by_one_and_scale() -> None:
    rng = random.Random(9162)
    leaves = [leaf_hash(rng.randbytes(8)) for _ in range(70)]
    for n in range(1, 70):
        assert inclusion_proofs(range(n), leaves[:n]) == {
            i: inclusion_proof(i, leaves[:n]) for i in range(n)
        }
    for (index, size, proof), got in zip(
        INCLUSION,
        (inclusion_proofs([i], LEAVES[:s])[i] for i, s, _ in INCLUSION),
        strict=True,
    ):
        assert [p.hex() for p in got] == proof, f"{index} of {size}"
    with pytest.raises(ValueError, match="outside a tree of size 3"):
        inclusion_proofs([3], leaves[:3])
    # a push of every leaf of a large log: each subtree once, not once per proof
    big = [leaf_hash(i.to_bytes(4, "big")) for i in range(20000)]
    started = time.perf_counter()
    proofs = inclusion_proofs(range(0, 20000, 2), big)
    assert time.perf_counter() - started < 3.0
    root = tree_hash(big)
    assert all(verify_inclusion(i, 20000, big[i], proofs[i], root) for i in (0, 4242, 19998))
