"""The package metadata admits only what is tested: the torch range starts at the release CI installs, and the
APIs the trainer relies on exist there (issue 15: `torch>=2.1` admitted releases the code cannot run on)."""
import ast

import torch
from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import ROOT


def _torch_requirement() -> Requirement:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "TORCH" for t in node.targets):
            return Requirement(node.value.value)
    raise AssertionError("setup.py has no TORCH requirement")


def test_the_torch_range_starts_at_the_tested_release():
    req = _torch_requirement()
    installed = Version(torch.__version__.split("+")[0])
    assert installed in req.specifier, (installed, str(req))
    lowest = min(Version(s.version) for s in req.specifier if s.operator == ">=")
    assert (lowest.major, lowest.minor) == (installed.major, installed.minor), "the floor is the release CI runs"
    assert hasattr(torch, "OutOfMemoryError")
    torch.optim.Adam([torch.zeros(2, requires_grad=True)], fused=True)  # fused Adam on the CPU
