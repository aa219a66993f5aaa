"""Exported networks: weights_only-safe, loadable without bqnn's trainer, exact logits, ONNX."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from bqnn.blocks.code import INCEPTION_LIKE, parse
from bqnn.config import NetworkConfig
from bqnn.nets.network import build_network
from bqnn.nets.portable import UnreadableFile, load_network, save_network
from tests.conftest import needs_fashion, run_module

FRESH = """
import sys, torch
import bqnn
net = bqnn.load_network(sys.argv[1])
x = torch.load(sys.argv[2], weights_only=True)
with torch.no_grad():
    y = net((x - net.mean) / net.std)
torch.save(y, sys.argv[3])
loaded = sorted(m for m in sys.modules if m.startswith("bqnn"))
print(" ".join(loaded))
"""


@needs_fashion
def test_trained_network_reproduces_its_logits_in_a_fresh_process(tmp_path):
    out = tmp_path / "run"
    r = run_module("bqnn.train", "--block", "inception-like", "--out", str(out), "--set", "train.epochs=1",
                   "--set", "data.train_subset=800", "--set", "data.val_size=300", "--set", "data.resize=14",
                   "--set", "network.blocks_per_stage=1", "--set", "network.filters=[8,16,32]")
    assert r.returncode == 0, r.stderr
    state = torch.load(out / "model.pt", weights_only=True)  # safe to load: no code runs
    assert state["format"] == "bqnn-network" and state["nsc"].startswith("[(1,4,0,0,0),(2,1,1,1,0)")
    assert state["network"] == {"framework": "cifar", "blocks_per_stage": 1, "filters": [8, 16, 32]}
    assert state["meta"]["test_accuracy"] == json.loads((out / "result.json").read_text())["test_accuracy"]
    # the reference: the best weights from the training checkpoint, in this process
    ckpt = torch.load(out / "train.pt", weights_only=True)
    ref = build_network(INCEPTION_LIKE, NetworkConfig("cifar", 1, (8, 16, 32)), 1, 14, 10)
    ref.load_state_dict(ckpt["best_model"])
    ref.eval()
    images = torch.rand(5, 1, 14, 14)
    torch.save(images, tmp_path / "x.pt")
    mean, std = torch.tensor(state["mean"]).view(1, -1, 1, 1), torch.tensor(state["std"]).view(1, -1, 1, 1)
    with torch.no_grad():
        expected = ref((images - mean) / std)
    p = subprocess.run([sys.executable, "-c", FRESH, str(out / "model.pt"), str(tmp_path / "x.pt"),
                        str(tmp_path / "y.pt")],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr
    modules = p.stdout.split()
    assert "bqnn.nets.portable" in modules and \
        not {"bqnn.training", "bqnn.train", "bqnn.data", "bqnn.run"} & set(modules)
    assert torch.equal(torch.load(tmp_path / "y.pt", weights_only=True), expected)  # exactly


def test_onnx_export_matches(tmp_path):
    """The supported exporter (torch.export), no deprecation warning; the file passes the ONNX checker and
    onnxruntime's logits equal the network's within 1e-4 at batch sizes other than the traced one."""
    import onnx
    import onnxruntime as ort

    nsc = parse("[(1,4,0,0,0),(2,1,3,1,0),(3,2,3,1,0),(4,6,0,2,3),(5,5,0,1,4),(6,7,0,0,0)]")
    net = build_network(nsc, NetworkConfig("cifar", 1, (8, 16, 32)), 3, 16, 4).eval()
    save_network(tmp_path / "m.pt", net, nsc, NetworkConfig("cifar", 1, (8, 16, 32)), 3, 16, 4, (0.5,) * 3, (0.25,) * 3)
    r = run_module("bqnn.export", str(tmp_path / "m.pt"), "--onnx", str(tmp_path / "m.onnx"))
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["classes"] == 4 and info["onnx"].endswith("m.onnx")
    assert r.stderr == "", r.stderr  # no warning: the supported exporter, its noise about other packages quieted
    model = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["images"] and [o.name for o in model.graph.output] == ["logits"]
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    for batch in (1, 3, 17):
        x = torch.randn(batch, 3, 16, 16)
        y = session.run(None, {"images": x.numpy()})[0]
        with torch.no_grad():
            assert y.shape == (batch, 4) and np.abs(y - net(x).numpy()).max() < 1e-4


class Code:  # what a weights-only load must refuse: a class of the writer's program
    pass


def _small_network_file(path):
    nsc = parse("[(1,4,0,0,0),(2,1,3,1,0),(3,7,0,0,0)]")
    cfg = NetworkConfig("cifar", 1, (8, 16, 32))
    save_network(path, build_network(nsc, cfg, 1, 8, 3).eval(), nsc, cfg, 1, 8, 3, (0.5,), (0.25,))
    return path


def _edited(change):
    def make(path):
        _small_network_file(path)
        state = torch.load(path, weights_only=True)
        change(state)
        torch.save(state, path)
    return make


NOT_NETWORKS = {
    "plain dict": (lambda p: torch.save({"hello": 1}, p), "not a network exported by bqnn"),
    "code in the pickle": (lambda p: torch.save({"x": Code()}, p), "not a file of plain weights \\(Unsupported global"),
    "junk": (lambda p: p.write_bytes(b"garbage" * 10), "not a file of plain weights"),
    "empty": (lambda p: p.write_bytes(b""), "not a file of plain weights"),
    "truncated": (lambda p: p.write_bytes(_small_network_file(p).read_bytes()[:-200]), "not a file of plain weights"),
    "weights of another shape": (_edited(lambda s: s["state_dict"].update(
        {k: torch.zeros(1) for k in list(s["state_dict"])[:1]})), "a damaged bqnn network file \\(RuntimeError"),
    "key missing": (_edited(lambda s: s.pop("network")), "a damaged bqnn network file \\(KeyError"),
    "directory": (lambda p: p.mkdir(), "cannot read \\(Is a directory\\)"),
    "missing": (lambda p: None, "cannot read \\(No such file or directory\\)"),
}


@pytest.mark.parametrize("kind", NOT_NETWORKS)
def test_not_a_network_file_is_one_line_naming_it(tmp_path, capsys, kind):
    from bqnn.export import main

    make, words = NOT_NETWORKS[kind]
    path = tmp_path / "x.pt"
    make(path)
    with pytest.raises(UnreadableFile, match=words):
        load_network(path)
    assert main([str(path)]) == 2  # python -m bqnn.export PATH (one case runs as a program below)
    err = capsys.readouterr().err
    assert err.startswith(f"bqnn.export: error: {path}") and len(err.strip().splitlines()) == 1, err


def test_export_refusing_a_pickle_with_code_is_one_line_as_a_program(tmp_path):
    torch.save({"x": Code()}, tmp_path / "x.pt")
    r = run_module("bqnn.export", str(tmp_path / "x.pt"))
    assert r.returncode == 2 and r.stderr == (f"bqnn.export: error: {tmp_path / 'x.pt'}: not a file of plain weights "
                                              "(Unsupported global: GLOBAL tests.unit.nets.test_portable.Code was not "
                                              "an allowed global by default)\n"), r.stderr
