"""Screenshots of the dashboard's views for the README, from a running service.

    wavemae serve --model tablet --library /tmp/shots.sqlite3 &   # as the committed PNGs
    python deploy/screenshots/capture.py --url http://127.0.0.1:8000

Fills an empty library with spectra of the bundled ``tablet`` corpus (needs the train extra for
the corpus reader), queries one held-out tablet with a hidden band, and saves query.png,
library.png, map.png and model.png here. It clusters the library (k-means, k chosen by the
service) and fits its UMAP map through the API first, so the map view shows the real map.
With ``--measure N`` it only measures page load instead: N navigations, each in a fresh
browser context (cold cache) and once more reloaded (warm), Navigation Timing medians.
Needs Debian's ``chromium`` and ``playwright`` (dev extra).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent


def _fill_library(client: httpx.Client, n: int) -> None:
    from wavemae.data.corpora import load_corpus

    if client.get("/library", params={"limit": 0}).json()["count"] > 0:
        return
    corpus = load_corpus("tablet")
    picks = np.linspace(0, len(corpus.ids) - 1, n).astype(int)
    entries = [
        {
            "id": corpus.ids[i],
            "spectrum": corpus.values[i].round(6).tolist(),
            "wavelengths": corpus.wavelengths.tolist(),
            "metadata": corpus.metadata[i],
        }
        for i in picks
    ]
    client.post("/library", json={"entries": entries}, timeout=300).raise_for_status()


def _query_file(folder: Path) -> Path:
    from wavemae.data.corpora import load_corpus

    corpus = load_corpus("tablet", split="test")
    i = 17
    path = folder / f"{corpus.ids[i]}.csv"
    path.write_text(
        "id," + ",".join(f"{w:g}" for w in corpus.wavelengths) + "\n"
        f"{corpus.ids[i]}," + ",".join(f"{v:.6g}" for v in corpus.values[i]) + "\n"
    )
    return path


def _fit(client: httpx.Client, path: str, body: dict) -> None:
    """Start an analysis job (clusters or map) and wait until it is done."""
    job = client.post(path, json=body)
    job.raise_for_status()
    url = job.json()["status_url"]
    while (state := client.get(url).json())["state"] in ("queued", "running"):
        time.sleep(1)
    if state["state"] != "done":
        raise SystemExit(f"{path} failed: {state}")


def _save(page, name: str, out: Path) -> None:
    path = out / f"{name}.png"
    page.screenshot(path=str(path))
    try:  # 256 colours keep the committed PNGs small; skip when Pillow is absent
        from PIL import Image

        Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)
    except ImportError:
        pass
    print(f"{path} {path.stat().st_size // 1024} KB")


_TIMING = """(() => { const n = performance.getEntriesByType('navigation')[0];
  const bytes = performance.getEntriesByType('resource').reduce((s, r) => s + r.transferSize, 0);
  return [n.responseStart, n.domContentLoadedEventEnd, n.loadEventEnd, bytes + n.transferSize];
})()"""


def measure(browser, url: str, key: str | None, runs: int) -> None:
    """Print median time to first byte, DOMContentLoaded, load (ms) and bytes, cold and warm."""
    cold, warm = [], []
    for _ in range(runs):
        context = browser.new_context()
        if key:
            context.add_init_script(f"sessionStorage.setItem('wavemae.apiKey', {key!r})")
        page = context.new_page()
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready=true]")
        cold.append(page.evaluate(_TIMING))
        page.reload()
        page.wait_for_selector("body[data-ready=true]")
        warm.append(page.evaluate(_TIMING))
        context.close()
    for name, rows in (("cold", cold), ("warm", warm)):
        ttfb, dcl, load, size = (statistics.median(r[k] for r in rows) for k in range(4))
        print(
            f"{name}: median of {runs}: first byte {ttfb:.0f} ms, DOMContentLoaded {dcl:.0f} ms, "
            f"load {load:.0f} ms, {size / 1024:.0f} KB transferred; "
            f"load per run {[round(r[2]) for r in rows]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--key", default=None, help="admin API key, when auth is on")
    parser.add_argument("--entries", type=int, default=80, help="library size to fill")
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--measure", type=int, default=0, help="only measure N page loads")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    if args.measure:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=shutil.which("chromium"), args=["--no-sandbox"]
            )
            measure(browser, args.url, args.key, args.measure)
            browser.close()
        return

    headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    client = httpx.Client(base_url=args.url, headers=headers, timeout=60)
    _fill_library(client, args.entries)
    _fit(client, "/library/clusters", {"method": "kmeans", "k": "auto"})
    if client.get("/library/map", params={"method": "umap"}).status_code != 200:
        _fit(client, "/library/map", {"method": "umap"})

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        if args.key:
            context.add_init_script(f"sessionStorage.setItem('wavemae.apiKey', {args.key!r})")
        page = context.new_page()
        page.goto(args.url + "/")
        page.wait_for_selector("body[data-ready=true]")
        page.fill("#query-hide", "1100-1200")
        page.set_input_files("#query-file", str(_query_file(Path(tmp))))
        page.wait_for_selector("#matches tbody tr")
        page.wait_for_timeout(300)
        _save(page, "query", args.out)
        for view, ready in (("library", "#library-rows tr"), ("map", "#map-plot canvas")):
            page.click(f"#tab-{view}")
            page.wait_for_selector(ready)
            if view == "map":
                page.select_option("#map-colour", "instrument")
                page.wait_for_timeout(200)
            _save(page, view, args.out)
        page.click("#tab-model")
        page.wait_for_selector("#model-live table")
        _save(page, "model", args.out)
        browser.close()


if __name__ == "__main__":
    main()
