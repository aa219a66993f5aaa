"""The code parser and `python -m bqnn.describe` against what users may type (hypothesis): a valid code that
round-trips, or one line and exit 2; never another exception, never a hang."""
import contextlib
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bqnn.blocks.code import NSCError, format_nsc, parse
from bqnn.describe import main as describe

ROWS = st.lists(st.tuples(*[st.integers(-3, 40)] * 5), min_size=0, max_size=8)
JUNK = st.text(alphabet="[](), 0123456789-+.eE\n\t٣５x", max_size=60)
FAST = settings(max_examples=1200, deadline=1000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def _row(r: tuple[int, ...]) -> str:
    return "(" + ",".join(str(v) for v in r) + ")"


def texts():
    return st.one_of(
        ROWS.map(lambda rs: "[" + ",".join(_row(r) for r in rs) + "]"),
        ROWS.map(lambda rs: "[" + " ".join(_row(r) for r in rs) + "]"),  # no commas between rows
        JUNK, JUNK.map(lambda t: "[" + t + "]"),
        st.integers(1, 6000).map(lambda k: f"[(1,4,0,0,0),(2,1,3,1,0),(3,7,0,0,{''.join(['9'] * k)})]"))


@FAST
@given(texts())
def test_the_parser_returns_a_code_that_round_trips_or_raises_one_line(text):
    try:
        nsc = parse(text)
    except NSCError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert parse(format_nsc(nsc)) == nsc


OPTIONS = st.lists(st.tuples(st.sampled_from(["--channels", "--hw", "--in-channels", "--max-index", "--classes",
                                              "--image-size", "--filters", "--blocks-per-stage", "--network"]),
                             st.one_of(st.sampled_from(["cifar", "imagenet", "-2", "0", "3", "32", "a,b", "32,,64",
                                                        "0,0,0", "8,16", "５", "9" * 40, ""]), JUNK)),
                   max_size=3)


@FAST
@given(st.one_of(texts(), st.sampled_from(["residual-like", "inception-like"])), OPTIONS)
def test_describe_answers_json_or_one_line_and_exit_2(code, options):
    argv = [code, "--json"] + [x for pair in options for x in pair]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = describe(argv)
        except SystemExit as e:  # argparse's own errors, made one line by bqnn.cli.Parser
            rc = e.code
    if rc == 0:
        assert out.getvalue().startswith('{"valid": true') and not err.getvalue()
    else:
        assert rc == 2 and len(err.getvalue().strip().splitlines()) == 1, err.getvalue()
