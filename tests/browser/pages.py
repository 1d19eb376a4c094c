"""What the browser tests do on the admin's pages: sign in, choose an option by its visible text,
follow a link or button to the next page, read the flow's setup checklist."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect

from tests.factories.models import PASSWORD


def sign_in(page: Page, server: str, email: str, password: str = PASSWORD) -> None:
    """Sign in through allauth's page with email and password; land in the admin."""
    page.goto(f"{server}/accounts/login/")
    expect(page.locator("h1")).to_contain_text("Sign In")
    page.locator('input[name="login"]').fill(email)
    page.locator('input[name="password"]').fill(password)
    follow(page, page.locator('form button[type="submit"]'))
    expect(page.locator("#site-name")).to_contain_text("invsync")


def switch_language(page: Page, language: str) -> None:
    """Choose ``language`` ("fr") with the header's language switch; the page comes back in it."""
    follow(page, page.locator(f'#language-switch button[value="{language}"]'))
    expect(page.locator("html")).to_have_attribute("lang", language)


def follow(page: Page, locator: Locator, timeout: float | None = None) -> None:
    """Click ``locator`` and wait for the page it leads to (``timeout`` in ms, else the page's
    default)."""
    bound = {"timeout": timeout} if timeout else {}
    # The click waits for the navigation it starts too: it gets the same bound.
    with page.expect_navigation(**bound):
        locator.click(**bound)


def save_and_continue(page: Page) -> None:
    follow(page, page.locator('input[name="_continue"]'))


def option_labels(select: Locator) -> list[str]:
    return [label.strip() for label in select.locator("option").all_inner_texts()]


def choose(select: Locator, starts_with: str) -> str:
    """Select the one option of ``select`` whose visible text starts with ``starts_with`` (e.g.
    "4111 – "), by its label; return the label."""
    labels = option_labels(select)
    matching = [label for label in labels if label.startswith(starts_with)]
    assert len(matching) == 1, (starts_with, labels[:40])
    select.select_option(label=matching[0])
    return matching[0]


def step(page: Page, key: str) -> Locator:
    """One step of the flow's setup checklist (its class says done or missing)."""
    return page.locator(f"#step-{key}")


def vat_rows(page: Page) -> Locator:
    """The rows of the flow's VAT mapping inline (saved, proposed or added)."""
    return page.locator("#vat_mappings-group tr.form-row:not(.empty-form)")


def vat_proposal(page: Page, direction: str, rate: str) -> Locator:
    """The VAT rows rendered for ``direction`` ("sales"/"purchases") and source ``rate``."""
    return (
        vat_rows(page)
        .filter(
            has=page.locator(f'select[name$="-direction"] option[selected][value="{direction}"]')
        )
        .filter(has=page.locator(f'input[name$="-source_rate"][value="{rate}"]'))
    )
