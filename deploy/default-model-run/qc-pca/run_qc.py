"""The evaluation suite's QC section alone on a checkpoint (tablet, holdout test, seed 0).

python3 run_qc.py CHECKPOINT OUT_DIR  ->  OUT_DIR/eval.md, eval.json, qc.json
"""

import json
import sys
import time
from pathlib import Path

from wavemae.evaluation import (
    corpus_defaults,
    load_sets,
    model_from_checkpoint,
    run_suite,
    write_suite,
)

start = time.time()
checkpoint, out = sys.argv[1], sys.argv[2]
model = model_from_checkpoint(checkpoint)
sets = load_sets(
    model.grid,
    corpus="tablet",
    holdout="test",
    group=corpus_defaults("tablet")["group"],
    seed=0,
    relative=model.axis == "relative",
)
report = run_suite(
    model, sets["reference"], sets["validation"], sets["evaluation"], seed=0, sections=("qc",)
)
write_suite(report, out, f"QC section of {checkpoint}")
print((Path(out) / "eval.md").read_text())
print(json.dumps(report["qc"]["validation_mean_auroc"], indent=1))
print(f"{time.time() - start:.0f} s")
