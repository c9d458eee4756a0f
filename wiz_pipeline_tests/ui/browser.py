"""Headless Chromium for the UI tests: Debian's ``chromium`` and ``chromedriver`` (packages ``chromium``
and ``chromium-driver``, one source package, so always the same release), driven by Selenium. Selenium
Manager, which would download a browser or driver, is never asked: both paths are given."""

from __future__ import annotations

import os
import shutil

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver


def find_browser() -> tuple[str, str] | None:
    """Chromium and its chromedriver (scripts/_system_deps.sh installs them), if installed."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def browser_binaries() -> tuple[str, str]:
    """``find_browser()``, or a skip (a failure with CI=true, like PostgreSQL) saying how to install."""
    found = find_browser()
    if found:
        return found
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = " and ".join(n for n, p in (("chromium", chromium), ("chromedriver", driver)) if not p)
    reason = f"{missing} not found: apt-get install chromium chromium-driver (scripts/test does as root)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI needs a browser for the Dagster UI test: {reason}", pytrace=False)
    pytest.skip(reason)


def start_chromium(size: tuple[int, int]) -> WebDriver:
    """Headless, pages of exactly ``size`` pixels, times shown in UTC, no host resolved but
    127.0.0.1 (nothing the UI or Chromium's own services ask for leaves the machine)."""
    binary, driver_path = browser_binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",  # Chromium's sandbox can't start as root (CI containers)
        "--disable-dev-shm-usage",  # containers' /dev/shm is often 64 MB
        f"--window-size={size[0]},{size[1]}",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    ):
        options.add_argument(argument)
    service = Service(executable_path=driver_path, env={**os.environ, "TZ": "UTC"})
    driver = webdriver.Chrome(service=service, options=options)
    # --window-size counts the window's frame; this makes the page itself that size.
    metrics = {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    return driver
