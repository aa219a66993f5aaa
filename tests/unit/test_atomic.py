"""One atomic write (bqnn/atomic.py) for checkpoints, final-training state and exports: all or nothing."""
import os

import pytest

from bqnn.atomic import atomic_path, write_bytes


def test_the_file_is_replaced_whole_and_the_old_one_becomes_the_backup(tmp_path):
    p = tmp_path / "search.h5"
    write_bytes(p, b"first")
    with atomic_path(p, backup=True) as part:
        assert part.name == "search.h5.part" and p.read_bytes() == b"first"  # untouched while writing
        part.write_bytes(b"second")
    assert p.read_bytes() == b"second" and (tmp_path / "search.h5.bak").read_bytes() == b"first"
    assert sorted(os.listdir(tmp_path)) == ["search.h5", "search.h5.bak"]


def test_a_writer_that_fails_leaves_the_file_and_its_backup_as_they_were(tmp_path):
    p = tmp_path / "train.pt"
    write_bytes(p, b"good")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(p, backup=True) as part:
            part.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert p.read_bytes() == b"good" and sorted(os.listdir(tmp_path)) == ["train.pt"]  # no .part, no .bak


def test_a_stale_part_file_from_a_killed_writer_is_replaced(tmp_path):
    p = tmp_path / "model.pt"
    (tmp_path / "model.pt.part").write_bytes(b"torn")
    write_bytes(p, b"whole")
    assert p.read_bytes() == b"whole" and not (tmp_path / "model.pt.part").exists()
