"""Headless Chromium for the browser tests: Debian's chromium and chromedriver, installed
on first use when the tests run as root (as in CI), driven through Selenium."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DEBIAN_PACKAGES = ("chromium", "chromium-driver")
# Where tests leave what a person may want to look at afterwards (screenshots).
ARTIFACTS = Path(os.environ.get("AIRGATE_TEST_ARTIFACTS",
                                Path(__file__).resolve().parents[1] / "test-artifacts"))


def ensure_chromium() -> None:
    """Install Debian's Chromium and its driver if they are missing and we may."""
    if Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError("the browser tests need Debian's chromium and chromium-driver: "
                           f"apt-get install {' '.join(DEBIAN_PACKAGES)}")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", *DEBIAN_PACKAGES]):
        subprocess.run(command, env=environment, stdout=subprocess.DEVNULL, check=True)


@contextlib.contextmanager
def headless_chromium(name: str) -> Iterator[webdriver.Chrome]:
    """A fresh browser profile (no cookies from an earlier sign-in); if the block fails,
    a screenshot of where it stood is left as `name`-failed.png."""
    ensure_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1400,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    except BaseException:
        screenshot(driver, f"{name}-failed")
        raise
    finally:
        driver.quit()


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
