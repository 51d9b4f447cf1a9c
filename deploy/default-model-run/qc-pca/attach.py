"""Attach the validation-chosen QC calibration (``qc.json``: PCA Q + T², k = 16) to the shipped
tablet model, and check the service's ONNX QC score against the PyTorch one on the held-out
tablet test spectra (what ``wavemae evaluate ... --artifact`` does after its suite).

python3 deploy/default-model-run/qc-pca/attach.py model/wavemae/tablet_model
"""

import json
import sys
from pathlib import Path

import numpy as np

from wavemae.artifact import load_artifact
from wavemae.evaluation import corpus_defaults, load_sets, model_from_checkpoint
from wavemae.qc import ArtifactQC, QCCalibration, attach_qc

here = Path(__file__).resolve().parent
artifact_dir = Path(sys.argv[1])
calibration = QCCalibration.from_dict(json.loads((here / "qc.json").read_text()))
attach_qc(artifact_dir, calibration)

model = model_from_checkpoint(str(here.parent / "checkpoint.pt"))
sets = load_sets(
    model.grid, corpus="tablet", holdout="test", group=corpus_defaults("tablet")["group"], seed=0
)
raw = sets["evaluation"][0]
onnx = ArtifactQC(load_artifact(artifact_dir))(raw)
torch_score = calibration.score(model.preprocess(raw), model.embed, model.reconstruct)
diff = float(np.max(np.abs(onnx["score"] - torch_score["score"])))
print(f"QC calibration ({', '.join(calibration.use)}) written into {artifact_dir}/manifest.json")
print(f"{len(raw)} held-out spectra: ONNX vs PyTorch QC score max abs difference {diff:.2g}")
print(f"flagged at the {calibration.flag_percentile:g}th percentile: {int(onnx['flag'].sum())}")
if diff > 1e-3:
    raise SystemExit(f"ONNX QC scores disagree with PyTorch by {diff}")
