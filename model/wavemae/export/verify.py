"""Checks an exported artifact's graphs against PyTorch eager before the manifest is written.

:func:`verify_exported` runs every graph of a staging folder (ONNX through ONNX Runtime with
full graph optimisation, TorchScript through ``torch.jit.load``) on real model-input spectra
and compares with the eager model:

- ``encoder`` / ``encoder_torchscript`` against ``model.encode(x, all visible)``;
- ``encoder_masked`` against ``model.encode(x, visible)`` (the packing path) on block masks
  drawn like training masks, and again after the hidden positions are overwritten with large
  noise and NaN (a dead band): the embedding must not move;
- ``decoder`` / ``decoder_torchscript`` against ``model.decoder(z)``;
- each graph at batch sizes 1, 7 and 64 (the dynamic batch axis);
- ``onnx.checker`` (full check) on every ONNX file, and the session's tensor names, dtypes
  and shapes against :func:`wavemae.artifact.tensor_specs_for`.

Embedding tolerances: max abs difference <= 1e-4 and cosine >= 0.9999 (the issue's).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wavemae.artifact import FILE_NAMES, SPECTRA, VISIBLE, tensor_specs_for
from wavemae.bench.backends import ort_session

__all__ = [
    "BATCH_SIZES",
    "EMBEDDING_ATOL",
    "MIN_COSINE",
    "ExportVerificationError",
    "verify_exported",
]

EMBEDDING_ATOL = 1e-4
MIN_COSINE = 0.9999
BATCH_SIZES = (1, 7, 64)
_CHUNK = 64  # rows per forward pass: bounds attention memory for long spectra
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(bool)": "bool"}


class ExportVerificationError(RuntimeError):
    """An exported graph disagrees with PyTorch eager, or fails a structural check."""


def _chunked(fn: Callable[..., np.ndarray], *arrays: np.ndarray) -> np.ndarray:
    n = arrays[0].shape[0]
    return np.concatenate([fn(*(a[i : i + _CHUNK] for a in arrays)) for i in range(0, n, _CHUNK)])


def _compare(got: np.ndarray, ref: np.ndarray, *, cosine: bool) -> dict[str, float]:
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    out = {"max_abs": float(np.max(diff)) if diff.size else 0.0}
    if cosine:
        g, r = got.astype(np.float64), ref.astype(np.float64)
        cos = np.sum(g * r, axis=1) / (np.linalg.norm(g, axis=1) * np.linalg.norm(r, axis=1))
        out["min_cosine"] = float(np.min(cos))
    else:
        out["max_rel"] = out["max_abs"] / max(float(np.max(np.abs(ref))), 1e-12)
    return out


def _guarded(role: str, run: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """``run`` with any runtime failure turned into an ExportVerificationError naming ``role``."""

    def guarded(*arrays: np.ndarray) -> np.ndarray:
        try:
            return run(*arrays)
        except Exception as exc:  # ONNX Runtime / TorchScript raise their own error types
            raise ExportVerificationError(
                f"{role} graph failed on a batch of {arrays[0].shape[0]}: {exc}"
            ) from exc

    return guarded


def _check_session_io(session: Any, role: str, expected: dict, failures: list[str]) -> None:
    for kind, nodes in (("inputs", session.get_inputs()), ("outputs", session.get_outputs())):
        specs = expected[role][kind]
        got = [(n.name, _ORT_DTYPES.get(n.type, n.type), list(n.shape)) for n in nodes]
        want = [(s.name, s.dtype, list(s.shape)) for s in specs]
        ok = (
            len(got) == len(want)
            and all(
                g[0] == w[0]
                and g[1] == w[1]
                and len(g[2]) == len(w[2])
                and not isinstance(g[2][0], int)  # the batch axis must stay symbolic
                and g[2][1:] == w[2][1:]
                for g, w in zip(got, want, strict=True)
            )
        )
        if not ok:
            failures.append(f"{role} {kind}: graph has {got}, manifest expects {want}")


@torch.no_grad()
def verify_exported(model: Any, folder: Path, spectra: np.ndarray) -> dict[str, Any]:
    """Verify the graphs in ``folder`` against ``model`` (eval mode) on ``spectra``.

    Args:
        model: the eager :class:`~wavemae.models.WaveMAE` that was exported.
        folder: staging folder holding the files named in :data:`wavemae.artifact.FILE_NAMES`.
        spectra: ``(N, seq_len)`` float32 model-input spectra.

    Returns:
        The numbers, JSON-ready, for the manifest's ``verification`` section.

    Raises:
        ExportVerificationError: listing every failed check with its numbers.
    """
    import onnx

    folder = Path(folder)
    x = np.ascontiguousarray(spectra, dtype=np.float32)
    n, seq_len = x.shape
    expected = tensor_specs_for(seq_len, model.latent_dim)
    failures: list[str] = []

    for role in ("encoder", "encoder_masked", "decoder"):
        try:
            onnx.checker.check_model(str(folder / FILE_NAMES[role]), full_check=True)
        except Exception as exc:  # onnx raises several checker/inference error types
            failures.append(f"onnx.checker failed for {FILE_NAMES[role]}: {exc}")
    if failures:
        raise ExportVerificationError("; ".join(failures))

    # Eager references; model.encode takes the packing path the masked graph must match.
    gen = torch.Generator().manual_seed(0)
    visible = model.make_visible(n, generator=gen).numpy()  # (N, L) bool, True = visible
    all_visible = np.ones_like(visible)

    def eager_encode(xb: np.ndarray, vb: np.ndarray) -> np.ndarray:
        return model.encode(torch.from_numpy(xb), torch.from_numpy(vb)).numpy()

    def eager_decode(zb: np.ndarray) -> np.ndarray:
        return model.decoder(torch.from_numpy(zb)).numpy()

    z_ref = _chunked(eager_encode, x, all_visible)
    z_masked_ref = _chunked(eager_encode, x, visible)
    recon_ref = _chunked(eager_decode, z_ref)

    roles = ("encoder", "encoder_masked", "decoder")
    sessions = {r: ort_session(folder / FILE_NAMES[r]) for r in roles}
    for role, session in sessions.items():
        _check_session_io(session, role, expected, failures)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripts = {
            r: torch.jit.load(str(folder / FILE_NAMES[r]))
            for r in ("encoder_torchscript", "decoder_torchscript")
        }

    runners: dict[str, Callable[..., np.ndarray]] = {
        "encoder": lambda xb: sessions["encoder"].run(None, {SPECTRA: xb})[0],
        "encoder_masked": lambda xb, vb: sessions["encoder_masked"].run(
            None, {SPECTRA: xb, VISIBLE: vb}
        )[0],
        "decoder": lambda zb: sessions["decoder"].run(None, {"embedding": zb})[0],
        "encoder_torchscript": lambda xb: scripts["encoder_torchscript"](
            torch.from_numpy(xb)
        ).numpy(),
        "decoder_torchscript": lambda zb: scripts["decoder_torchscript"](
            torch.from_numpy(zb)
        ).numpy(),
    }
    runners = {role: _guarded(role, run) for role, run in runners.items()}
    cases: dict[str, tuple[tuple[np.ndarray, ...], np.ndarray, bool]] = {
        "encoder": ((x,), z_ref, True),
        "encoder_torchscript": ((x,), z_ref, True),
        "encoder_masked": ((x, visible), z_masked_ref, True),
        "decoder": ((z_ref,), recon_ref, False),
        "decoder_torchscript": ((z_ref,), recon_ref, False),
    }
    report: dict[str, Any] = {
        "n_spectra": n,
        "onnx_checker": "passed",
        "tolerances": {"embedding_max_abs": EMBEDDING_ATOL, "embedding_min_cosine": MIN_COSINE},
    }
    for role, (inputs, ref, is_embedding) in cases.items():
        numbers = _compare(_chunked(runners[role], *inputs), ref, cosine=is_embedding)
        # Batch sizes: the same rows run alone, 7 at a time and 64 at a time.
        worst = 0.0
        for b in BATCH_SIZES:
            m = min(b, n)
            got = runners[role](*(a[:m] for a in inputs))
            if got.shape != ref[:m].shape:
                failures.append(f"{role} at batch {b}: shape {got.shape}, want {ref[:m].shape}")
                continue
            worst = max(worst, float(np.max(np.abs(got - ref[:m]))))
        numbers["batch_sizes_max_abs"] = worst
        report[role] = numbers
        limit = (
            EMBEDDING_ATOL
            if is_embedding
            else EMBEDDING_ATOL * max(1.0, float(np.max(np.abs(ref))))
        )
        if numbers["max_abs"] > limit or worst > limit:
            failures.append(
                f"{role}: max abs diff {numbers['max_abs']:.3g} (batch sizes "
                f"{BATCH_SIZES}: {worst:.3g}) exceeds {limit:.3g}"
            )
        if is_embedding and numbers["min_cosine"] < MIN_COSINE:
            failures.append(f"{role}: min cosine {numbers['min_cosine']:.7f} < {MIN_COSINE}")

    # Hidden positions must not matter: large noise there, and NaN in some rows (dead bands).
    rng = np.random.default_rng(0)
    perturbed = x.copy()
    noise = rng.normal(0.0, 10.0 * (float(np.std(x)) + 1.0), size=x.shape).astype(np.float32)
    perturbed[~visible] = noise[~visible]
    nan_rows = np.arange(n) % 2 == 0
    perturbed[nan_rows[:, None] & ~visible] = np.nan
    z_perturbed = _chunked(runners["encoder_masked"], perturbed, visible)
    moved = (
        float(np.max(np.abs(z_perturbed - z_masked_ref)))
        if np.all(np.isfinite(z_perturbed))
        else float("inf")
    )
    report["encoder_masked"]["hidden_perturbation_max_abs"] = moved
    if moved > EMBEDDING_ATOL:
        failures.append(
            f"encoder_masked: noise/NaN at hidden positions moved embeddings by "
            f"{moved:.3g} (> {EMBEDDING_ATOL})"
        )
    # All visible through the masked graph is the plain encoder.
    z_all_masked = _chunked(runners["encoder_masked"], x, all_visible)
    same = float(np.max(np.abs(z_all_masked - z_ref)))
    report["encoder_masked"]["all_visible_vs_encoder_max_abs"] = same
    if same > EMBEDDING_ATOL:
        failures.append(f"encoder_masked with all visible differs from encoder by {same:.3g}")
    report["batch_sizes"] = list(BATCH_SIZES)
    report["masked_fraction"] = float(1.0 - visible.mean())
    if failures:
        raise ExportVerificationError("export verification failed: " + "; ".join(failures))
    return report
