"""Screenshots of the dashboard's views for the README, from a running service.

    wavemae serve --library /tmp/shots.sqlite3 &          # the shipped model
    python deploy/screenshots/capture.py --url http://127.0.0.1:8000

Fills an empty library with spectra of the bundled ``tablet`` corpus (needs the train extra for
the corpus reader), queries one held-out tablet with a hidden band, and saves query.png,
library.png, map.png and model.png here. When the server has no ``GET /library/map`` yet, the
map view is shown with a stand-in answer: a 2-D PCA of the library's own embeddings, computed
here and handed to the page (the screenshot says so in its status line).
With ``--measure N`` it only measures page load instead: N navigations, each in a fresh
browser context (cold cache) and once more reloaded (warm), Navigation Timing medians.
Needs Debian's ``chromium`` and ``playwright`` (dev extra).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
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


def _pca_map(client: httpx.Client) -> dict:
    """{items: [{id, x, y, cluster, metadata}]}: the library's embeddings projected by PCA."""
    page = client.get("/library", params={"limit": 1000, "include_embedding": "true"}).json()
    entries = page["entries"]
    z = np.array([e["embedding"] for e in entries])
    z -= z.mean(axis=0)
    xy = z @ np.linalg.svd(z, full_matrices=False)[2][:2].T
    items = [
        {
            "id": e["id"],
            "x": float(p[0]),
            "y": float(p[1]),
            "cluster": None,
            "metadata": e["metadata"],
        }
        for e, p in zip(entries, xy, strict=True)
    ]
    return {"items": items, "method": "PCA stand-in (no /library/map on this server)"}


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
    has_map = client.get("/library/map", params={"method": "umap"}).status_code == 200
    stand_in = None if has_map else json.dumps(_pca_map(client))

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        if args.key:
            context.add_init_script(f"sessionStorage.setItem('wavemae.apiKey', {args.key!r})")
        page = context.new_page()
        if stand_in:
            page.route(
                "**/library/map?*",
                lambda route: route.fulfill(content_type="application/json", body=stand_in),
            )
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
