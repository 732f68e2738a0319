"""`bench_explorer` on a short chain: it fills a store and times every page (not a timed test)."""

from __future__ import annotations

from pathlib import Path

from tally.explorer.bench import bench_explorer


def test_bench_explorer_fills_a_store_and_times_every_page(tmp_path: Path) -> None:
    stages: list[tuple[str, int, int]] = []
    figures = bench_explorer(
        300, repeats=1, directory=tmp_path / "store", progress=lambda *a: stages.append(a)
    )
    assert figures["blocks"] == 300
    assert ("fill", 300, 300) in stages
    pages = figures["pages"]
    assert len(pages) >= 12
    assert pages["dashboard"]["status"] == 200
    assert pages["tx"]["status"] == 200
    assert pages["coin_spent"]["status"] == 200
    assert pages["search_txid"]["status"] == 303
    assert pages["not_found"]["status"] == 404
    assert all(page["median_ms"] > 0 for page in pages.values())
    assert figures["within_budget"] in (True, False)
