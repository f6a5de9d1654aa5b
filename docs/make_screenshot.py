"""Screenshot the top of a run directory's report.html in headless Chromium (for README.md).

    python docs/make_screenshot.py runs/default docs/report.png

Needs Chromium (Debian: ``apt-get install chromium``) and playwright (``pip install -e '.[test]'``).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright


def main(run_dir: str, out: str, height: int = 1500) -> None:
    browser_path = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser_path is None:
        raise SystemExit("Chromium is not installed (Debian: apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": height})
        page.goto((Path(run_dir) / "report.html").resolve().as_uri())
        page.screenshot(path=out)
        browser.close()
    print(f"written: {out}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
