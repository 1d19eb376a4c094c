"""Browser tests: Playwright drives Debian's Chromium (/usr/bin/chromium) against pytest-django's
live server.

Fixtures:

- ``browser`` (package): a headless Chromium, closed when the browser tests are done. Without
  /usr/bin/chromium (or the ``playwright`` package) the tests fail, as CI must run them;
  ``INVSYNC_BROWSER_UNAVAILABLE=skip`` skips them instead. ``INVSYNC_CHROMIUM`` points at another
  Chromium binary.
- ``page``: a fresh browser context and page per test, every wait bounded (30 s by default); a
  failed test leaves a full-page screenshot under ``var/browser-artifacts/``.
- ``server``: Django's ``live_server`` with a database emptied after the test
  (``transactional_db``), the role groups present, the sign-in rate limits cleared, and django-q2
  in sync mode, so that "Sync now" and "Retry" run inside the server's request.
- ``artifacts``: ``shot(page, name)`` saves a full-page screenshot under ``var/browser-artifacts/``
  (emptied when the browser starts).
- ``accountant``: a staff user (Accountant and Operator) of a client with both Tryton connections.

Playwright's own browser builds are never downloaded (no ``playwright install``): it launches
the system Chromium through ``executable_path``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache

from connectors.roles import ROLE_PERMISSIONS

CHROMIUM = os.environ.get("INVSYNC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Every wait of a step (navigation, locator, expectation) is bounded by this.
STEP_TIMEOUT_MS = int(os.environ.get("INVSYNC_BROWSER_TIMEOUT_MS", "30000"))
ARTIFACTS = Path(django_settings.VAR_DIR) / "browser-artifacts"


def _unavailable(reason: str):
    if os.environ.get("INVSYNC_BROWSER_UNAVAILABLE") == "skip":
        pytest.skip(f"{reason} (INVSYNC_BROWSER_UNAVAILABLE=skip)")
    pytest.fail(
        f"{reason}. Install it (Debian: apt-get install chromium; bin/dev does it when run as "
        "root), or set INVSYNC_BROWSER_UNAVAILABLE=skip to skip the browser tests.",
        pytrace=False,
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # The report of each phase on the test item, for the page fixture's teardown.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="package")
def browser():
    if not Path(CHROMIUM).exists():
        _unavailable(f"Chromium is not installed at {CHROMIUM}")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _unavailable("The Python package playwright is not installed (pip install -e '.[test]')")
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    # The screenshots are those of this run's browser tests.
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    # Playwright's sync API runs its event loop on this thread between calls, which Django's
    # async-safety check takes for an async context: the tests' own ORM calls are synchronous.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        try:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
        except Exception as error:
            pytest.fail(f"Chromium ({CHROMIUM}) did not start: {error}", pytrace=False)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:150]


@pytest.fixture
def artifacts():
    """``shot(page, name)``: a full-page screenshot saved as var/browser-artifacts/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def shot(page, name: str) -> Path:
        path = ARTIFACTS / f"{_slug(name)}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return shot


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
    context.set_default_timeout(STEP_TIMEOUT_MS)
    context.set_default_navigation_timeout(STEP_TIMEOUT_MS)
    page = context.new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"FAILED-{_slug(request.node.nodeid)}.png"
        try:
            page.screenshot(path=str(path), full_page=True)
            print(f"\nScreenshot of the failed page ({page.url}): {path}")
        except Exception as error:
            print(f"\nNo screenshot of the failed page: {error}")
    context.close()


def _role_groups() -> None:
    """The role groups with their permissions. The roles migration makes them, but a
    transactional test empties every table when it ends."""
    for name, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".")
            wanted.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(wanted)


@pytest.fixture
def server(live_server, transactional_db, q_sync):
    """The live server's root URL, with the role groups, no sign-in rate counts, and django-q2
    running tasks inside the request that queues them."""
    _role_groups()
    cache.clear()
    yield live_server.url.rstrip("/")
    cache.clear()


@pytest.fixture
def accountant(server, tryton_invoicing, tryton_accounting):
    """A staff user in the Accountant and Operator groups (configures flows, syncs and
    retries), member of the client "Atelier Démo", whose two Tryton connections exist: the
    session's sample invoicing database and this test's fresh accounting database."""
    from connectors.models import Connection
    from tests.factories import ClientFactory, UserFactory

    client = ClientFactory(name="Atelier Démo")
    Connection.objects.create(
        client=client, name="Tryton invoicing", kind="invoicing", provider="tryton",
        auth_kind="credentials", settings=tryton_invoicing.settings,
        credentials=tryton_invoicing.credentials,
    )  # fmt: skip
    Connection.objects.create(
        client=client, name="Tryton accounting", kind="accounting", provider="tryton",
        auth_kind="credentials", settings=tryton_accounting.settings,
        credentials=tryton_accounting.credentials,
    )  # fmt: skip
    return UserFactory(
        username="claire",
        email="claire@firm.example",
        roles=["Accountant", "Operator"],
        clients=[client],
    )
