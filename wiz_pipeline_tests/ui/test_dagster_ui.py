"""What a person sees in the Dagster UI after a few windows were collected: headless Chromium on the
pages of ``dagster-webserver`` (see conftest.py). Each test saves the page it checked as a PNG
(``--screenshots DIR``; ``scripts/screenshots`` refreshes docs/ui/ this way)."""

from __future__ import annotations

import pytest

from wiz_pipeline.collect import current
from wiz_pipeline.landing import quality
from wiz_pipeline_tests.ui.conftest import Collected
from wiz_pipeline_tests.ui.pages import DagsterUI

PARTITIONED = ["audit_logs", "issues"]  # by time window
ASSETS = [*PARTITIONED, "issues_current"]


def test_the_catalog_lists_every_wiz_asset(ui: DagsterUI, collected: dict[str, Collected]):
    ui.open_catalog()
    assets = [c.asset_path for c in collected.values()]
    assert sorted(collected) == sorted(ASSETS)
    links = ui.wait_until(ui.asset_links, lambda found: set(assets) <= set(found), f"links to {assets}")
    assert set(links) == set(assets)
    for name in PARTITIONED:
        c = collected[name]
        counts = ui.catalog_counts(c.asset_path)
        assert counts["materialized"] == len(c.materialized)
        assert counts["failed"] == counts["materializing"] == 0
        # A window may have closed since the fixture listed them: it is missing too.
        assert counts["missing"] == counts["partitions"] - len(c.materialized) >= len(c.missing)
    assert "Materialized" in ui.catalog_row(collected["issues_current"].asset_path, ready="^Materialized$")
    ui.screenshot("asset-list")


@pytest.mark.parametrize("name", PARTITIONED)
def test_the_partitions_tab_shows_the_collected_windows_as_materialized(
    ui: DagsterUI, collected: dict[str, Collected], name: str
):
    c = collected[name]
    ui.open_asset(c.asset_path, "partitions")
    ui.wait_for_text(f"Materialized ({len(c.materialized)})", "Missing (")
    listed = ui.wait_until(
        ui.listed_partitions, lambda keys: set(c.keys) <= set(keys), f"every partition of {c.asset_path}"
    )
    # Newest first; a window may have closed since the fixture listed them, and is missing too.
    assert listed == sorted(listed, reverse=True)
    assert ui.partition_counts()["Missing"] == len(listed) - len(c.materialized) >= len(c.missing)
    # Only the materialized ones are left when the missing ones are filtered out.
    ui.toggle_status_filter("Missing")
    shown = ui.wait_until(
        ui.listed_partitions, lambda keys: len(keys) == len(c.materialized), "only the materialized ones"
    )
    assert shown == sorted(c.materialized, reverse=True)


@pytest.mark.parametrize("name", PARTITIONED)
def test_a_windows_materialization_metadata_is_shown_on_its_partition(
    ui: DagsterUI, collected: dict[str, Collected], name: str
):
    c = collected[name]
    key = c.materialized[0]  # not the latest: the page must show this window's own figures
    ui.open_asset(c.asset_path, "partitions", partition=key)
    recorded = c.metadata[key]
    ui.wait_for_text(key, "Materialized", "Metadata", recorded["path"])
    shown = ui.metadata()
    for label in ("dagster/row_count", "path", "window_start", "window_end", c.collection.checkpoint_name):
        assert shown[label] == str(recorded[label]), label
    # The window's top values, a Markdown table rendered in its cell; the query's figures by their name.
    first = recorded["summary"].splitlines()[2].strip("| ").split(" | ")  # column, value, rows
    assert all(part in shown["summary"] for part in first), (first, shown["summary"])
    assert shown["query_requests"] == str(recorded["query_requests"])
    assert "requests" not in shown and "pages" not in shown
    if name == "audit_logs":
        ui.screenshot("partitions")


@pytest.mark.parametrize("name", ASSETS)
def test_the_latest_materialization_and_its_metadata_are_shown(
    ui: DagsterUI, collected: dict[str, Collected], name: str
):
    c = collected[name]
    ui.open_asset(c.asset_path, "events")
    latest = c.latest  # None for an unpartitioned asset
    recorded = c.metadata[latest]
    what = f"Partition {latest} materialized" if latest else "Materialized"
    ui.wait_for_text(f"{what} in run {c.run_id[:8]}", recorded["path"])
    shown = ui.metadata()
    for label in ("dagster/row_count", "path", *(("window_start", "window_end") if latest else ())):
        assert shown[label] == str(recorded[label]), label
    if name == "audit_logs":
        ui.screenshot("materialization")


@pytest.mark.parametrize("name", ASSETS)
def test_the_checks_tab_shows_each_check_its_description_and_latest_result(
    ui: DagsterUI, collected: dict[str, Collected], name: str
):
    c = collected[name]
    checks = current.CHECKS if name == "issues_current" else quality.CHECKS
    ui.open_asset(c.asset_path, "checks")
    assert ui.checks() == dict.fromkeys(sorted(checks), "Succeeded")
    ui.open_asset(c.asset_path, "checks", checkDetail="ids_unique" if c.latest else "one_row_per_id")
    name_of_check = "ids_unique" if c.latest else "one_row_per_id"
    description = checks[name_of_check][0]
    # The latest result targets the latest materialization (of the latest window, for a window asset).
    expected = [description[:60], "Passed", "Target materialization"]
    ui.wait_for_text(*expected, *(("Partition", c.latest) if c.latest else ()))
    shown = ui.metadata()
    assert shown["repeated_ids"] == "0"
    assert shown["rows"] == str(c.metadata[c.latest]["dagster/row_count"])
    if name == "audit_logs":
        ui.screenshot("checks")
