"""bqnn: BlockQNN (Zhong et al., CVPR 2018 / AAAI 2018), block-wise architecture search with Q-learning.

    python -m bqnn.search --config jobs/demo.toml --out runs/demo    # a search
    python -m bqnn.report runs/demo                                  # its summary, CSV and plots
    python -m bqnn.describe "[(1,4,0,0,0),(2,1,3,1,0),(3,7,0,0,0)]"  # one block code
    python -m bqnn.train --from runs/demo --rank 1                   # train a block to convergence

    net = bqnn.load_network("runs/x/model.pt")                       # a trained, exported network

The module map is docs/architecture.md; choices made where the papers are silent are in docs/.
"""
__version__ = "0.1.0"


def load_network(path, map_location="cpu"):
    """Load a network written by `python -m bqnn.train` (nets/portable.py); imports torch on first use."""
    from .nets.portable import load_network as _load

    return _load(path, map_location)
