"""Inspect one block code: python -m bqnn.describe CODE [--channels C] [--hw H] [--network cifar|imagenet]

    python -m bqnn.describe "[(1,4,0,0,0),(2,1,3,1,0),(3,1,3,2,0),(4,5,0,1,3),(5,7,0,0,0)]" --channels 32 --hw 32
    python -m bqnn.describe residual-like --network cifar --classes 100

CODE is the paper's text form or a named block (inception-like, residual-like).
Prints one JSON object: valid, nsc, hash (canonical), spaces (the search spaces, `space.layers`, whose
layer types it uses: "pcc" and/or "separate"), nodes, edges, density,
leaves, and params/flops of the block alone (`channels` wide in and out, on an
H x H map; FLOPs per image, a multiply-add counted as 2). With --network, also
the whole network's params and FLOPs as the search trains it and the reward's
penalty terms (docs/reward.md). An invalid code prints one line naming the row
and the rule broken and exits 2; so does a bad option (numbers are ASCII digits, within their ranges), and
a code that uses layer types outside the space named by --space.
"""
from __future__ import annotations

import argparse
import json
import math
import sys

from .blocks.canon import canonical_hash
from .blocks.code import NAMED_BLOCKS, NSCError, format_nsc, parse
from .blocks.space import LAYER_TYPES, spaces_of
from .cli import Parser, count, emit


def _check(args: argparse.Namespace) -> str | None:
    """What is wrong with the numbers given, or None."""
    limits = {"--channels": (args.channels, 1, 65_536), "--hw": (args.hw, 1, 4096),
              "--in-channels": (args.in_channels, 1, 65_536), "--max-index": (args.max_index, 2, 31),
              "--classes": (args.classes, 1, 100_000), "--image-size": (args.image_size, 1, 4096)}
    for name, (value, lo, hi) in limits.items():
        if value is not None and not lo <= value <= hi:
            return f"{name} must be in {lo}..{hi}, got {value}"
    return None


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="bqnn.describe", description="Describe one NSC block code.")
    p.add_argument("code", help='"[(1,4,0,0,0),...]" or a named block: ' + ", ".join(NAMED_BLOCKS))
    p.add_argument("--channels", type=count, default=32, help="block width C (default 32)")
    p.add_argument("--hw", type=count, default=32, help="feature map side H (default 32)")
    p.add_argument("--in-channels", type=count, default=None, help="block input width (default: C)")
    p.add_argument("--max-index", type=count, default=23, help="largest layer index allowed (default 23)")
    p.add_argument("--space", choices=list(LAYER_TYPES), default=None,
                   help="refuse a code with layer types this search space (space.layers) does not propose")
    p.add_argument("--network", choices=["cifar", "imagenet"], help="also cost the whole network")
    p.add_argument("--classes", type=count, default=100)
    p.add_argument("--image-size", type=count, default=None, help="input side (default 32 cifar, 224 imagenet)")
    p.add_argument("--filters", default=None, help="stage widths, e.g. 32,64,128 (default: the paper's)")
    p.add_argument("--blocks-per-stage", type=count, default=None, help="N (default: 4 cifar, 3 imagenet)")
    args = p.parse_args(argv)
    if (why := _check(args)) is not None:
        print(f"bqnn.describe: error: {why}", file=sys.stderr)
        return 2
    try:
        nsc = NAMED_BLOCKS[args.code] if args.code in NAMED_BLOCKS else parse(args.code, args.max_index)
    except NSCError as e:
        print(f"invalid NSC: {e}", file=sys.stderr)
        return 2
    spaces = spaces_of(nsc)
    if args.space is not None and args.space not in spaces:
        types = ", ".join(str(t) for t in LAYER_TYPES[args.space])
        print(f"invalid NSC: not in the {args.space!r} space: it uses layer types outside {types} (and 7)",
              file=sys.stderr)
        return 2
    from .blocks.cost import block_metrics

    out = {"valid": True, "nsc": format_nsc(nsc), "hash": canonical_hash(nsc), "spaces": spaces}
    out.update(block_metrics(nsc, args.channels, args.hw, args.in_channels))
    if args.network:
        from .blocks.cost import network_cost
        from .blocks.reward import PRESETS
        from .config import ConfigError, RewardConfig, load

        imagenet = args.network == "imagenet"
        filters = args.filters if args.filters is not None else "64,128,256,512" if imagenet else "32,64,128"
        n = args.blocks_per_stage if args.blocks_per_stage is not None else 3 if imagenet else 4
        size = args.image_size or (224 if imagenet else 32)
        try:  # the network's numbers are checked as a job file's are
            network = load(None, [f"network.framework={args.network}", f"network.blocks_per_stage={n}",
                                  f"network.filters=[{filters}]"]).network
        except ConfigError as e:
            print(f"bqnn.describe: error: --filters/--blocks-per-stage: {e}", file=sys.stderr)
            return 2
        cost = network_cost(nsc, network, 3, size, args.classes)
        unit = RewardConfig().flops_unit
        out["network"] = {
            "framework": args.network, "blocks_per_stage": n, "filters": list(network.filters), "image_size": size,
            "classes": args.classes, "params": cost.params, "flops": cost.flops,
            "penalty": {name: {"flops_term": mu * math.log(cost.flops / unit),
                               "density_term": rho * math.log(out["density"])}
                        for name, (mu, rho) in PRESETS.items() if name != "accuracy"},
        }
    emit(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
