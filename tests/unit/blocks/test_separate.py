"""The separate-components space (CVPR Fig. 9, AAAI Fig. 3): ReLU, batch norm and a plain convolution as layer
types of their own. Codes, the space's actions, describe and the simulated credit; no torch (the built modules
are checked against the analytic costs in tests/unit/nets/test_separate_build.py)."""
import json

import pytest

from bqnn.blocks.canon import canonical_hash
from bqnn.blocks.code import Op, format_nsc, from_array, parse, to_array, validate
from bqnn.blocks.space import LAYER_TYPES, START, Space, spaces_of
from bqnn.config import ConfigError, load
from bqnn.strategies.predictor import KINDS, features
from bqnn.strategies.qtable import QTable
from bqnn.training.simulated import _SIM_CREDIT, simulated_accuracy
from tests.conftest import run_module

# ReLU -> plain conv 3x3 -> BN, twice, and a shortcut from the input: the residual-like block in separate parts
SEPARATE_RESIDUAL = ("[(1,4,0,0,0),(2,8,0,1,0),(3,10,3,2,0),(4,9,0,3,0),(5,8,0,4,0),(6,10,3,5,0),(7,9,0,6,0),"
                     "(8,5,0,1,7),(9,7,0,0,0)]")


def test_the_new_types_follow_table_1s_rules():
    validate([(1, 4, 0, 0, 0), (2, 8, 0, 1, 0), (3, 9, 0, 2, 0), (4, 10, 5, 3, 0), (5, 7, 0, 0, 0)])
    for rows, message in [
        ([(1, 4, 0, 0, 0), (2, 10, 2, 1, 0), (3, 7, 0, 0, 0)], "kernel 2 is not allowed for plain convolution"),
        ([(1, 4, 0, 0, 0), (2, 8, 3, 1, 0), (3, 7, 0, 0, 0)], "kernel 3 is not allowed for ReLU"),
        ([(1, 4, 0, 0, 0), (2, 9, 0, 1, 0), (3, 9, 0, 1, 2), (4, 7, 0, 0, 0)], "pred2 must be 0 for batch norm"),
    ]:
        with pytest.raises(ValueError, match=message):
            validate(rows)


def test_the_separate_space_offers_the_components_and_never_the_pcc():
    pcc, sep = Space(), Space(layers="separate")
    assert {a.type for a in sep.layers_at(3)} == {2, 3, 4, 5, 6, 8, 9, 10}
    assert {a.type for a in pcc.layers_at(3)} == {1, 2, 3, 4, 5, 6}
    # index t: (3 conv kernels + 2 + 2 + identity + ReLU + BN) per earlier layer, and the joins
    for t in range(2, 23):
        assert len(sep.layers_at(t)) == 10 * (t - 1) + (t - 1) * (t - 2)
    assert sep.actions(START) == pcc.actions(START)  # the start identity
    assert pcc.kinds == KINDS  # PNAS's features in the PCC space are what they were
    assert set(sep.kinds) == {(2, 1), (2, 3), (3, 1), (3, 3), (4, 0), (5, 0), (6, 0), (8, 0), (9, 0), (10, 1), (10, 3),
                              (10, 5)}
    with pytest.raises(ValueError, match="space.layers"):
        Space(layers="components")


def test_random_separate_blocks_are_valid_codes_in_every_form():
    agent = QTable(Space(layers="separate"), seed=3)
    assert not agent.space.contains(parse(SEPARATE_RESIDUAL.replace("10,3", "1,3")))  # a PCC layer
    seen = set()
    for _ in range(2000):
        nsc = agent.sample(1.0)
        assert validate(nsc) == nsc and agent.space.contains(nsc)
        assert parse(format_nsc(nsc)) == nsc and from_array(to_array(nsc)) == nsc
        assert "separate" in spaces_of(nsc)
        assert len(features(nsc, agent.space.kinds)) == 12 + 13 ** 2 + 5
        seen |= {layer.type for layer in nsc}
    assert {8, 9, 10} <= seen and Op.CONV not in seen


