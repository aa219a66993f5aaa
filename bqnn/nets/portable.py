"""Trained networks as one portable file, and back; and as ONNX.

Used as a library by training/final.py (`save_network`), `bqnn.load_network` and `python -m bqnn.export`:

    import bqnn
    net = bqnn.load_network("runs/res/model.pt")          # an eval-mode torch.nn.Module
    logits = net((images - net.mean) / net.std)           # images: (B, C, H, W) in [0, 1]

`python -m bqnn.train` writes OUT/model.pt at the end (the weights of the best validation epoch).
The file is a dict that `torch.load(path, weights_only=True)` reads without running any code:
format and version, the block code as text, the framework (cifar/imagenet, N, filters), input
channels, image size, classes, the training split's per-channel mean and std, the state dict, and
a `meta` dict of plain values (accuracies, protocol, source). Loading needs only bqnn's block and
network builders (blocks/, nets/), not its trainer, data or MPI code.
"""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic import atomic_path
from ..blocks.code import NSC, format_nsc, parse
from ..config import NetworkConfig
from .network import build_network

FORMAT = "bqnn-network"
VERSION = 1


class UnreadableFile(ValueError):
    """A file torch cannot read as plain weights (damaged, not a torch file, or holding code); one line."""


def load_weights_only(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """`torch.load(path, weights_only=True)`, its failures (several lines of advice from torch) turned into
    one line naming the file and the reason. Also used for `python -m bqnn.train`'s train.pt."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except OSError as e:
        if e.filename is not None:  # opening it failed: missing, a directory, no permission
            raise UnreadableFile(f"{path}: cannot read ({e.strerror or e})") from None
        raise UnreadableFile(f"{path}: not a file of plain weights ({one_line_reason(e)})") from None  # a bad seek
    except Exception as e:  # UnpicklingError (refused or damaged pickle), RuntimeError (not a zip), EOFError
        raise UnreadableFile(f"{path}: not a file of plain weights ({one_line_reason(e)})") from None


def one_line_reason(e: BaseException) -> str:
    """The informative line of torch's message: the unpickler's own words, else its first non-empty line."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for ln in lines:
        if "WeightsUnpickler error:" in ln:
            rest = ln.split("WeightsUnpickler error:", 1)[1].strip()
            if rest:
                return rest.split(" Please use ")[0].rstrip(".")
            i = lines.index(ln)
            return lines[i + 1] if i + 1 < len(lines) else type(e).__name__
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


def save_network(path: str | Path, model: nn.Module, nsc: NSC, network: NetworkConfig, in_channels: int,
                 image_size: int, num_classes: int, mean: tuple[float, ...], std: tuple[float, ...],
                 meta: dict | None = None) -> Path:
    """Write the network atomically (part file, fsync, rename)."""
    path = Path(path)
    state = {
        "format": FORMAT,
        "version": VERSION,
        "nsc": format_nsc(nsc),
        "network": {"framework": network.framework, "blocks_per_stage": network.blocks_per_stage,
                    "filters": list(network.filters)},
        "in_channels": in_channels,
        "image_size": image_size,
        "num_classes": num_classes,
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": json.loads(json.dumps(meta or {})),  # plain values only
    }
    with atomic_path(path) as part:
        torch.save(state, part)
    return path


def load_network(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """The network in eval mode, with `.nsc`, `.mean`, `.std` (tensors shaped (1, C, 1, 1)) and `.meta`.
    A file that is not such a network raises UnreadableFile (one line naming it)."""
    state = load_weights_only(path, map_location)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UnreadableFile(f"{path} is not a network exported by bqnn")
    try:
        return _network(state, path)
    except UnreadableFile:
        raise
    except Exception as e:  # a key missing or of the wrong type, weights of another shape: damaged or edited
        raise UnreadableFile(f"{path}: a damaged bqnn network file ({one_line_reason(e)})") from None


def _network(state: dict, path: str | Path) -> nn.Module:
    if int(state["version"]) > VERSION:
        raise UnreadableFile(f"{path} has format version {state['version']}, newer than this bqnn ({VERSION})")
    n = state["network"]
    cfg = NetworkConfig(n["framework"], int(n["blocks_per_stage"]), tuple(int(f) for f in n["filters"]))
    nsc = parse(state["nsc"], max_index=max(31, state["nsc"].count("(")))
    model = build_network(nsc, cfg, int(state["in_channels"]), int(state["image_size"]), int(state["num_classes"]))
    model.load_state_dict(state["state_dict"])
    model.eval()
    model.mean = torch.tensor(state["mean"]).view(1, -1, 1, 1)
    model.std = torch.tensor(state["std"]).view(1, -1, 1, 1)
    model.meta = state["meta"]
    model.image_size = int(state["image_size"])
    return model


def export_onnx(model: nn.Module, path: str | Path, in_channels: int, image_size: int) -> Path:
    """ONNX graph of the network (input `images`, dynamic batch; output `logits`), through PyTorch's supported
    exporter (torch.export, `dynamo=True`), checked with the ONNX checker before the file is written (atomically).
    Needs the onnx and onnxscript packages (the `onnx` extra)."""
    try:
        import onnx
        import onnxscript  # noqa: F401  (the exporter's translation library)
    except ImportError as e:
        raise RuntimeError(f"ONNX export needs the onnx and onnxscript packages: pip install 'bqnn[onnx]' ({e})") \
            from None
    model = model.eval()
    x = torch.zeros(2, in_channels, image_size, image_size)  # batch 2: torch.export specializes a batch of 1
    batch = torch.export.Dim("batch", min=1, max=65536)
    # the exporter's own noise, about nothing in this network: it lists torchvision's operators it skips when
    # torchvision is absent (logging), and torch.export trips over a deprecation inside torch (FutureWarning)
    quiet = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated", category=FutureWarning)
            program = torch.onnx.export(model, (x,), dynamo=True, input_names=["images"], output_names=["logits"],
                                        dynamic_shapes=({0: batch},), optimize=True, verbose=False)
    finally:
        quiet.setLevel(level)
    if program is None:
        raise RuntimeError("the ONNX exporter returned no program")
    proto = program.model_proto
    onnx.checker.check_model(proto, full_check=True)
    with atomic_path(Path(path)) as part:
        onnx.save_model(proto, str(part))
    return Path(path)
