"""The README's screenshots, made from the demo's data so that they show the product as it is.

    bin/dev screenshots    # docs/screenshots/home.png, setup-mappings.png, failure-review.png
    .venv/bin/python bench/screenshots.py --out DIR

The data is the demo's, built without Tryton as the pages benchmark builds it (bench/pages.py: the
demo's client, connections and flow, with the lists the demo's Tryton answered and a first sync
with its one failure), in a throw-away SQLite database. A staff accountant of the demo's client
is signed in; Debian's Chromium (through Playwright, as the browser tests) opens, at 1400 px wide:
the home page, the guided set-up's mappings step for a second flow (pre-filled from the
suggestions), and the failure review of the demo's flow.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHROMIUM = os.environ.get("INVSYNC_CHROMIUM", "/usr/bin/chromium")
WIDTH, HEIGHT = 1400, 900
ACCOUNTANT_EMAIL = "claire@cabinet.example"


@dataclass(frozen=True)
class Shot:
    name: str  # the PNG's file name, without .png
    path: str  # the admin URL to open
    heading: str  # a selector that must be on the page (it loaded the right thing)


def demo_shots(data: dict) -> list[Shot]:
    from django.urls import reverse

    return [
        Shot("home", reverse("admin:index"), "#home-failures"),
        Shot(
            "setup-mappings",
            reverse("invsync_setup_step", args=["mappings"]),
            '#content-main[data-step="mappings"]',
        ),
        Shot(
            "failure-review",
            reverse("admin:syncs_flow_failures", args=[data["flow"].pk]),
            "#content-main h2",
        ),
    ]


def accountant_session(data: dict) -> str:
    """A staff accountant (Accountant and Operator) of the demo's client, signed in, who has
    walked the guided set-up to its mappings step; the session's cookie value."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client

    from bench.pages import walk_guided_setup

    user = get_user_model().objects.create_user(
        "claire", ACCOUNTANT_EMAIL, "screenshots-password-not-secret", is_staff=True,
        first_name="Claire",
    )  # fmt: skip
    user.groups.set(Group.objects.filter(name__in=["Accountant", "Operator"]))
    data["client"].members.add(user)
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    walk_guided_setup(client, data)
    return client.cookies["sessionid"].value


def capture(browser, base_url: str, session: str, shots: list[Shot], out: Path) -> list[Path]:
    """Open each shot's page in ``browser`` signed in with ``session``; save its PNG in ``out``
    (the window at 1400 × 900 px). Raises AssertionError when a page does not load as expected."""
    out.mkdir(parents=True, exist_ok=True)
    host = base_url.split("://", 1)[1].split(":")[0]
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}, locale="en-US")
    context.add_cookies([{"name": "sessionid", "value": session, "domain": host, "path": "/"}])
    written = []
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        for shot in shots:
            response = page.goto(base_url + shot.path)
            assert response is not None and response.ok, (shot.name, response and response.status)
            assert page.locator(shot.heading).count() >= 1, (shot.name, page.url)
            path = out / f"{shot.name}.png"
            page.screenshot(path=str(path), full_page=False)
            written.append(path)
    finally:
        context.close()
    return written


def serve(app) -> tuple[str, object]:
    """``app`` on a free local port in a thread; its URL and the server (``shutdown()``)."""
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=False)
    server.set_app(app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium).")
    with tempfile.TemporaryDirectory(prefix="invsync-screenshots-") as var:
        from bench.run import setup_django

        setup_django(Path(var))
        from django.contrib.staticfiles.handlers import StaticFilesHandler
        from django.core.wsgi import get_wsgi_application
        from playwright.sync_api import sync_playwright

        from bench.pages import DemoSource, DemoTarget, build_demo_data
        from connectors import registry

        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's loop on this thread
        with registry.override([*registry.SHIPPED, DemoSource, DemoTarget]):
            data = build_demo_data()
            session = accountant_session(data)
            base_url, server = serve(StaticFilesHandler(get_wsgi_application()))
            try:
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(
                        executable_path=CHROMIUM, headless=True,
                        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
                    )  # fmt: skip
                    try:
                        paths = capture(
                            browser, base_url, session, demo_shots(data), Path(args.out)
                        )
                    finally:
                        browser.close()
            finally:
                server.shutdown()
    for path in paths:
        print(f"{path} {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
