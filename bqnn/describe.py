"""Inspect one block code: python -m bqnn.describe CODE [--channels C] [--hw H] [--network cifar|imagenet] [--json]

    python -m bqnn.describe "[(1,4,0,0,0),(2,1,3,1,0),(3,1,3,2,0),(4,5,0,1,3),(5,7,0,0,0)]" --channels 32 --hw 32
    python -m bqnn.describe residual-like --network cifar --classes 100
    python -m bqnn.describe --from runs/demo --rank 1          # a run's best block, in the run's own network
    python -m bqnn.describe CODE --from runs/demo --json       # any code, costed as that run would cost it

CODE is the paper's text form or a named block (inception-like, residual-like). Prints the block readably: its
layers row by row as the report draws them (input at the top, each layer with its index and the layers it reads),
its graph's numbers, the block's own params and FLOPs (`channels` wide in and out, on an H x H map; FLOPs per
image, a multiply-add counted as 2) and, with --network or --from, the whole network's. `--json` prints one JSON
object instead: valid, nsc, hash (canonical), spaces (the search spaces, `space.layers`, whose layer types it uses:
"pcc" and/or "separate"), nodes, edges, density, leaves, rows (the drawing's nodes per row: id, label and the ids
it reads, 0 the block's input), params, flops, out_channels, in_channels, hw and,
with --network or --from, `network` (its params, FLOPs, block number N and the reward's penalty terms,
docs/reward.md).

--network assumes the paper's network for the framework (its filters, N and 100 classes unless given). --from DIR
uses the run's own: its network, limits (BlockQNN-L's N) and dataset's shape, read from DIR/search.h5, so the
params and FLOPs are those `bqnn.report DIR` shows for the same block; its penalty is the run's reward's. A file
written by a newer bqnn is refused as everywhere else (docs/state.md).

An invalid code prints one line naming the row and the rule broken and exits 2; so does a bad option (numbers are
ASCII digits, within their ranges), a code that uses layer types outside the space named by --space, and a DIR
that holds no readable search.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from .blocks.canon import canonical_hash
from .blocks.code import NAMED_BLOCKS, NSC, NSCError, format_nsc, parse
from .blocks.space import LAYER_TYPES, spaces_of
from .cli import Parser, count, emit
from .config import Config, ConfigError, RewardConfig


class Refused(Exception):
    """One line for stderr; exit 2."""


def _check(args: argparse.Namespace) -> str | None:
    """What is wrong with the numbers and options given, or None."""
    limits = {"--channels": (args.channels, 1, 65_536), "--hw": (args.hw, 1, 4096),
              "--in-channels": (args.in_channels, 1, 65_536), "--max-index": (args.max_index, 2, 31),
              "--classes": (args.classes, 1, 100_000), "--image-size": (args.image_size, 1, 4096),
              "--rank": (args.rank, 1, 10**9)}
    for name, (value, lo, hi) in limits.items():
        if value is not None and not lo <= value <= hi:
            return f"{name} must be in {lo}..{hi}, got {value}"
    if args.source is not None:
        given = [name for name, v in (("--network", args.network), ("--classes", args.classes),
                                      ("--image-size", args.image_size), ("--filters", args.filters),
                                      ("--blocks-per-stage", args.blocks_per_stage)) if v is not None]
        if given:
            return f"{given[0]} cannot be given with --from: the run's own network is used"
        if (args.code is None) == (args.rank is None):
            return "with --from give either CODE or --rank K (the run's K-th best block)"
    elif args.rank is not None:
        return "--rank needs --from DIR"
    elif args.code is None:
        return "CODE is required (or --from DIR --rank K)"
    return None


def _parser() -> Parser:
    p = Parser(prog="bqnn.describe", description="Describe one NSC block code.")
    p.add_argument("code", nargs="?", help='"[(1,4,0,0,0),...]" or a named block: ' + ", ".join(NAMED_BLOCKS))
    p.add_argument("--channels", type=count, default=32, help="block width C (default 32)")
    p.add_argument("--hw", type=count, default=32, help="feature map side H (default 32)")
    p.add_argument("--in-channels", type=count, default=None, help="block input width (default: C)")
    p.add_argument("--max-index", type=count, default=23, help="largest layer index allowed (default 23)")
    p.add_argument("--space", choices=list(LAYER_TYPES), default=None,
                   help="refuse a code with layer types this search space (space.layers) does not propose")
    p.add_argument("--network", choices=["cifar", "imagenet"], help="also cost the paper's network")
    p.add_argument("--classes", type=count, default=None, help="classes of --network (default 100)")
    p.add_argument("--image-size", type=count, default=None, help="input side (default 32 cifar, 224 imagenet)")
    p.add_argument("--filters", default=None, help="stage widths, e.g. 32,64,128 (default: the paper's)")
    p.add_argument("--blocks-per-stage", type=count, default=None, help="N (default: 4 cifar, 3 imagenet)")
    p.add_argument("--from", dest="source", metavar="DIR", default=None,
                   help="cost the block in this search's network (its search.h5)")
    p.add_argument("--rank", type=count, default=None, help="with --from: describe the run's K-th best block")
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    return p


def _paper_network(args: argparse.Namespace, nsc: NSC, density: float) -> dict[str, Any]:
    from .blocks.cost import network_cost
    from .blocks.reward import PRESETS
    from .config import load

    imagenet = args.network == "imagenet"
    filters = args.filters if args.filters is not None else "64,128,256,512" if imagenet else "32,64,128"
    n = args.blocks_per_stage if args.blocks_per_stage is not None else 3 if imagenet else 4
    size = args.image_size or (224 if imagenet else 32)
    classes = args.classes or 100
    try:  # the network's numbers are checked as a job file's are
        network = load(None, [f"network.framework={args.network}", f"network.blocks_per_stage={n}",
                              f"network.filters=[{filters}]"]).network
    except ConfigError as e:
        raise Refused(f"bqnn.describe: error: --filters/--blocks-per-stage: {e}") from None
    cost = network_cost(nsc, network, 3, size, classes)
    unit = RewardConfig().flops_unit
    return {"framework": args.network, "blocks_per_stage": n, "filters": list(network.filters), "in_channels": 3,
            "image_size": size, "classes": classes, "params": cost.params, "flops": cost.flops,
            "penalty": {name: {"flops_term": mu * math.log(cost.flops / unit),
                               "density_term": rho * math.log(density)}
                        for name, (mu, rho) in PRESETS.items() if name != "accuracy"}}


def _run_network(cfg: Config, source: str, nsc: NSC, block_hash: str) -> dict[str, Any]:
    """The block costed as the search in `source` costs it (run/costs.py: its network, limits and data shape)."""
    from .blocks.reward import weights
    from .data.shapes import dataset_shape
    from .run.costs import Costs

    try:
        channels, size, classes = dataset_shape(cfg.data)
        cost = Costs(cfg).of(nsc, block_hash)
    except (OSError, ValueError, ConfigError) as e:
        raise Refused(f"bqnn.describe: error: --from {source}: the run's dataset cannot be sized: {e}") from None
    mu, rho = weights(cfg.reward)
    out: dict[str, Any] = {
        "from": source, "framework": cfg.network.framework, "blocks_per_stage": cost.blocks,
        "filters": list(cfg.network.filters), "dataset": cfg.data.dataset, "in_channels": channels,
        "image_size": size, "classes": classes, "params": cost.params, "flops": cost.flops}
    if cost.blocks == 0:  # BlockQNN-L: fits at no N, the search rejects it
        from .blocks.budget import rejection

        out["rejected"] = rejection(cfg.limits, cfg.network)
    out["penalty"] = {cfg.reward.preset: {"flops_term": mu * math.log(cost.flops / cfg.reward.flops_unit),
                                          "density_term": rho * math.log(cost.density)}}
    return out


def _block(args: argparse.Namespace) -> tuple[NSC, Config | None, dict[str, Any]]:
    """(the block, the run's config or None, where it came from)."""
    if args.source is None:
        return (NAMED_BLOCKS[args.code] if args.code in NAMED_BLOCKS else parse(args.code, args.max_index)), None, {}
    from .config import from_json
    from .results.ranking import top_block
    from .run.checkpoint import CheckpointError, load

    try:
        if args.rank is not None:
            nsc, record, config_json = top_block(args.source, args.rank)
            found = {"rank": record["rank"], "id": record["id"], "reward": record["reward"],
                     "accuracy": record["early_stop_accuracy"]}
        else:
            state, _, warning = load(args.source)
            if warning:
                print(warning, file=sys.stderr)
            config_json, found = state.config_json, {}
            nsc = NAMED_BLOCKS[args.code] if args.code in NAMED_BLOCKS else parse(args.code, state.max_index)
        return nsc, from_json(config_json), found
    except (CheckpointError, ConfigError) as e:
        raise Refused(f"bqnn.describe: error: --from {args.source}: {e}") from None


def describe(args: argparse.Namespace) -> dict[str, Any]:
    """The JSON object of the module's docstring. NSCError for a bad code, Refused for the rest."""
    from .blocks.cost import block_metrics
    from .blocks.drawing import drawing

    nsc, cfg, found = _block(args)
    spaces = spaces_of(nsc)
    space = args.space or (cfg.space.layers if cfg is not None else None)
    if space is not None and space not in spaces:
        types = ", ".join(str(t) for t in LAYER_TYPES[space])
        raise NSCError(f"not in the {space!r} space: it uses layer types outside {types} (and 7)")
    block_hash = canonical_hash(nsc)
    out: dict[str, Any] = {"valid": True, "nsc": format_nsc(nsc), "hash": block_hash, "spaces": spaces}
    out.update(block_metrics(nsc, args.channels, args.hw, args.in_channels))
    out.update(in_channels=args.in_channels or args.channels, hw=args.hw)
    d = drawing(nsc)
    reads = {v.id: [p for p, w in d.edges if w == v.id] for v in d.nodes}
    out["rows"] = [[{"id": v.id, "label": v.label, "reads": reads[v.id]} for v in d.nodes if v.row == r]
                   for r in range(d.rows)]
    if found:
        out["found"] = found
    if cfg is not None:
        out["network"] = _run_network(cfg, args.source, nsc, block_hash)
    elif args.network:
        out["network"] = _paper_network(args, nsc, out["density"])
    return out


def _name(node: int) -> str:
    """A node as the `reads` column names it: the block's input, or a layer's index."""
    return "Input" if node == 0 else str(node)


def text(d: dict[str, Any]) -> str:
    """The readable form of `describe`'s object."""
    lines = [d["nsc"]]
    if "found" in d:
        f = d["found"]
        lines.append(f"rank {f['rank']} of the run: candidate {f['id']}, reward {f['reward']:.2f}, "
                     f"early-stop accuracy {f['accuracy']:.2f} %")
    lines.append(f"hash {d['hash']}   spaces: {', '.join(d['spaces'])}")
    lines.append("")
    width = max(len(v["label"]) for row in d["rows"] for v in row)
    lines.append(f"  row  {'layer':<{width}}  reads")
    for r, row in enumerate(d["rows"]):
        for v in row:
            lines.append(f"  {r:>3}  {v['label']:<{width}}  {', '.join(_name(x) for x in v['reads'])}".rstrip())
    lines.append("")
    lines.append(f"graph: {d['nodes']} nodes, {d['edges']} edges, density {d['density']:.3f}, "
                 f"leaves {', '.join(str(x) for x in d['leaves'])}")
    lines.append(f"block alone ({d['in_channels']} -> {d['out_channels']} channels, {d['hw']}x{d['hw']}): "
                 f"{d['params']:,} params, {d['flops'] / 1e6:,.2f} MFLOPs")
    if "network" in d:
        n = d["network"]
        where = f"the run in {n['from']} ({n['dataset']}, " if "from" in n else "the paper's network ("
        lines.append(f"network: {where}{n['framework']}, N = {n['blocks_per_stage']}, filters "
                     f"{','.join(str(x) for x in n['filters'])}, {n['in_channels']}x{n['image_size']}x"
                     f"{n['image_size']} input, {n['classes']} classes)")
        if "rejected" in n:
            lines.append(f"  rejected by the run: {n['rejected']}")
        lines.append(f"  {n['params']:,} params, {n['flops'] / 1e9:,.4f} GFLOPs per image")
        for name, p in n["penalty"].items():
            lines.append(f"  reward ({name}): FLOPs term {0.0 - p['flops_term']:+.2f}, density term "
                         f"{0.0 - p['density_term']:+.2f} points")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if (why := _check(args)) is not None:
        print(f"bqnn.describe: error: {why}", file=sys.stderr)
        return 2
    try:
        out = describe(args)
    except NSCError as e:
        print(f"invalid NSC: {e}", file=sys.stderr)
        return 2
    except Refused as e:
        print(e, file=sys.stderr)
        return 2
    emit(json.dumps(out) if args.json else text(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
