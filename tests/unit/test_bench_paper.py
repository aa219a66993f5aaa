"""bench/paper.py: every claim is listed by --help and named on the command line (each runs alone)."""
import re
import subprocess
import sys

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
from paper import CLAIMS, JOBS  # noqa: E402


def test_help_lists_every_claim_and_the_jobs_exist():
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "paper.py"), "--help"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    flat = " ".join(r.stdout.split())
    choices = re.search(r"\{([^}]*appendix-a[^}]*)\}", r.stdout)
    assert choices, r.stdout
    for name, claim in CLAIMS.items():
        assert f"{name}:" in flat and name in choices.group(1).split(",")  # an epilog line and a choice
        assert {job for job, _ in claim.runs.values()} <= set(JOBS)
    assert set(CLAIMS) >= {"appendix-a", "fig11", "fig5", "aaai-fig6", "fig9", "fig8a", "appendix-b"}
    assert all(p.exists() for p in JOBS.values())
