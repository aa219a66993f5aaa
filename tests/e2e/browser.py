"""A real headless Chromium for the page tests: Debian's chromium and chromium-driver (setup.sh --test installs them),
driven by selenium with the system's chromedriver (nothing is downloaded). The browser keeps its console messages and
every network request, so a test can show that the page logged no error and asked nothing of any host but this one.
Screenshots go to runs/test-artifacts/ (or $BQNN_ARTIFACTS)."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("BQNN_ARTIFACTS", ROOT / "runs" / "test-artifacts"))

needs_browser = pytest.mark.skipif(not CHROMEDRIVER.exists() or not shutil.which("chromium"),
                                   reason="needs Debian's chromium and chromium-driver (setup.sh --test installs them)")


@contextmanager
def chromium(offline: bool = False):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="bqnn-chromium-")
    opts = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.binary_location = shutil.which("chromium") or "chromium"
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        if offline:
            driver.execute_cdp_cmd("Network.emulateNetworkConditions", {"offline": True, "latency": 0,
                                                                        "downloadThroughput": 0, "uploadThroughput": 0})
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def requested(driver) -> list[str]:
    """Every URL the page asked for (Network.requestWillBeSent in the performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def leaving(urls: list[str]) -> list[str]:
    """The requests that would leave this machine: any network scheme to a host other than this one (the browser's
    own chrome:// pages are no request at all)."""
    from urllib.parse import urlparse

    return [u for u in urls if urlparse(u).scheme in ("http", "https", "ws", "wss", "ftp")
            and urlparse(u).hostname not in ("127.0.0.1", "localhost", "::1")]


def screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
