"""Partition.save / Partition.load round trips and their errors."""

import numpy as np
import pytest

from partition import Partition, partition_capacity, partition_graph, partition_hierarchical
from partition.generators import edges_to_csr, torus_edges


@pytest.fixture(scope="module")
def csr():
    return edges_to_csr(torus_edges(20, 20), 400)


def assert_same(a: Partition, b: Partition):
    np.testing.assert_array_equal(a.assignment, b.assignment)
    assert (a.n_parts, a.method, a.seed, a.hierarchy, a.capacity) == (
        b.n_parts,
        b.method,
        b.seed,
        b.hierarchy,
        b.capacity,
    )
    np.testing.assert_array_equal(a.csr.indptr, b.csr.indptr)
    np.testing.assert_array_equal(a.csr.indices, b.csr.indices)
    assert a.report(bytes_per_node=4) == b.report(bytes_per_node=4)


@pytest.mark.parametrize(
    "make",
    [
        lambda g: partition_graph(g, 5, seed=7),
        lambda g: partition_graph(g, 3, method="random", seed=2),
        lambda g: partition_hierarchical(g, 2, 3),
        lambda g: partition_capacity(g, 70),
        lambda g: Partition(assignment=np.arange(400) % 2, n_parts=2, csr=g),
    ],
)
def test_round_trip_is_exact(tmp_path, csr, make):
    part = make(csr)
    path = tmp_path / "part.npz"
    part.save(path)
    loaded = Partition.load(path)
    assert_same(part, loaded)
    for p in range(part.n_parts):
        np.testing.assert_array_equal(part.halo_plan().halo[p], loaded.halo_plan().halo[p])


def test_save_keeps_the_given_name(tmp_path, csr):
    path = tmp_path / "partition.bin"
    partition_graph(csr, 2).save(path)
    assert path.exists() and not (tmp_path / "partition.bin.npz").exists()
    assert Partition.load(str(path)).n_parts == 2


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        Partition.load(missing)


def test_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.npz"
    path.write_bytes(b"this is not a zip archive")
    with pytest.raises(ValueError, match="corrupt.npz is not a valid partition file"):
        Partition.load(path)


def test_truncated_file(tmp_path, csr):
    path = tmp_path / "cut.npz"
    partition_graph(csr, 2).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.npz"):
        Partition.load(path)


def test_npz_with_other_content(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, x=np.arange(3))
    with pytest.raises(ValueError, match="other.npz is not a valid partition file"):
        Partition.load(path)


def test_inconsistent_content(tmp_path, csr):
    path = tmp_path / "bad.npz"
    partition_graph(csr, 2).save(path)
    with np.load(path) as data:
        fields = dict(data)
    fields["assignment"] = fields["assignment"] + 5  # out of range
    np.savez(path, **fields)
    with pytest.raises(ValueError, match=r"bad.npz.*\[0, 2\)"):
        Partition.load(path)
