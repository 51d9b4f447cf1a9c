"""The dashboard's and API docs' files as served over HTTP (no browser needed; the browser tests
are in test_dashboard.py): everything the pages load comes from this server."""

from __future__ import annotations

import re

import pytest

from wavemae_service.routes.ui import UI_DIR

_LOCAL_REF = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


def test_dashboard_page_and_every_file_it_names_are_served(http):
    page = http.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    refs = [r for r in _LOCAL_REF.findall(page.text) if not r.startswith(("#", "data:"))]
    assert refs, "the page names its scripts and styles"
    for ref in refs:
        assert ref.startswith("/"), f"{ref} is not served by this server"
        if ref in ("/docs",):
            continue
        answer = http.get(ref)
        assert answer.status_code == 200, ref
    assert http.get("/ui/js/main.js").headers["content-type"].startswith("text/javascript")


def test_module_imports_resolve_to_shipped_files():
    for module in (UI_DIR / "js").glob("*.js"):
        for name in re.findall(r'from "\./([\w.]+)"', module.read_text()):
            assert (UI_DIR / "js" / name).is_file(), f"{module.name} imports missing {name}"


@pytest.mark.parametrize(
    "path", ["/ui/../app.py", "/ui/%2e%2e/app.py", "/ui/", "/ui/js", "/ui/nope.js"]
)
def test_only_shipped_files_are_served(http, path):
    answer = http.get(path)
    assert answer.status_code == 404
    assert answer.json()["error"]["type"] == "not_found"


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_api_docs_load_their_assets_from_this_server(http, path):
    page = http.get(path)
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href|url)\s*[=:(]\s*["']([^"']+)["']""", page.text)
    assert any("/ui/vendor/" in u for u in urls)
    assert [u for u in urls if u.startswith(("http:", "https:", "//"))] == []
    assert "fonts.googleapis" not in page.text
    assert http.get(page.text.split('src="')[1].split('"')[0]).status_code == 200


def test_vendored_builds_carry_their_licences():
    versions = (UI_DIR / "vendor" / "VERSIONS.md").read_text()
    for folder in (UI_DIR / "vendor").iterdir():
        if folder.is_dir():
            assert (folder / "LICENSE").is_file(), folder.name
            assert f"`{folder.name}/LICENSE" in versions, folder.name


def test_the_dashboard_is_not_in_the_api_schema(http):
    paths = http.get("/openapi.json").json()["paths"]
    assert not {"/", "/docs", "/redoc", "/ui/{path}"} & set(paths)
