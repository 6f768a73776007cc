"""Headless Chromium for the report's browser tests (Debian ``chromium`` + ``chromium-driver``,
Selenium pointed at the Debian driver: Selenium Manager would try to download one).

:func:`missing` says why a browser cannot run here (the tests skip with it); :func:`chromium`
opens one with the network shut; :func:`page_report` loads a page and measures what the tests
assert.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

#: Where Debian installs the browser and its driver.
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
DRIVER = "/usr/bin/chromedriver"
#: Flags for a headless browser as root on a closed network (no background connections).
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage", "--disable-default-apps", "--disable-extensions",
         "--hide-scrollbars")


def _binary() -> str | None:
    return next((b for b in CHROMIUM if Path(b).exists()), None) or shutil.which("chromium")


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install accel-hw[report])"
    if _binary() is None:
        return "Chromium is not installed (apt-get install chromium chromium-driver)"
    if not Path(DRIVER).exists():
        return f"chromedriver not found at {DRIVER} (apt-get install chromium-driver)"
    return None


@contextmanager
def chromium(width: int = 1400, height: int = 900) -> Iterator[Any]:
    """A headless Chromium WebDriver with a fresh profile and a window of ``width`` CSS px."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="accel-chromium-") as profile:
        opts = webdriver.ChromeOptions()
        opts.binary_location = _binary()
        for f in FLAGS:
            opts.add_argument(f)
        opts.add_argument(f"--user-data-dir={profile}")
        opts.add_argument(f"--window-size={width},{height}")
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
        try:
            driver.set_window_size(width, height)
            yield driver
        finally:
            driver.quit()


#: Measures the page in the browser (returns a JSON string).
_MEASURE = """
const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
const out = {plots: [], scrollWidth: document.documentElement.scrollWidth,
             innerWidth: window.innerWidth,
             resources: performance.getEntriesByType('resource').map(e => e.name)
                        .filter(n => !n.startsWith('data:'))};
for (const gd of plots) {
  const drag = gd.querySelector('.nsewdrag');
  const legend = gd.querySelector('.legend');
  const box = e => { if (!e) return null; const r = e.getBoundingClientRect();
                     return [r.left, r.top, r.right, r.bottom]; };
  out.plots.push({id: gd.id, traces: gd.data.length,
                  points: gd.data.reduce((n, t) => n + (t.x ? t.x.length : 0), 0),
                  series: gd.data.filter(t => t.name !== 'recommended' && t.name !== 'Pareto front'
                                         && t.visible !== false).length,
                  plotArea: box(drag), legend: box(legend), width: gd.getBoundingClientRect().width,
                  shown: gd.offsetParent !== null});
}
return JSON.stringify(out);
"""


def page_report(driver: Any, page: Path) -> dict[str, Any]:
    """Load ``page`` and measure it: plots (traces, points, series, plot-area and legend boxes),
    widths, resources fetched, JavaScript errors and network requests."""
    driver.get(page.resolve().as_uri())
    driver.execute_script("return document.readyState")
    out = json.loads(driver.execute_script(_MEASURE))
    logs = driver.get_log("browser")
    out["errors"] = [e["message"] for e in logs if e.get("level") == "SEVERE"]
    requests = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            url = msg["params"]["request"]["url"]
            if not url.startswith(("data:", page.resolve().as_uri())):
                requests.append(url)
    out["requests"] = requests
    return out


def overlaps(a: list[float] | None, b: list[float] | None) -> bool:
    """Whether two ``[left, top, right, bottom]`` boxes intersect (by more than a pixel)."""
    if a is None or b is None:
        return False
    return min(a[2], b[2]) - max(a[0], b[0]) > 1 and min(a[3], b[3]) - max(a[1], b[1]) > 1
