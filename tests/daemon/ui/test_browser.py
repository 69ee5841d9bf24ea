"""The status page in real headless Chromium (Debian's `chromium`, driven by Playwright) against a running
daemon and the emulator, both on loopback: the fleet lists the groups, an edit shows up as Reconciling then
Ready without a reload, a stalled group says why, hostile names and tags stay text, and no request leaves
loopback. Screenshots go to `.artifacts/ui/` (CI keeps them).

`.ci/run` installs Chromium and sets RECONCILER_REQUIRE_BROWSER=1, so there a missing browser fails the test
instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.harness import DaemonProcess, EmulatorProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[3] / ".artifacts" / "ui"
RG = "rg-ui"
HOSTILE_NAME = "<script>alert(1)</script>"
HOSTILE_TAG = '"><img src=x onerror=alert(2)>'
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--no-pings",
]


def manifest(name: str, image: str, note: str = "plain") -> str:
    return f"""\
name: '{name}'
resourceGroup: {RG}
location: westeurope
tags: {{app: web, note: '{note}'}}
properties:
  osType: Linux
  restartPolicy: Always
  containers:
  - name: web
    properties:
      image: {image}
      resources: {{requests: {{cpu: 1, memoryInGB: 1.5}}}}
"""


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("RECONCILER_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_status_page_in_chromium_follows_the_fleet_live_and_keeps_hostile_data_as_text(
    tmp_path: Path, browser: Any
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "web.yaml").write_text(manifest("web", "nginx:1.25"))
    (manifests / "api.yaml").write_text(manifest("api", "httpd:2.4"))
    (manifests / "hostile.yaml").write_text(manifest(HOSTILE_NAME, "nginx:1.25"))
    emulator = EmulatorProcess(tmp_path, "--no-throttling", "--provisioning-delay", "2")
    env = {
        **os.environ,
        "RECONCILER_SECRET_KEY": "0123456789abcdef" * 4,
        "HOME": str(tmp_path),
        "NO_COLOR": "1",
    }
    env.pop("AZURE_SUBSCRIPTION_ID", None)
    daemon = DaemonProcess(
        [
            "--endpoint", emulator.endpoint, "--ca-cert", str(emulator.ca_cert), "--credential", "static",
            "-f", str(manifests), "--listen", "127.0.0.1:0", "--state-dir", str(tmp_path / "state"),
            "--log-format", "json", "--interval", "1h", "--debounce", "0.2s", "--ui-refresh", "0.5s",
        ],
        env,
    )  # fmt: skip
    try:
        finished = daemon.wait_for(lambda e: e.get("event") == "pass finished", timeout=60)
        assert finished["result"] == "failed", "the hostile manifest is invalid"
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        requests: list[str] = []
        dialogs: list[str] = []
        context.on("request", lambda r: requests.append(r.url))
        page = context.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(daemon.url + "/")

        # The fleet lists every group; the invalid one is Stalled, its name shown as text.
        for name in ("web", "api"):
            page.wait_for_selector(f'tr[data-group="{RG}/{name}"][data-phase="Ready"]')
        hostile = page.locator("#groups tbody th a", has_text=HOSTILE_NAME)
        assert hostile.count() == 1
        assert page.locator('tr[data-phase="Stalled"]', has_text=HOSTILE_NAME).count() == 1
        assert page.locator("script").count() == 1, "only the page's own script"
        page.screenshot(path=str(ARTIFACTS / "fleet.png"), full_page=True)

        # An edit (new image, hostile tag) shows up as Reconciling, then Ready, with no reload.
        page.evaluate("window.__noReload = 'still here'")
        (manifests / "web.yaml").write_text(manifest("web", "nginx:1.27", HOSTILE_TAG))
        page.wait_for_selector(f'tr[data-group="{RG}/web"][data-phase="Reconciling"]', timeout=20_000)
        page.screenshot(path=str(ARTIFACTS / "fleet-reconciling.png"), full_page=True)
        page.wait_for_selector(f'tr[data-group="{RG}/web"][data-phase="Ready"]', timeout=30_000)
        assert page.evaluate("window.__noReload") == "still here"
        assert "Stale" not in page.locator("#freshness").inner_text()

        # Its page shows the applied diff with the hostile tag as text, and the container's state.
        page.click(f'a[href="/groups/{RG}/web"]')
        page.wait_for_selector("text=Current diff")
        assert page.locator("table.diff", has_text=HOSTILE_TAG).count() == 1
        assert page.locator("img").count() == 0
        page.wait_for_selector("article.container h3:text('web')")
        page.screenshot(path=str(ARTIFACTS / "group.png"), full_page=True)

        # A stalled group's page says why.
        page.goto(daemon.url + "/")
        page.locator("#groups a", has_text=HOSTILE_NAME).click()
        page.wait_for_selector("text=Why it is stalled")
        why = page.locator(".why").inner_text()
        assert "name" in why.lower(), why
        page.screenshot(path=str(ARTIFACTS / "stalled.png"), full_page=True)

        # Readable on a phone: no horizontal scroll of the page itself.
        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        phone.on("request", lambda r: requests.append(r.url))
        small = phone.new_page()
        small.goto(daemon.url + "/")
        small.wait_for_selector(f'tr[data-group="{RG}/web"]')
        assert small.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        small.screenshot(path=str(ARTIFACTS / "fleet-phone.png"), full_page=True)

        # Without JavaScript the page still reads (and says how to refresh).
        plain = browser.new_context(java_script_enabled=False)
        plain.on("request", lambda r: requests.append(r.url))
        nojs = plain.new_page()
        nojs.goto(daemon.url + "/?phase=Ready")
        assert nojs.locator(f'tr[data-group="{RG}/web"][data-phase="Ready"]').count() == 1
        assert nojs.locator(f'tr[data-group="{RG}/api"]').count() == 1
        assert "reload to see what changed" in nojs.locator("noscript").inner_text()
        plain.close()

        # Keyboard: the first Tab reaches the skip link, which leads to the content.
        page.goto(daemon.url + "/")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"

        # Staleness is said when the daemon goes away.
        page.wait_for_selector(f'tr[data-group="{RG}/web"]')
        daemon.proc.terminate()
        daemon.proc.wait(timeout=30)
        page.wait_for_selector("#freshness.stale", timeout=10_000)
        assert "Stale" in page.locator("#freshness").inner_text()

        assert dialogs == [], "no script of the data ever ran"
        hosts = {urlsplit(u).hostname for u in requests}
        assert hosts == {"127.0.0.1"}, hosts
        context.close()
        phone.close()
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.terminate()
            try:
                daemon.proc.wait(timeout=30)
            except Exception:
                daemon.proc.kill()
        emulator.stop()
