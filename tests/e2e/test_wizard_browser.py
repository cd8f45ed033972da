"""The media-server wizard in a real Chromium, from login to every service ``running``.

Real pieces only: ``mora manager serve examples/media-server --dry-run`` as a
uvicorn subprocess on a free loopback port, and Debian's ``/usr/bin/chromium``
driven by Playwright (never ``playwright install``: no browser download).
The walk types into fields and presses Enter as a person would, so it also
proves that each form submits on Enter, that an inline error keeps what was
typed, and that the status refresh script moves the overview by itself.

On failure a screenshot of the page lands in the test's tmp folder (the
path is in the failure message). Secrets typed here are made up per run and
are checked to appear neither in a page nor in the manager's log.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        "needs Debian's chromium at /usr/bin/chromium (`make system-deps` installs it)",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "browser-test-" + secrets.token_hex(8)
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]
LISTENING = re.compile(r"listening on http://[^:]+:(\d+)/")
SERVICES = ("lldap", "qbittorrent", "prowlarr", "jellyfin", "sonarr", "radarr", "jellyseerr",
            "janitorr")


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The manager serving the media-server in dry run: its base URL and its log file."""
    log_path = tmp_path / "manager.log"
    env = {
        **os.environ,
        "MORA_ADMIN_PASSWORD": PASSWORD,
        "MORA_API_TOKEN": "browser-test-token-" + secrets.token_hex(8),
        "MORA_HOME": str(tmp_path / "home"),
        "NO_COLOR": "1",
        # Each dry-run update takes a second, so the page sees updates queued and running.
        "MORA_MANAGER_TEST_DEPLOY_DELAY": "1.0",
    }
    command = [
        sys.executable, "-m", "mora_cli", "manager", "serve", str(REPO / "examples" / "media-server"),
        "--dry-run", "--host", "127.0.0.1", "--port", "0", "--data", str(tmp_path / "data"),
        "--set", "domain=home.example.com", "--set", "media_path=/srv/media",
    ]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 60
        port = None
        while port is None:
            match = LISTENING.search(log_path.read_text())
            if match:
                port = int(match.group(1))
            elif process.poll() is not None:
                pytest.fail(f"the manager exited ({process.returncode}):\n{log_path.read_text()}")
            elif time.monotonic() > deadline:
                pytest.fail(f"the manager did not start within 60 s:\n{log_path.read_text()}")
            else:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", log_path
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@contextmanager
def screenshot_on_failure(page: Page, folder: Path) -> Iterator[None]:
    try:
        yield
    except BaseException as err:
        shot = folder / "failure.png"
        try:
            page.screenshot(path=str(shot), full_page=True)
            note = f"screenshot of {page.url}: {shot}"
        except Exception as shot_err:  # the browser itself may be gone
            note = f"no screenshot ({type(shot_err).__name__})"
        if hasattr(err, "add_note"):
            err.add_note(note)
        raise


