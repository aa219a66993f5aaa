"""The dashboard (python -m bqnn.dashboard) and the report page (report/index.html) in a real headless Chromium: the
page loads on a running search, its table gains rows as candidates finish, a click shows a candidate's curve and its
block, no error in the console, no request leaves localhost; the report opens offline with every view; a screenshot of
each view is kept (runs/test-artifacts/)."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, _candidates_in, run_module, wait_for
from tests.e2e.browser import chromium, console_errors, leaving, needs_browser, requested, screenshot

pytestmark = needs_browser

VIEWS = ("overview", "candidates", "timeline", "pareto", "compare")
SIM = ["--config", "/dev/null", "--set", "trainer.kind=simulated", "--set", "trainer.sim_seconds=0.25",
       "--set", "search.blocks_per_iteration=6", "--set", "search.schedule=[[1.0, 4], [0.3, 4]]",
       "--set", "space.max_index=8", "--set", "pruning.rule=median", "--set", "pruning.rungs=[1,3,6]",
       "--set", "pruning.min_candidates=4", "--set", "search.status_interval=0.3"]


def table_rows(driver) -> int:
    return len(driver.find_elements("css selector", "#cands tbody tr"))


def start(cmd):
    return subprocess.Popen([sys.executable, "-m", *cmd], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_the_dashboard_follows_a_running_search_in_a_browser(tmp_path):
    out, other = tmp_path / "run", tmp_path / "other"
    assert run_module("bqnn.search", "--out", str(other), *SIM[:-6]).returncode == 0  # a finished run beside it
    search = start(["bqnn.search", "--out", str(out), *SIM])
    dash = None
    try:
        # The search ends in seconds; under load it could end before the browser first draws the table, which then
        # never grows. Hold it (SIGSTOP) part-way until the first rows are drawn, so that rows are still to come.
        assert wait_for(lambda: (out / "status.json").exists() and _candidates_in(out / "search.h5") > 0, 60)
        os.kill(search.pid, signal.SIGSTOP)
        held = _candidates_in(out / "search.h5")
        assert 0 < held < 48, held
        dash = start(["bqnn.dashboard", str(out), str(other), "--port", "0"])
        line = dash.stdout.readline()
        url = re.search(r"at (http://127\.0\.0\.1:\d+/)", line).group(1)
        with chromium() as driver:
            driver.get(url)
            assert wait_for(lambda: "running" in driver.find_element("id", "state").text, 30)
            screenshot(driver, "dashboard-overview-running")
            driver.find_element("css selector", "nav button[data-view=candidates]").click()
            assert wait_for(lambda: table_rows(driver) > 0, 30)
            first = table_rows(driver)
            assert first <= held
            os.kill(search.pid, signal.SIGCONT)
            assert wait_for(lambda: table_rows(driver) > first, 60), "the table gained no rows while the search ran"
            driver.find_element("css selector", "#cands tbody tr").click()
            assert wait_for(lambda: driver.find_elements("css selector", "#detail svg.block text"), 20)
            labels = [t.text for t in driver.find_elements("css selector", "#detail svg.block text")]
            assert "Input" in labels and "1: Identity" in labels, labels  # the block, drawn with layer indices
            assert driver.find_element("id", "curve").size["height"] > 100  # its epoch curve
            screenshot(driver, "dashboard-candidate")
            for view in VIEWS:
                driver.find_element("css selector", f"nav button[data-view={view}]").click()
                time.sleep(0.3)
                assert driver.find_element("id", f"view-{view}").is_displayed()
                screenshot(driver, f"dashboard-{view}")
            assert search.wait(timeout=120) == 0
            driver.find_element("css selector", "nav button[data-view=overview]").click()
            assert wait_for(lambda: "finished" in driver.find_element("id", "state").text, 30)
            assert console_errors(driver) == []
            urls = requested(driver)
            assert any(u.startswith(url + "api/run/1") for u in urls) and leaving(urls) == []
        assert sorted(p.name for p in out.iterdir()) == ["search.h5", "search.h5.bak", "status.json"]  # nothing added
    finally:
        for p in (search, dash):
            if p is not None and p.poll() is None:
                p.kill()


def test_the_report_page_opens_offline_with_every_view(tmp_path):
    out = tmp_path / "run"
    assert run_module("bqnn.search", "--out", str(out), *SIM[:-2]).returncode == 0
    r = run_module("bqnn.report", str(out))
    assert r.returncode == 0, r.stderr
    page = out / "report" / "index.html"
    assert "<script src=" not in page.read_text() and "<link rel=\"stylesheet\"" not in page.read_text()
    with chromium(offline=True) as driver:
        driver.get(page.as_uri())
        assert wait_for(lambda: "finished" in driver.find_element("id", "state").text or
                        "report" in driver.find_element("id", "state").text, 20)
        assert "iterations complete" in driver.find_element("id", "summary").text
        screenshot(driver, "report-overview")
        for view in VIEWS[1:]:
            driver.find_element("css selector", f"nav button[data-view={view}]").click()
            time.sleep(0.3)
            canvases = driver.find_elements("css selector", f"#view-{view} canvas")
            assert all(c.size["height"] > 100 for c in canvases)
            screenshot(driver, f"report-{view}")
        driver.find_element("css selector", "nav button[data-view=candidates]").click()
        assert table_rows(driver) == 48
        driver.find_element("css selector", "#cands tbody tr").click()
        assert wait_for(lambda: driver.find_elements("css selector", "#detail svg.block text"), 10)
        assert console_errors(driver) == []
        urls = requested(driver)
        assert any(u.startswith("file:") for u in urls) and leaving(urls) == []
        assert not [u for u in urls if u.startswith(("http:", "https:"))]  # a file that asks for nothing


@pytest.mark.parametrize("args,message", [
    (["/nonexistent/run"], "bqnn.dashboard: error: /nonexistent/run is not a directory"),
    (["--port", "70000", "."], "bqnn.dashboard: error: --port must be 0 to 65535, got 70000"),
])
def test_bad_arguments_are_one_line(args, message):
    r = run_module("bqnn.dashboard", *args, timeout=30)
    assert r.returncode == 2 and r.stderr.strip() == message
