"""The explorer in headless Chromium (Debian's package, driven by Playwright) against a live node.

Each test saves a screenshot under `test-output/explorer/`. Without `/usr/bin/chromium`
these tests fail: `make test` installs it with `scripts/install-browser.sh`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.explorer.live import LiveServer, start_live_server

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "explorer"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    server = start_live_server()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-browser.sh (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, request: pytest.FixtureRequest):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _search(page, text: str) -> None:
    page.fill("input[name=q]", text)
    page.press("input[name=q]", "Enter")
    page.wait_for_load_state()


def test_dashboard_shows_a_new_block_without_reloading(live: LiveServer, page) -> None:
    page.goto(f"{live.url}/explorer/")
    page.wait_for_selector("#live-indicator[data-state=on]")
    height = int(page.get_attribute("#dashboard-live", "data-height") or 0)
    page.evaluate("window.__notReloaded = true")

    result = live.pay(1_234)
    assert result["height"] > height

    page.wait_for_selector(f"#dashboard-live[data-height='{result['height']}']")
    page.wait_for_selector(f"#latest-blocks tr[data-height='{result['height']}']")
    assert page.evaluate("window.__notReloaded") is True
    assert page.inner_text("#stat-height").replace(",", "") == str(result["height"])
    assert "CNY" in page.inner_text("body")


def test_blocks_list_grows_live(live: LiveServer, page) -> None:
    page.goto(f"{live.url}/explorer/blocks")
    page.wait_for_selector("#live-indicator[data-state=on]")
    page.evaluate("window.__notReloaded = true")
    result = live.pay(77)
    row = page.wait_for_selector(f"#blocks-table tr[data-height='{result['height']}']")
    assert row is not None
    assert page.evaluate("window.__notReloaded") is True
    first = page.query_selector("#blocks-table tbody tr")
    assert first is not None
    assert first.get_attribute("data-height") == str(result["height"])


def test_click_through_block_transaction_coin_address(live: LiveServer, page) -> None:
    height = live.ids["transfer_height"]
    page.goto(f"{live.url}/explorer/block/{height}")
    assert page.inner_text("h1").startswith("Block")
    assert "member-0" in page.inner_text("#signers")
    _shot(page, "click_1_block")

    page.click(f"#block-txs a.tx-link[href$='{live.ids['transfer_tx']}']")
    page.wait_for_url(re.compile(r"/explorer/tx/"))
    assert page.inner_text("#tx-status") == "committed"
    flow = page.inner_text("#money-flow")
    for text in ("2,500.00", "6,000.00", "multisig 2 of 3", "escrow until height 400"):
        assert text in flow
    _shot(page, "click_2_transaction")

    page.click("#money-flow .flow-out a.coin-link >> nth=0")
    page.wait_for_url(re.compile(r"/explorer/coin/"))
    assert live.ids["bob_coin"] in page.url
    body = page.inner_text("main")
    assert "2,500.00" in body
    assert "created by" in body.lower()
    assert live.ids["transfer_tx"][:8] in body
    _shot(page, "click_3_coin")

    page.click("main a.address-link >> nth=0")
    page.wait_for_url(re.compile(r"/explorer/address/"))
    assert live.ids["bob"] in page.url
    assert page.inner_text("h1") == "Address"
    assert page.query_selector("#address-coins a.coin-link") is not None
    assert page.query_selector("#address-activity a.tx-link") is not None


@pytest.mark.parametrize("kind", ["height", "block hash", "txid", "coin id", "address"])
def test_search_finds_each_kind_of_key(live: LiveServer, page, kind: str) -> None:
    height = int(live.ids["transfer_height"])
    block_hash = live.node.store.block(height)
    assert block_hash is not None
    from tally.model import block_hash as hash_of

    queries = {
        "height": (str(height), f"/explorer/block/{height}", "Block"),
        "block hash": (hash_of(block_hash.header).hex(), f"/explorer/block/{height}", "Block"),
        "txid": (live.ids["transfer_tx"], f"/explorer/tx/{live.ids['transfer_tx']}", "Transaction"),
        "coin id": (live.ids["bob_coin"], f"/explorer/coin/{live.ids['bob_coin']}", "Coin"),
        "address": (live.ids["bob"], f"/explorer/address/{live.ids['bob']}", "Address"),
    }
    query, path, heading = queries[kind]
    page.goto(f"{live.url}/explorer/")
    _search(page, query)
    page.wait_for_url(f"{live.url}{path}")
    assert page.inner_text("h1").startswith(heading)


def test_garbage_search_gets_the_not_found_page(live: LiveServer, page) -> None:
    page.goto(f"{live.url}/explorer/")
    with page.expect_response(re.compile(r"/explorer/search")) as answer:
        _search(page, "where did my money go?")
    assert answer.value.status == 404
    assert page.inner_text("h1") == "Not found"
    assert "where did my money go?" in page.inner_text("main")
    response = page.goto(f"{live.url}/explorer/tx/not-a-txid")
    assert response is not None
    assert response.status == 404
    assert live.http.get("/v1/status").status_code == 200


def test_phone_width_in_dark_mode_fits_the_screen(live: LiveServer, browser) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, color_scheme="dark", device_scale_factor=2
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        for name, path in (
            ("phone_dark_dashboard", "/explorer/"),
            ("phone_dark_transaction", f"/explorer/tx/{live.ids['transfer_tx']}"),
            ("phone_dark_block", f"/explorer/block/{live.ids['transfer_height']}"),
        ):
            page.goto(live.url + path)
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"{path} is {overflow}px wider than a phone screen"
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            red, green, blue = (int(v) for v in re.findall(r"\d+", background)[:3])
            assert red + green + blue < 120, f"not dark: {background}"
            _shot(page, name)
    finally:
        context.close()
