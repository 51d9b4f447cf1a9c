"""A map's stored transform (pack/unpack and its checks) and the fit process, without HTTP."""

from __future__ import annotations

import os
import threading
import time
import zlib

import fit_helpers
import pytest
from fit_helpers import alive

from wavemae_service.library.analysis import AnalysisJobs, JobBusy
from wavemae_service.library.fit_process import FitCancelled, FitProcessDied, FitWorker
from wavemae_service.library.map_transform import TransformUnavailable, pack, unpack

MIB = 2**20


def test_a_packed_transform_loads_back_only_when_it_is_the_one_the_map_describes():
    fitted = {"weights": list(range(1000)), "name": "a fitted map stand-in"}
    blob, meta = pack(fitted, "tsne", 16, key="", max_bytes=MIB)
    assert meta["stored"] and meta["dim"] == 16 and meta["bytes"] == len(blob)
    assert meta["package"] == "openTSNE" and meta["digest"].startswith("sha256:")
    assert unpack(blob, meta, key="", max_bytes=MIB) == fitted

    def refused(blob, meta, key="", max_bytes=MIB) -> str:
        with pytest.raises(TransformUnavailable) as err:
            unpack(blob, meta, key=key, max_bytes=max_bytes)
        return str(err.value)

    # another fit's blob, or a corrupted one, is never unpickled
    other, _ = pack({"another": "fit"}, "tsne", 16, key="", max_bytes=MIB)
    assert "does not match" in refused(other, meta)
    assert "does not match" in refused(blob[:-1] + bytes([blob[-1] ^ 1]), meta)
    assert "stored before" in refused(None, None)  # a map from before transforms were kept
    assert "missing" in refused(None, meta)
    assert "more than map_transform_max_mb" in refused(blob, meta, max_bytes=len(blob) - 1)
    newer = {**meta, "package_version": "99.0"}
    assert "openTSNE 99.0" in refused(blob, newer)  # names both versions
    assert "format" in refused(blob, {**meta, "format": "joblib"})

    big, too_big = pack(os.urandom(2 * MIB), "umap", 16, key="", max_bytes=MIB)
    assert big is None and not too_big["stored"] and "map_transform_max_mb=1" in too_big["reason"]
    assert "map_transform_max_mb=1" in refused(None, too_big)


def test_with_a_key_only_a_holder_of_it_makes_a_transform_that_loads():
    fitted = {"weights": [1, 2, 3]}
    blob, meta = pack(fitted, "umap", 8, key="s3cret", max_bytes=MIB)
    assert meta["digest"].startswith("hmac-sha256:")
    assert unpack(blob, meta, key="s3cret", max_bytes=MIB) == fitted
    with pytest.raises(TransformUnavailable, match="no WAVEMAE_MAP_TRANSFORM_KEY"):
        unpack(blob, meta, key="", max_bytes=MIB)
    with pytest.raises(TransformUnavailable, match="does not match"):
        unpack(blob, meta, key="another key", max_bytes=MIB)
    # a writer of the database without the key: a plain digest is refused, and a forged
    # blob under the old digest does not match
    plain_blob, plain_meta = pack({"evil": True}, "umap", 8, key="", max_bytes=MIB)
    with pytest.raises(TransformUnavailable, match="not signed"):
        unpack(plain_blob, plain_meta, key="s3cret", max_bytes=MIB)
    forged = zlib.compress(b"not what was signed")
    with pytest.raises(TransformUnavailable, match="does not match"):
        unpack(forged, meta, key="s3cret", max_bytes=MIB)


def test_the_fit_worker_relays_progress_reuses_its_process_and_reraises_errors():
    worker = FitWorker()
    seen = []
    try:
        first = worker.run(
            fit_helpers.report_and_answer,
            (7,),
            progress=lambda f, s: seen.append((f, s)),
            cancel=threading.Event(),
        )
        assert first["value"] == 7 and first["pid"] != os.getpid()  # another process
        assert seen == [(0.25, "first quarter"), (0.5, "half way")]
        with pytest.raises(ValueError, match="k is not acceptable"):
            worker.run(
                fit_helpers.refuse, ("k",), progress=lambda f, s: None, cancel=threading.Event()
            )
        again = worker.run(
            fit_helpers.report_and_answer,
            (8,),
            progress=lambda f, s: None,
            cancel=threading.Event(),
        )
        assert again["pid"] == first["pid"]  # compiled kernels survive between fits
    finally:
        worker.close()
    assert not alive(first["pid"])


def test_a_cancelled_fit_kills_its_process_and_a_dead_one_is_reported():
    worker = FitWorker()
    cancel = threading.Event()
    stages = []

    def progress(fraction, stage):
        stages.append(stage)
        cancel.set()  # the server stops while the fit is running

    with pytest.raises(FitCancelled):
        worker.run(fit_helpers.sleep_forever, (), progress=progress, cancel=cancel)
    assert stages == ["sleeping"] and worker.pid is None

    pids = []

    def kill_it(fraction, stage):
        pids.append(worker.pid)
        os.kill(worker.pid, 9)  # e.g. the kernel's out-of-memory killer

    with pytest.raises(FitProcessDied, match="exit code -9"):
        worker.run(fit_helpers.sleep_forever, (), progress=kill_it, cancel=threading.Event())
    time.sleep(0.2)
    assert not alive(pids[0])
    worker.close()


def test_a_fit_larger_than_the_memory_limit_fails_instead_of_growing():
    worker = FitWorker(memory_limit_mb=1024)
    try:
        with pytest.raises(MemoryError):
            worker.run(
                fit_helpers.allocate, (4,), progress=lambda f, s: None, cancel=threading.Event()
            )
        assert worker.pid is None  # replaced on the next fit
        answer = worker.run(
            fit_helpers.report_and_answer,
            (1,),
            progress=lambda f, s: None,
            cancel=threading.Event(),
        )
        assert answer["value"] == 1
    finally:
        worker.close()


def test_stopping_the_jobs_cancels_a_fit_in_its_process():
    jobs, worker = AnalysisJobs(), FitWorker()

    def work(progress):
        return worker.run(fit_helpers.sleep_forever, (), progress=progress, cancel=jobs.cancelled)

    job = jobs.submit("map", {"method": "umap"}, work)
    deadline = time.monotonic() + 60
    while job.stage != "sleeping" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.state == "running" and job.progress == 0.1
    pid = worker.pid
    jobs.stop()
    assert job.public()["state"] == "cancelled" and "server is stopping" in job.error
    assert not alive(pid)
    with pytest.raises(JobBusy, match="stopping"):
        jobs.submit("map", {}, work)
