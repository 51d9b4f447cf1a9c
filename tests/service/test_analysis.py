"""Library clustering results and the background job runner, without HTTP."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from wavemae.cluster import unit_rows
from wavemae_service.library.analysis import (
    AnalysisJobs,
    JobBusy,
    assign_clusters,
    cluster_result,
)


def _library(k: int = 3, n: int = 90, dim: int = 16):
    rng = np.random.default_rng(7)
    centres = unit_rows(rng.normal(size=(k, dim)))
    labels = np.arange(n) % k
    x = unit_rows(centres[labels] + 0.1 * rng.normal(size=(n, dim)))
    return [f"e{i:03d}" for i in range(n)], x, labels


@pytest.mark.parametrize("method", ["kmeans", "vmf"])
def test_auto_k_finds_three_groups_and_new_points_join_their_group(method):
    ids, x, labels = _library()
    result = cluster_result(ids, x, method=method, k="auto", model_version="m:1")
    assert result["k"] == 3
    assert result["criterion"]["name"] == "bic"
    values = result["criterion"]["values"]
    assert min(values, key=values.get) == "3"
    assert sorted(result["sizes"]) == [30, 30, 30]
    fitted = np.array([result["labels"][i] for i in ids])
    # each true group is one cluster
    assert all(len(set(fitted[labels == g])) == 1 for g in range(3))
    np.testing.assert_array_equal(assign_clusters(x, result), fitted)


def test_fixed_k_and_bad_arguments():
    ids, x, _ = _library()
    assert cluster_result(ids, x, method="kmeans", k=5, model_version="m:1")["k"] == 5
    with pytest.raises(ValueError, match="method='dbscan'"):
        cluster_result(ids, x, method="dbscan", k=2, model_version="m:1")
    with pytest.raises(ValueError, match="k=91 is more than the 90 points"):
        cluster_result(ids, x, method="kmeans", k=91, model_version="m:1")


def test_jobs_run_one_at_a_time_and_report_progress_and_failures():
    jobs = AnalysisJobs()
    release = threading.Event()

    def slow(progress):
        progress(0.5, "half way")
        release.wait(10)
        return {"answer": 42, "labels": {"a": 0}}

    job = jobs.submit("clusters", {"k": 2}, slow)
    with pytest.raises(JobBusy, match="still running"):
        jobs.submit("map", {}, lambda progress: {})
    for _ in range(200):
        if job.stage == "half way":
            break
        threading.Event().wait(0.01)
    assert job.public()["state"] == "running" and job.public()["progress"] == 0.5
    release.set()
    jobs.wait()
    public = jobs.get(job.id).public()
    assert public["state"] == "done" and public["progress"] == 1.0
    assert public["result"] == {"answer": 42}  # per-entry arrays stay out of the status

    def broken(progress):
        raise ValueError("k=9 is more than the 3 points")

    failed = jobs.submit("clusters", {"k": 9}, broken)
    jobs.wait()
    assert failed.state == "failed" and "k=9 is more than the 3 points" in failed.error
    assert jobs.get("nope") is None