def wait_for_step(page: Page, label: str, timeout: float = 90.0) -> None:
    """Wait until the wizard asks ``label``: the live status offers to continue when it is ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if page.get_by_label(label, exact=True).count():
            return
        link = page.get_by_role("link", name="Continue the setup")
        if link.count():
            link.first.click()
            continue
        page.wait_for_timeout(300)
    raise AssertionError(f"the wizard never asked {label!r}")


def test_the_media_server_wizard_from_login_to_every_service_running(
    manager: tuple[str, Path], browser: Browser, tmp_path: Path
) -> None:
    base, log_path = manager
    jellyfin_key = "jf-" + secrets.token_hex(12)
    jellyseerr_key = "js-" + secrets.token_hex(12)
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.set_default_timeout(30_000)
    with screenshot_on_failure(page, tmp_path):
        # Logged out, any page leads to the login form; Enter in the field logs in.
        page.goto(base + "/wizard")
        expect(page).to_have_url(re.compile(r"/login\?next="))
        page.get_by_label("Password", exact=True).fill("not the password")
        page.get_by_label("Password", exact=True).press("Enter")
        expect(page.get_by_role("alert")).to_contain_text("That password is not right")
        expect(page.get_by_label("Password", exact=True)).to_have_value("")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_label("Password", exact=True).press("Enter")
        expect(page).to_have_url(base + "/wizard")

        # Step 1: asked once the first wave runs — the LDAP admin's e-mail and the Jellyfin key.
        wait_for_step(page, "Administrator e-mail")
        email = page.get_by_label("Administrator e-mail", exact=True)
        key = page.get_by_label("Create a Jellyfin API key", exact=True)
        expect(key).to_have_attribute("type", "password")
        help_link = page.locator('.help a[href^="https://watch.home.example.com/web/"]')
        expect(help_link).to_be_visible()
        key.fill(jellyfin_key)
        email.fill("not-an-email")
        email.press("Enter")

        # The wrong e-mail: an inline error next to it, what was typed still there,
        # the key kept (saved) but never written back into the page.
        error = page.locator("#answer-lldap-admin_email-error")
        expect(error).to_contain_text("is not an e-mail address")
        expect(email).to_have_value("not-an-email")
        expect(email).to_have_attribute("aria-invalid", "true")
        expect(key).to_have_value("")
        expect(page.locator(".field", has=key)).to_contain_text("Saved; leave blank to keep it")
        assert jellyfin_key not in page.content()
        # The step on the page is still the next one: no offer to continue elsewhere.
        expect(page.get_by_role("link", name="Continue the setup")).to_have_count(0)

        email.fill("admin@home.example.com")
        email.press("Enter")
        expect(page).to_have_url(re.compile(r"/wizard\?saved=\d+&update=\d+"))
        expect(page.get_by_role("status").first).to_contain_text("Saved.")
        expect(page.locator("[data-live]")).to_contain_text(re.compile(r"Update #\d+"))

        # Step 2: the Jellyseerr key, once Jellyseerr runs.
        wait_for_step(page, "Jellyseerr API key")
        seerr = page.get_by_label("Jellyseerr API key", exact=True)
        seerr.fill(jellyseerr_key)
        seerr.press("Enter")
        expect(page).to_have_url(re.compile(r"/wizard\?saved="))
        assert jellyseerr_key not in page.content()

        # The status of the update this answer triggered moves without a reload (the script).
        page.evaluate("window.__moraNotReloaded = true")
        live = page.locator("[data-live]")
        expect(live).to_contain_text(re.compile(r"\b(queued|running)\b"))
        expect(live).to_contain_text("Everything is set up", timeout=120_000)
        assert page.evaluate("window.__moraNotReloaded === true"), "the page was reloaded"

        # The overview moves by itself (the refresh script) until everything runs.
        page.get_by_role("navigation").get_by_role("link", name="Overview", exact=True).click()
        expect(page.get_by_role("heading", name="media-server", level=1)).to_be_visible()
        expect(page.locator(".waves .badge.state-running")).to_have_count(len(SERVICES),
                                                                          timeout=120_000)
        for name in SERVICES:
            row = page.locator(".wave .service", has=page.locator(".name", has_text=name))
            expect(row.locator(".badge")).to_have_text("running")
        for url in ("https://watch.home.example.com", "https://requests.home.example.com"):
            expect(page.locator(f'.wave a[href="{url}"]')).to_be_visible()
        expect(page.locator(".status-panel")).to_contain_text("Everything is set up")
        page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)

        plan = page.request.get(base + "/api/v1/plan").json()
        assert {s["name"]: s["state"] for s in plan["services"]} == dict.fromkeys(SERVICES, "running")
        assert plan["complete"] is True

        page.get_by_role("navigation").get_by_role("link", name="Wizard", exact=True).click()
        expect(page.get_by_role("heading", name="All set")).to_be_visible()

        content = page.content()
        for value in (jellyfin_key, jellyseerr_key, PASSWORD):
            assert value not in content
    log = log_path.read_text()
    for value in (jellyfin_key, jellyseerr_key, PASSWORD):
        assert value not in log, "a secret reached the manager's log"
