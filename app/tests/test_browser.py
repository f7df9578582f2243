"""The page as a person sees it, in Debian's headless Chromium."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = Path(__file__).resolve().parents[1] / ".cache"


@pytest.fixture
def browser():
    profile = tempfile.mkdtemp(prefix="cgc-app-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1100,700",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_page_shows_version_host_and_cache_status(stack, browser):
    app = stack(workers=2)
    browser.get(f"{app.url}/")
    text = browser.find_element(By.TAG_NAME, "body").text  # the rendered, visible text
    assert "Database version" in text
    assert browser.find_element(By.ID, "db-version").text.startswith("PostgreSQL 1")
    assert browser.find_element(By.ID, "db-host").text == "127.0.0.1"
    assert browser.find_element(By.ID, "cache-status").text == "MISS"
    assert browser.find_element(By.ID, "elapsed").text.endswith(" ms")

    browser.get(f"{app.url}/app")
    assert browser.find_element(By.ID, "cache-status").text == "HIT"
    assert "PostgreSQL" in browser.find_element(By.ID, "db-version").text
    SCREENSHOTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "page-hit.png"))
