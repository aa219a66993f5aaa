"""bqnn: BlockQNN (Zhong et al., CVPR 2018 / AAAI 2018), block-wise architecture search with Q-learning.

    python -m bqnn.search --config jobs/demo.toml --out runs/demo    # a search
    python -m bqnn.report runs/demo                                  # its summary
    python -m bqnn.describe "[(1,4,0,0,0),(2,1,3,1,0),(3,7,0,0,0)]"  # one block code

The module map is in DESIGN.md; choices made where the papers are silent are in docs/.
"""
__version__ = "0.1.0"
