"""The README's screenshots script (bench/screenshots.py, `bin/dev screenshots`): its three pages
load from the demo's data for a staff accountant, and a PNG of each is written. The pictures
themselves are not compared."""

from __future__ import annotations

import pytest

from bench.pages import DemoSource, DemoTarget, build_demo_data
from bench.screenshots import accountant_session, capture, demo_shots
from connectors import registry

pytestmark = pytest.mark.browser


def test_the_screenshots_script_writes_home_guided_set_up_and_failure_review(
    server, browser, tmp_path
):
    with registry.override([*registry.SHIPPED, DemoSource, DemoTarget]):
        data = build_demo_data()
        session = accountant_session(data)
        paths = capture(browser, server, session, demo_shots(data), tmp_path)
    assert [p.name for p in paths] == ["home.png", "setup-mappings.png", "failure-review.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert 10_000 < path.stat().st_size < 300_000, (path.name, path.stat().st_size)
