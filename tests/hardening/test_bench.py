"""``wavemae bench`` measures what it claims: FLOPs that agree with PyTorch's own counter,
engine backends that agree with each other, and load generators that count real answers."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest
from hardening_helpers import LATENT_DIM, SEQ_LEN, service_env

from wavemae.bench.flops import encoder_flops_per_spectrum
from wavemae.bench.loadgen import check_loopback, run_load
from wavemae.bench.servers import (
    ServerProcess,
    baseline_command,
    free_port,
    peer_command,
    service_command,
)
from wavemae.bench.wrk import run_load_wrk, wrk_available


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000", "http://example.com", "http://[::2]:80"])
def test_load_generator_refuses_other_machines(url):
    with pytest.raises(ValueError, match="loopback"):
        check_loopback(url)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:1", "http://[::1]:9"])
def test_load_generator_accepts_loopback(url):
    check_loopback(url)


def test_flops_per_spectrum_match_torch_flop_counter():
    """Linear layers counted by torch on the real encoder; torch's counter does not see CPU
    scaled_dot_product_attention, so its two products are counted on explicit matmuls."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from wavemae.models import WaveMAE

    config = dict(
        seq_len=48,
        d_model=32,
        nhead=4,
        num_layers=3,
        dim_feedforward=80,
        latent_dim=8,
        n_blocks=8,
        n_mask=4,
    )
    encoder = WaveMAE(**config).encoder.eval()
    batch, tokens, heads = 5, config["seq_len"] + 1, config["nhead"]
    with FlopCounterMode(display=False) as model_count, torch.no_grad():
        encoder.forward_all_visible(torch.randn(batch, config["seq_len"]))
    q = torch.randn(batch, heads, tokens, config["d_model"] // heads)
    with FlopCounterMode(display=False) as attention_count:
        (q @ q.transpose(-1, -2)).softmax(-1) @ q  # QK^T and AV of one layer
    counted = model_count.get_total_flops()
    if not any("scaled_dot_product" in str(op) for op in model_count.get_flop_counts()["Global"]):
        counted += config["num_layers"] * attention_count.get_total_flops()
    assert encoder_flops_per_spectrum(config) == counted // batch


def test_engine_backends_agree_and_report_every_batch_size(tiny_artifact):
    from wavemae.artifact import load_artifact
    from wavemae.bench.engine import run_engine

    result = run_engine(
        load_artifact(tiny_artifact),
        batch_sizes=(1, 4),
        seconds=0.05,
        thread_counts=(1,),
        measure_peaks=False,
    )
    rows = {r["name"]: r for r in result["backends"]}
    assert "onnxruntime-fp32" in rows
    json.dumps(result)  # JSON-ready
    for row in rows.values():
        assert set(row["by_threads"]["1"]) == {"1", "4"}
        assert row["best_spectra_per_s"] > 0
        if row["precision"] == "fp32":  # the same weights in fp32 find the same neighbours
            assert row["parity"]["top1_agreement"] == 1.0
            assert row["parity"]["max_abs_diff"] < 1e-4


def test_load_generators_count_real_answers(tiny_artifact, tmp_path, raw_spectra):
    port = free_port()
    env = service_env(tiny_artifact, tmp_path, host="127.0.0.1", port=port)
    with ServerProcess(service_command(), port, env=env, cwd=tmp_path) as server:
        result = asyncio.run(
            run_load(
                server.url,
                raw_spectra,
                concurrency=4,
                body="npy",
                max_requests=60,
                max_seconds=30,
                warmup_requests=4,
            )
        )
        assert result.ok == result.requests == 60
        assert result.p50_ms <= result.p99_ms
        if wrk_available():
            fast = run_load_wrk(
                server.url,
                raw_spectra,
                concurrency=4,
                body="json",
                max_requests=50,
                max_seconds=5,
                warmup_seconds=0,
            )
            assert fast.statuses.get("200", 0) >= 50 and fast.errors == 0
        metrics = httpx.get(server.url + "/metrics").text
        served = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("wavemae_requests_total") and '"/embed"' in line
        )
        assert served >= 60 + 4  # every counted answer was really served


def test_baseline_server_answers_like_the_model(tiny_artifact, raw_spectra, reference):
    pytest.importorskip("torch")
    port = free_port()
    with ServerProcess(baseline_command(port, tiny_artifact, 1), port) as server:
        response = httpx.post(server.url + "/embed", json={"spectra": raw_spectra[:3].tolist()})
    assert response.status_code == 200
    got = np.asarray(response.json()["embeddings"])
    assert got.shape == (3, LATENT_DIM)
    np.testing.assert_allclose(got, reference(raw_spectra[:3]), atol=1e-5)
    assert raw_spectra.shape[1] == SEQ_LEN


def test_peer_server_answers_like_the_model(tiny_artifact, raw_spectra, reference):
    port = free_port()
    with ServerProcess(peer_command(port, tiny_artifact), port) as server:
        response = httpx.post(server.url + "/embed", json={"spectra": raw_spectra[:3].tolist()})
    assert response.status_code == 200
    got = np.asarray(response.json()["embeddings"])
    np.testing.assert_allclose(got, reference(raw_spectra[:3]), atol=1e-5)


def test_baseline_mode_puts_the_service_and_the_peer_side_by_side(tiny_artifact):
    """One run loads both servers at every point and states the peer targets from it."""
    from wavemae.bench.modes import LoadPlan
    from wavemae.bench.peers import baseline_mode
    from wavemae.bench.report import to_markdown
    from wavemae.bench.targets import evaluate_targets

    plan = LoadPlan(
        concurrencies=(1, 4),
        bodies=("json", "npy"),
        max_requests=40,
        max_seconds=5,
        warmup_requests=4,
        client="httpx",
    )
    results = baseline_mode(
        tiny_artifact, plan=plan, servers=("serve", "peer"), engine_seconds=0.05
    )
    json.dumps(results)  # JSON-ready
    assert [(r["body"], r["concurrency"]) for r in results["serve"]["rows"]] == [
        ("json", 1),
        ("json", 4),
        ("npy", 1),
        ("npy", 4),
    ]
    # The peer speaks JSON only: its npy points are not measured, and say so with None.
    assert [r["concurrency"] for r in results["peer"]["rows"]] == [1, 4]
    for row in results["serve"]["rows"] + results["peer"]["rows"]:
        assert row["ok"] == row["requests"] == 40, row["statuses"]
    by = {(r["body"], r["concurrency"]): r for r in results["comparison"]}
    assert by[("npy", 4)]["peer"] is None and by[("npy", 4)]["serve_vs_peer"] is None
    ratio = by[("json", 4)]["serve_vs_peer"]
    assert (
        ratio
        == by[("json", 4)]["serve"]["spectra_per_s"] / by[("json", 4)]["peer"]["spectra_per_s"]
    )
    names = [t["name"] for t in evaluate_targets(results)]
    assert "p50 at 1 client / peer's" in names
    assert {"spectra/s at 4 clients / peer's", "p99 at 4 clients / peer's"} <= set(names)
    assert "| json | 4 |" in to_markdown(results)
