"""The explorer's parts alone: formatting, charts, history, the index and the event stream."""

from __future__ import annotations

import threading

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from tally.explorer.app import mount_source
from tally.explorer.charts import bar_chart, line_chart, nice_ceiling
from tally.explorer.format import format_age, format_amount, format_count, short_id
from tally.explorer.history import ChainHistory
from tally.explorer.index import RecentIndex
from tally.explorer.pages import parse_height, parse_id
from tally.explorer.source import LocalSource
from tally.model import address_of, parse_address
from tests.explorer.conftest import Chain, build_chain
from tests.rules.helpers import HRP, key_lock


@pytest.mark.parametrize(
    ("minor", "text"),
    [(0, "0.00"), (5, "0.05"), (100, "1.00"), (123456, "1,234.56"), (-250, "-2.50"),
     (2**63 - 1, "92,233,720,368,547,758.07"), ("1000", "10.00")],
)  # fmt: skip
def test_amounts_are_written_in_major_units_with_integers_only(minor, text) -> None:
    assert format_amount(minor) == text


def test_ids_ages_and_counts_are_shortened_for_people() -> None:
    assert short_id("0123456789abcdef" * 4) == "01234567…abcdef"
    assert short_id("short") == "short"
    assert format_age(10_000, 15_000) == "5 s ago"
    assert format_age(0, 3 * 60_000) == "3 min ago"
    assert format_age(0, 5 * 3_600_000) == "5 h ago"
    assert format_age(0, 2 * 86_400_000) == "2 d ago"
    assert format_age(10_000, 5_000) == "just now"
    assert format_count(1234567) == "1,234,567"
    assert format_count(2.345) == "2.3"


def test_keys_are_parsed_strictly() -> None:
    assert parse_height("12") == 12
    assert parse_height("") is None
    assert parse_height("-1") is None
    assert parse_height("١٢") is None  # Arabic-Indic digits are digits, but not ours
    assert parse_height("9" * 19) is None
    assert parse_id("AB" * 32) == bytes([0xAB]) * 32
    assert parse_id("ab" * 31) is None
    assert parse_id("zz" * 32) is None


def test_chart_ceilings_are_round_numbers() -> None:
    assert [nice_ceiling(v) for v in (0, 0.3, 1, 7, 12, 26, 180, 4000)] == [
        1.0, 0.5, 1, 10, 20, 50, 200, 5000
    ]  # fmt: skip


def test_bar_chart_marks_unknown_buckets_and_scales_to_the_ceiling() -> None:
    chart = bar_chart([None, 0.0, 5.0, 10.0], ["a", "b", "c", "d"])
    assert chart.ceiling == 10
    assert [bar.known for bar in chart.bars] == [False, True, True, True]
    tallest = chart.bars[3]
    assert tallest.y == pytest.approx(8)  # reaches the ceiling line
    assert chart.bars[2].height == pytest.approx(tallest.height / 2)


def test_line_chart_draws_one_point_as_a_flat_line() -> None:
    chart = line_chart({"CNY": [(5, 100)]})
    assert len(chart.lines) == 1
    assert chart.lines[0].points.count(",") == 2
    assert line_chart({}).lines == []


def test_history_buckets_throughput_by_block_time() -> None:
    history = ChainHistory()
    now = 1_000_000
    for height, (seconds_ago, txs) in enumerate([(50, 10), (20, 40), (3, 25)], start=1):
        history.record(
            {
                "type": "block",
                "height": height,
                "time_ms": now - seconds_ago * 1000,
                "tx_count": txs,
            }
        )
    history.record({"type": "block"})  # malformed events are ignored
    throughput = history.throughput(3, now, window_s=60, bucket_s=10)
    assert throughput.rates == [0.0, 1.0, 0.0, 0.0, 4.0, 2.5]
    assert throughput.peak == 4.0
    assert throughput.last_rate == pytest.approx(3.25)
    assert history.interval_ms(3) == pytest.approx(23_500)


