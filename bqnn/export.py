"""Inspect an exported network, or write it as ONNX:

    python -m bqnn.export runs/res/model.pt --onnx runs/res/model.onnx    # ONNX from an exported network
    python -m bqnn.export runs/res/model.pt                               # print what the file holds

The file is what `python -m bqnn.train` writes (nets/portable.py says what it holds); in Python,
`bqnn.load_network("runs/res/model.pt")`. Prints one JSON object; a file that is not an exported
network is one line and exit 2.
"""
from __future__ import annotations

import argparse
import json
import sys

from .blocks.code import format_nsc
from .nets.portable import UnreadableFile, export_onnx, load_network, save_network

__all__ = ["export_onnx", "load_network", "main", "save_network"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bqnn.export",
                                description="Inspect an exported network, or write it as ONNX.")
    p.add_argument("model", help="a model.pt written by python -m bqnn.train")
    p.add_argument("--onnx", help="write the network as ONNX to this file")
    args = p.parse_args(argv)
    try:
        model = load_network(args.model)
    except UnreadableFile as e:  # names the file
        print(f"bqnn.export: error: {e}", file=sys.stderr)
        return 2
    info = {"nsc": format_nsc(model.nsc), "image_size": model.image_size, "classes": model.classifier.out_features,
            "params": sum(p.numel() for p in model.parameters()), "meta": model.meta}
    if args.onnx:
        try:
            export_onnx(model, args.onnx, int(model.mean.shape[1]), model.image_size)
        except RuntimeError as e:
            print(f"bqnn.export: error: {e}", file=sys.stderr)
            return 2
        info["onnx"] = args.onnx
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
