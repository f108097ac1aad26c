"""The flow page in a real browser (Debian's Chromium, headless, driven by Selenium through chromedriver) against
a real ``ripple dev`` running the example order flow: the graph renders it, counts move as events are sent,
clicking an event shows its history, and a dead letter redriven from the page is delivered. The test saves a
screenshot (``$RIPPLE_ARTIFACTS``, else the test's temporary directory)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import aiohttp
import pytest

from ripple._aio import free_port
from tests.processes import REPO, RippleProcess
from tests.support import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
AUDIT = """
apiVersion: ripple.dev/v1alpha1
kind: Function
metadata: {{name: audit, namespace: shop}}
spec:
  handler: audit:handle
  source:
    inline: |
      import os
      def handle(event):
          if os.path.exists({flag!r}):
              raise RuntimeError("the audit log is read-only")
---
apiVersion: ripple.dev/v1alpha1
kind: Trigger
metadata: {{name: audit-validated-orders, namespace: shop}}
spec:
  filter: {{attributes: {{type: order.validated}}}}
  subscriber: {{ref: {{kind: Function, name: audit}}}}
  delivery: {{retry: 1, backoffDelay: PT0.1S}}
"""
ORDERS = [{"orderId": n, "customer": name, "items": [{"price": 12.5, "quantity": n}]}
          for n, name in ((1, "ada"), (2, "grace"), (3, "edsger"))]


@pytest.fixture
def browser():
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs Debian's chromium and chromium-driver (hack/test.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1500,860", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def text_of(driver, selector: str) -> str:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, selector)
    return " ".join(element.text for element in found)


def screenshot(driver, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    shot = directory / "console.png"
    driver.save_screenshot(str(shot))
    return shot


async def send_order(http: aiohttp.ClientSession, ingress: str, order: dict) -> None:
    headers = {"ce-specversion": "1.0", "ce-id": f"order-{order['orderId']}", "ce-source": "/shop",
               "ce-type": "order.placed", "Content-Type": "application/json"}
    async with http.post(f"{ingress}/shop/default", data=json.dumps(order), headers=headers) as answer:
        assert answer.status == 202


async def test_the_flow_page_renders_counts_histories_and_redrives(browser, tmp_path: Path):
    from selenium.webdriver.common.by import By

    flag = tmp_path / "audit-is-read-only"
    flag.touch()
    (tmp_path / "audit.yaml").write_text(AUDIT.format(flag=str(flag)))
    port = free_port()
    dev = await RippleProcess("dev", str(REPO / "functions" / "order-flow"), str(tmp_path / "audit.yaml"),
                              "--port", str(port), "--data-dir", str(tmp_path / ".ripple")).start()
    ingress = f"http://127.0.0.1:{port}"
    try:
        await dev.wait_for_line("broker ready", timeout=60)
        browser.get(f"{ingress}/ui")
        nodes = await eventually(lambda: [e.get_attribute("data-node") for e in
                                          browser.find_elements(By.CSS_SELECTOR, "[data-node]")], timeout=20)
        assert {"Broker shop/default", "Trigger shop/validate-placed-orders", "Trigger shop/ship-validated-orders",
                "Trigger shop/audit-validated-orders", "Function shop/validate-order", "Function shop/ship-order",
                "Function shop/dead-letters", "Function shop/audit"} <= set(nodes)

        async with aiohttp.ClientSession() as http:
            for order in ORDERS:
                await send_order(http, ingress, order)
        validate = '[data-node="Trigger shop/validate-placed-orders"] [data-count="delivered"]'
        await eventually(lambda: "delivered 3" in text_of(browser, validate), timeout=60)
        ship = '[data-node="Trigger shop/ship-validated-orders"] [data-count="delivered"]'
        await eventually(lambda: "delivered 3" in text_of(browser, ship), timeout=60)
        letters = await eventually(lambda: browser.find_elements(By.CSS_SELECTOR, "[data-redrive]")
                                   if len(browser.find_elements(By.CSS_SELECTOR, "[data-redrive]")) == 3 else None,
                                   timeout=60)
        assert "shop/audit-validated-orders" in text_of(browser, '[data-panel="dlq"]')

        browser.find_element(By.CSS_SELECTOR, '[data-event="order-2"]').click()
        history = await eventually(lambda: text_of(browser, '[data-panel="history"]'), timeout=20)
        assert "order-2" in history and "delivered, replied" in history and "dead-lettered" in history

        flag.unlink()  # the audit log takes events again: the redriven one is delivered
        letters[0].click()
        await eventually(lambda: "redrove" in text_of(browser, "[data-message]"), timeout=20)
        audit = '[data-node="Trigger shop/audit-validated-orders"] [data-count="delivered"]'
        await eventually(lambda: "delivered 1" in text_of(browser, audit), timeout=30)
        await eventually(lambda: len(browser.find_elements(By.CSS_SELECTOR, "[data-redrive]")) == 2, timeout=20)
        ship_count = text_of(browser, ship)
        assert "delivered 3" in ship_count, "the redrive went to the trigger that failed, not to every trigger"
        async with aiohttp.ClientSession() as http:  # traffic while the picture is taken, so rates show
            for n in range(4, 16):
                await send_order(http, ingress, {"orderId": n, "customer": "ada", "items": [{"price": 3}]})
                await asyncio.sleep(0.15)
        shot = screenshot(browser, Path(os.environ.get("RIPPLE_ARTIFACTS") or tmp_path))
        assert shot.stat().st_size > 10_000
        print(f"screenshot: {shot}")
    finally:
        await dev.interrupt()
        await dev.stop()