def test_spaces_of_a_code():
    assert spaces_of(parse(SEPARATE_RESIDUAL)) == ["separate"]
    assert spaces_of(parse("[(1,4,0,0,0),(2,1,3,1,0),(3,7,0,0,0)]")) == ["pcc"]
    assert spaces_of(parse("[(1,4,0,0,0),(2,2,3,1,0),(3,5,0,1,2),(4,7,0,0,0)]")) == ["pcc", "separate"]
    assert spaces_of(parse("[(1,4,0,0,0),(2,1,3,1,0),(3,8,0,2,0),(4,7,0,0,0)]")) == []  # both kinds: neither space
    assert set(LAYER_TYPES) == {"pcc", "separate"}


def test_simulated_credit_a_pcc_in_parts_earns_a_pcc_less_the_two_extra_layers():
    """The simulated trainer's model of the papers' finding: the parts earn the cell's credit only together."""
    from bqnn.training.simulated import _credit

    parts = parse("[(1,4,0,0,0),(2,8,0,1,0),(3,10,3,2,0),(4,9,0,3,0),(5,7,0,0,0)]")
    assert sum(_credit(parts, layer) for layer in parts[:-1]) == pytest.approx(_SIM_CREDIT[(1, 3)] - 0.4 - 0.3)
    bare = parse("[(1,4,0,0,0),(2,10,3,1,0),(3,7,0,0,0)]")
    assert _credit(bare, bare[1]) == pytest.approx(0.35 * _SIM_CREDIT[(1, 3)])
    # the same block numbered otherwise: the same hash, the same accuracy
    head = "[(1,4,0,0,0),(2,8,0,1,0),(3,8,0,1,0),"
    other = parse(head + "(4,10,3,2,0),(5,10,1,3,0),(6,9,0,4,0),(7,9,0,5,0),(8,7,0,0,0)]")
    swapped = parse(head + "(4,10,1,3,0),(5,10,3,2,0),(6,9,0,5,0),(7,9,0,4,0),(8,7,0,0,0)]")
    assert canonical_hash(other) == canonical_hash(swapped)
    assert simulated_accuracy(other) == simulated_accuracy(swapped)
    # a PCC in parts is not the PCC, and the order of the parts is part of the block
    pcc = parse("[(1,4,0,0,0),(2,1,3,1,0),(3,7,0,0,0)]")
    reordered = parse("[(1,4,0,0,0),(2,10,3,1,0),(3,8,0,2,0),(4,9,0,3,0),(5,7,0,0,0)]")
    assert len({canonical_hash(parts), canonical_hash(pcc), canonical_hash(reordered)}) == 3


def test_config_and_a_bad_value():
    assert load(None, ["space.layers=separate"]).space.layers == "separate"
    with pytest.raises(ConfigError, match="space.layers"):
        load(None, ["space.layers=relu"])


def test_describe_names_the_spaces_and_checks_one():
    r = run_module("bqnn.describe", SEPARATE_RESIDUAL, "--network", "cifar", "--json")
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["spaces"] == ["separate"] and out["network"]["params"] > 0
    r = run_module("bqnn.describe", SEPARATE_RESIDUAL, "--space", "pcc")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not in the 'pcc' space" in r.stderr
    assert run_module("bqnn.describe", SEPARATE_RESIDUAL, "--space", "separate").returncode == 0


@pytest.mark.parametrize("strategy", ["qlearning", "pnas"])
def test_a_search_in_the_separate_space_proposes_only_its_codes_and_resumes_checked(tmp_path, strategy):
    from bqnn.run import checkpoint
    from bqnn.run.invariants import check_state
    from tests.conftest import SIM_SMALL_NET, search_in_process

    sets = SIM_SMALL_NET + ["space.layers=separate", "space.max_index=7", "search.blocks_per_iteration=8",
                            "search.schedule=[[1.0, 2], [0.1, 2]]", f"search.strategy={strategy}",
                            "pnas.max_size=4", "pnas.beam=8"]
    state, c, _ = search_in_process(tmp_path, strategy, sets)
    types = {int(t) for t in c["nsc"][:, :, 1].ravel()} - {0}
    assert {8, 9, 10} & types and 1 not in types
    check_state(state)  # the stored codes are of the stored config's space
    state.config_json = state.config_json.replace('"separate"', '"pcc"')
    with pytest.raises(checkpoint.CheckpointError, match="outside the search's space"):
        check_state(state)
