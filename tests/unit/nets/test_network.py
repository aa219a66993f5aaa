"""Whole networks (nets/network.py): the CIFAR framework's stages and MSRA init."""
import pytest
import torch

from bqnn.blocks.code import RESIDUAL_LIKE
from bqnn.config import NetworkConfig
from bqnn.nets.block import Block
from bqnn.nets.network import build_network


def test_cifar_framework_stages_and_msra_init():
    net = build_network(RESIDUAL_LIKE, NetworkConfig(), 3, 32, 100)
    blocks = [m for m in net.features if isinstance(m, Block)]
    assert [b.plan.width for b in blocks] == [32] * 4 + [64] * 4 + [128] * 4  # N=4, filters doubled after pooling
    pools = [m for m in net.features if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 2
    conv = net.features[0]
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert conv.weight.std().item() == pytest.approx((2.0 / fan_out) ** 0.5, rel=0.2)
    inet = build_network(RESIDUAL_LIKE, NetworkConfig("imagenet", 3, (64, 128, 256, 512)), 3, 224, 1000)
    assert len([m for m in inet.features if isinstance(m, Block)]) == 12
    feats = inet.features[:8](torch.randn(1, 3, 224, 224))
    assert feats.shape[-1] == 28  # the ImageNet stem downsamples 224 -> 28 before the first blocks
