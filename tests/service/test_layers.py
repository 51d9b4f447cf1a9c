"""The service's layering holds: nothing below the routes imports FastAPI, and every error the
service answers comes from the one error module (its status table and API document included)."""

from __future__ import annotations

import inspect
import subprocess
import sys

import httpx

from wavemae_service import errors


def test_nothing_below_the_routes_imports_fastapi():
    below_routes = [
        "wavemae_service.inference",
        "wavemae_service.library.service",
        "wavemae_service.library.sqlite",
        "wavemae_service.batching",
        "wavemae_service.runtime",
        "wavemae_service.inputs",
        "wavemae_service.cubes",
        "wavemae_service.errors",
    ]
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in below_routes)
        + "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_every_error_class_is_in_the_table_with_its_own_type():
    defined = [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.ServiceError) and cls.__module__ == errors.__name__
    ]
    assert set(defined) == set(errors.ERRORS)
    types = [cls.type for cls in errors.ERRORS]
    assert len(types) == len(set(types)), "two errors share a type"
    # 409 means five things, so five types: re-embed first, wait for the running
    # re-embedding, wait for the running clustering / map fit, refit the map here, or cluster
    # the library (for include_cluster).
    assert {cls.type for cls in errors.ERRORS if cls.status == 409} == {
        "library_version_mismatch",
        "reembed_in_progress",
        "analysis_in_progress",
        "map_not_loaded",
        "clusters_not_computed",
    }


def test_errors_raised_outside_the_service_code_get_the_tables_type(server):
    assert errors.type_for_status(418) == "error"
    with httpx.Client(base_url=server.url, timeout=30) as http:
        missing = http.get("/no-such-path")
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == errors.type_for_status(404) == "not_found"
        wrong = http.delete("/embed")
        assert wrong.status_code == 405
        assert wrong.json()["error"]["type"] == "method_not_allowed"
        # The API document's error answers are the error classes' descriptions.
        responses = http.get("/openapi.json").json()["paths"]["/library/reembed"]["post"][
            "responses"
        ]
    assert responses["409"]["description"] == (
        f"{errors.LibraryVersionMismatch.description}; {errors.ReembedInProgress.description}"
    )
    assert responses["429"]["description"] == errors.Overloaded.description
