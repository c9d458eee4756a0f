"""Page helpers for Dagster 1.13's UI, so that tests read as what a person looks at.

The URLs are the UI's own (``ui-core/src/assets/assetDetailsPathForKey.tsx`` and ``AssetTabs.tsx`` in
dagster-webserver's bundle): ``/assets/<key path>?view=overview|partitions|events|checks|lineage``, with
``&partition=<key>`` for one partition. The UI is a React app that loads its data after the page: every
look waits, with an explicit condition, for what it expects to see.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote, unquote, urlencode

from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

T = TypeVar("T")
TIMEOUT = 30  # generous: the machine running CI is shared and the first query loads the code location


class DagsterUI:
    def __init__(self, driver: WebDriver, url: str, screenshots: Path) -> None:
        self.driver, self.url, self.screenshots = driver, url, screenshots

    # -- navigation ---------------------------------------------------------------------------

    def open(self, path: str) -> None:
        self.driver.get(f"{self.url}{path}")

    def open_catalog(self) -> None:
        """Assets → the catalog: every asset of the workspace."""
        self.open("/assets")

    def open_asset(self, asset_path: str, view: str = "overview", **params: str) -> None:
        """``asset_path`` as ``wiz/audit_logs``; ``view`` one of the asset page's tabs; ``params`` the
        page's other query parameters: ``partition=`` (a partition's detail on the partitions tab),
        ``checkDetail=`` (a check on the checks tab)."""
        query = {"view": view, **params}
        keys = "/".join(quote(part, safe="") for part in asset_path.split("/"))
        self.open(f"/assets/{keys}?{urlencode(query)}")

    # -- looking ------------------------------------------------------------------------------

    def text(self) -> str:
        """The page's visible text."""
        return self.driver.find_element(By.TAG_NAME, "body").text

    def wait_for(self, condition, what: str, timeout: float = TIMEOUT):
        """``condition(driver)`` until it returns something truthy; a failure says what never came
        and ends with the page's text, to see what was shown instead."""
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(condition)
        except TimeoutException:
            raise AssertionError(
                f"waited {timeout} s for {what} at {self.driver.current_url}\n--- page text:\n"
                f"{self.text()[:3000]}"
            ) from None

    def wait_until(
        self, look: Callable[[], T], good: Callable[[T], bool], what: str, timeout: float = TIMEOUT
    ) -> T:
        """``look()`` again until ``good`` of what it returns; returns that."""
        seen: list[T] = []

        def check(driver: WebDriver) -> bool:
            seen[:] = [look()]
            return good(seen[0])

        self.wait_for(check, what, timeout)
        return seen[0]

    def wait_for_text(self, *texts: str, timeout: float = TIMEOUT) -> str:
        """Until every one of ``texts`` is on the page; returns the page's text."""
        return self.wait_until(
            self.text, lambda t: all(x in t for x in texts), f"the text {texts!r}", timeout
        )

    def wait_for_pattern(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        return self.wait_for(lambda d: re.search(pattern, self.text()), f"a match of {pattern!r}", timeout)

    def elements(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def screenshot(self, name: str) -> Path:
        """The window as a PNG named ``name`` in the screenshot directory."""
        path = self.screenshots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    # -- the asset pages ----------------------------------------------------------------------

    def asset_links(self) -> list[str]:
        """The asset pages linked from the page, as key paths (``wiz/audit_logs``)."""
        paths = set()
        for link in self.elements("a[href*='/assets/']"):
            match = re.search(r"/assets/([^?#]+)", link.get_attribute("href") or "")
            if match:
                paths.add(unquote(match[1]).strip("/"))
        return sorted(paths)

    def catalog_row(self, asset_path: str, ready: str = r"^\d+ partitions?$") -> str:
        """The text of the catalog's row for ``asset_path`` once its status has loaded: a line matching
        ``ready`` (a partitioned asset's row says "- partitions" until its counts have loaded, then
        "6 partitions"; an unpartitioned one's says "Materialized" over the time of the latest)."""
        href = "/assets/" + "/".join(quote(part, safe="") for part in asset_path.split("/"))

        def row() -> str:
            for link in self.elements(f"a[href$='{href}'], a[href*='{href}?']"):
                # The nearest ancestor holding the code location's name too is the row.
                found = link.find_elements(By.XPATH, "./ancestor::*[count(.//a) >= 2][1]")
                if found:
                    return found[0].text
            return ""

        return self.wait_until(row, lambda text: re.search(ready, text, re.M), f"{asset_path}'s row")

    def catalog_counts(self, asset_path: str) -> dict[str, int | str]:
        """The catalog row's partition counts: materialized, missing, failed, materializing (a number,
        or "All") and the number of partitions."""
        *_, materialized, missing, failed, materializing, total = self.catalog_row(asset_path).splitlines()
        counts: dict[str, int | str] = {"partitions": int(total.split()[0])}
        for name, value in zip(
            ("materialized", "missing", "failed", "materializing"),
            (materialized, missing, failed, materializing),
            strict=True,
        ):
            counts[name] = int(value) if value.isdigit() else value
        return counts

    def partition_counts(self) -> dict[str, int]:
        """The Partitions tab's status filters: "Materialized (3)", "Missing (3)", ... by status."""
        return {
            m[1]: int(m[2])
            for m in re.finditer(r"(Materialized|Materializing|Failed|Missing) \((\d+)\)", self.text())
        }

    def listed_partitions(self) -> list[str]:
        """The partition keys the Partitions tab lists (it virtualises long lists: the visible ones)."""
        return [
            e.get_attribute("data-tooltip")
            for e in self.elements("[data-tooltip]")
            if re.fullmatch(r"\d{4}-\d\d-\d\d-\d\d:\d\d", e.get_attribute("data-tooltip") or "")
        ]

    def toggle_status_filter(self, status: str) -> None:
        """Clicks the Partitions tab's checkbox for ``status`` (Materialized, Missing, ...)."""
        label = self.wait_for(
            lambda d: next(
                (e for e in d.find_elements(By.TAG_NAME, "label") if e.text.startswith(f"{status} (")), None
            ),
            f"the {status} filter",
        )
        label.click()

    def checks(self) -> dict[str, str]:
        """The Checks tab's list: check name -> the status shown under it ("Succeeded", "Failed",
        "Not evaluated", ...). A failed check of WARN severity shows "Failed" too, with a warning icon
        instead of the red one."""
        count = int(self.wait_for_pattern(r"(?m)^Checks \((\d+)\)$")[1])
        lines = self.text().splitlines()
        start = (
            lines.index("Execute all") + 1 if "Execute all" in lines else lines.index(f"Checks ({count})") + 1
        )
        listed = lines[start : start + 2 * count]
        return dict(zip(listed[::2], listed[1::2], strict=True))

    def metadata(self) -> dict[str, str]:
        """The metadata tables shown (a partition's, the latest materialization's, a check's): key ->
        the text of its Value column (the tables may also have Timestamp and Description columns). A
        Markdown value under 1,000 characters is rendered in its cell (a table inside the table: its
        text here, its rows not taken for keys); a longer one shows "[Show Markdown]", a dialog."""
        rows = {}
        for table in self.driver.find_elements(By.XPATH, "//table[not(ancestor::table)]"):
            header = [c.text.strip() for c in table.find_elements(By.XPATH, "./thead/tr/*")]
            value = header.index("Value") if "Value" in header else 1
            for row in table.find_elements(By.XPATH, "./tbody/tr"):
                cells = row.find_elements(By.XPATH, "./td")
                if len(cells) > value:
                    rows.setdefault(cells[0].text.strip(), cells[value].text.strip())
        return rows
