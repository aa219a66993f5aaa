"""The image-folder reader (ImageNet layout) on a generated folder with two classes."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from bqnn.config import DataConfig
from bqnn.data.errors import DataError
from bqnn.data.folder import FolderError, list_folder
from bqnn.data.imagefolder import load_in_memory
from bqnn.data.shapes import dataset_shape
from bqnn.data.sources import StreamDataset
from bqnn.data.splits import load_splits
from tests.conftest import run_module


def make_folder(root, per_class=30, test_per_class=10, seed=0):
    """Class 'a' is reddish, class 'b' bluish; sizes and formats vary."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("val", test_per_class)):
        for cls, base in (("a", (200, 40, 40)), ("b", (40, 40, 200))):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                h, w = int(rng.integers(20, 48)), int(rng.integers(20, 48))
                img = np.clip(np.array(base) + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)
                ext = ".jpg" if i % 2 else ".png"
                Image.fromarray(img).save(d / f"{i:03d}{ext}")
    (root / "train" / "a" / "notes.txt").write_text("not an image")
    return root


def test_listing_and_in_memory_loading(tmp_path):
    root = make_folder(tmp_path / "f")
    listing = list_folder(root)
    assert listing.classes == ["a", "b"] and len(listing.train) == 60 and len(listing.test) == 20
    assert sorted({label for _, label in listing.train}) == [0, 1]
    x, y = load_in_memory(listing.train, 16, workers=2)
    assert x.shape == (60, 3, 16, 16) and x.dtype == np.uint8 and (y == 0).sum() == 30
    assert x[y == 0][:, 0].mean() > x[y == 0][:, 2].mean()  # reds are red
    assert dataset_shape(DataConfig(dataset="imagefolder", root=str(root), resize=16)) == (3, 16, 2)
    s = load_splits(DataConfig(dataset="imagefolder", root=str(root), resize=16, val_size=10), "cpu", with_test=True)
    assert s.train_x.shape == (50, 3, 16, 16) and s.val_x.shape == (10, 3, 16, 16) and s.test_x.shape == (20, 3, 16, 16)


def test_streamed_transforms(tmp_path):
    root = make_folder(tmp_path / "f")
    listing = list_folder(root)
    train = StreamDataset(listing.train, True, crop=24, scale=(26, 40), test_resize=28, mean=(0.5,) * 3,
                          std=(0.25,) * 3)
    test = StreamDataset(listing.test, False, crop=24, scale=(26, 40), test_resize=28, mean=(0.5,) * 3, std=(0.25,) * 3)
    x, label = train[3]
    assert x.shape == (3, 24, 24) and x.dtype == torch.float32 and label == 0
    assert torch.equal(train[3][0], x)  # the same epoch seed gives the same crop
    train.epoch_seed = 1
    assert not torch.equal(train[3][0], x)
    assert test[0][0].shape == (3, 24, 24) and torch.equal(test[0][0], test[0][0])


def test_folder_errors(tmp_path):
    with pytest.raises(FolderError, match="does not exist"):
        list_folder(tmp_path / "nope")
    (tmp_path / "one" / "train" / "a").mkdir(parents=True)
    with pytest.raises(FolderError, match="found 1 class directories"):
        list_folder(tmp_path / "one")
    with pytest.raises(DataError, match="data.resize must be set"):
        load_splits(DataConfig(dataset="imagefolder", root=str(make_folder(tmp_path / "ok"))), "cpu")


def test_train_in_memory_and_streamed(tmp_path):
    root = make_folder(tmp_path / "f", per_class=40)
    common = ["--block", "residual-like", "--set", "data.dataset=imagefolder", "--set", f"data.root={root}",
              "--set", "data.val_size=16", "--set", "network.blocks_per_stage=1", "--set", "network.filters=[8,16,32]",
              "--set", "train.epochs=3", "--set", "train.milestones=[]", "--set", "train.lr=0.05",
              "--set", "train.batch_size=16", "--set", "data.workers=2"]
    r = run_module("bqnn.train", *common, "--set", "data.resize=16", "--out", str(tmp_path / "mem"))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "mem" / "result.json").read_text())
    assert res["test_accuracy"] >= 90  # two colours: easy
    r = run_module("bqnn.train", *common, "--set", "data.crop=24", "--set", "data.scale=[26, 36]",
                   "--set", "data.test_resize=28", "--out", str(tmp_path / "stream"))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "stream" / "result.json").read_text())
    assert res["config"]["data"]["resize"] == 0 and 0 <= res["test_accuracy"] <= 100


@pytest.mark.parametrize("content", [b"", b"\xff\xd8\xff\xe0 not really a jpeg", b"\x89PNG\r\n\x1a\n" + b"\0" * 20])
def test_an_undecodable_image_is_one_line_naming_it(tmp_path, content):
    from bqnn.data.imagefolder import open_rgb

    path = tmp_path / "broken.jpg"
    path.write_bytes(content)
    with pytest.raises(FolderError, match="cannot decode image") as e:
        open_rgb(str(path))
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)