def test_history_marks_time_before_its_first_known_block_unknown() -> None:
    history = ChainHistory()
    now = 1_000_000
    history.record({"height": 10, "time_ms": now - 15_000, "tx_count": 5})
    throughput = history.throughput(10, now, window_s=60, bucket_s=10)
    assert throughput.rates[:4] == [None, None, None, None]
    assert throughput.rates[4:] == [0.5, 0.0]


def test_history_reads_missing_headers_and_samples_supply(chain: Chain) -> None:
    history = ChainHistory(backfill=3)
    history.refresh(LocalSource(chain.node), chain.tip)
    assert [p.height for p in history.recent(chain.tip, 10)] == [3, 4, 5]
    samples = history.supply_samples()
    assert samples[-1].height == chain.tip
    assert samples[-1].outstanding == {"CNY": 100_000, "USD": 250_075}
    history.refresh(LocalSource(chain.node), chain.tip)
    assert len(history.supply_samples()) == 1  # the tip did not move


def test_index_knows_creators_and_address_activity(chain: Chain) -> None:
    index = RecentIndex(LocalSource(chain.node))
    assert index.catch_up() == chain.tip
    creator = index.creator(bytes.fromhex(chain.bob_coin))
    assert creator is not None
    assert (creator.txid.hex(), creator.index) == (chain.transfer_tx, 0)
    bob = parse_address(chain.bob, HRP)
    activity = index.activity(bob)
    assert [(a.txid.hex(), a.received, a.spent) for a in activity] == [
        (chain.redeem_tx, 0, 1),
        (chain.transfer_tx, 1, 0),
        (chain.issue_tx, 1, 0),
    ]
    assert index.catch_up() == 0


def test_index_forgets_the_oldest_blocks_beyond_its_bound(chain: Chain) -> None:
    index = RecentIndex(LocalSource(chain.node), max_outputs=4)
    index.catch_up()
    assert index.indexed_from == 2  # block 1's three coins were dropped for block 2's four
    assert index.creator(bytes.fromhex(chain.alice_coin)) is None
    assert index.creator(bytes.fromhex(chain.bob_coin)) is not None
    carol = parse_address(chain.carol, HRP)
    assert index.activity(carol) == []


def test_index_backfills_only_the_newest_blocks(chain: Chain) -> None:
    index = RecentIndex(LocalSource(chain.node), backfill=2)
    assert index.catch_up() == 2
    assert index.indexed_from == chain.tip - 1


def test_index_thread_follows_new_blocks() -> None:
    fresh = build_chain()
    index = RecentIndex(LocalSource(fresh.node), backfill=1)
    index.start()
    try:
        from tally.explorer.bench import append_block
        from tests.rules.helpers import DAVE, MEMBER, coin, key, make_issue

        issue = make_issue("USD", [coin("USD", 10, DAVE)], nonce=99)
        append_block(fresh.node.store, [issue], key=key(MEMBER))
        done = threading.Event()
        for _ in range(100):
            index.wake()
            if index.indexed_to == fresh.tip + 1:
                done.set()
                break
            done.wait(0.05)
        assert done.is_set()
        dave = parse_address(address_of(key_lock(DAVE), HRP), HRP)
        assert len(index.activity(dave)) == 1
    finally:
        index.stop()


def test_event_stream_relays_committed_blocks(chain: Chain) -> None:
    app = FastAPI()
    explorer = mount_source(app, LocalSource(chain.node), index=False)
    with TestClient(app) as client, client.stream("GET", "/explorer/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines) == "retry: 2000"
        assert next(lines) == "event: hello"
        event = {"type": "block", "height": 99, "time_ms": 5, "tx_count": 3, "receipts": []}
        threading.Timer(0.1, chain.node._publish, [event]).start()
        received = [next(lines) for _ in range(4)]
        assert "event: block" in received
        assert 'data: {"height":99,"time_ms":5,"tx_count":3}' in received
    assert explorer.history.recent(99, 1)[0].tx_count == 3


def test_index_backfill_stops_at_its_transaction_budget(chain: Chain) -> None:
    # Blocks 5, 4 and 3 hold 0 + 1 + 2 transactions; block 2's one more is over a budget of 3.
    index = RecentIndex(LocalSource(chain.node), backfill_txs=3)
    index.catch_up()
    assert index.indexed_from == 3
