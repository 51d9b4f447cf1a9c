"""The evaluation suite (``wavemae evaluate --report DIR``): WaveMAE next to classical
chemometrics on the same held-out spectra. See :mod:`wavemae.evaluation.suite`."""

from wavemae.evaluation.loader import corpus_defaults, load_sets, model_from_checkpoint
from wavemae.evaluation.report import format_suite, write_suite
from wavemae.evaluation.suite import EvalModel, run_suite

__all__ = [
    "EvalModel",
    "corpus_defaults",
    "format_suite",
    "load_sets",
    "model_from_checkpoint",
    "run_suite",
    "write_suite",
]
