import json, sys, time
from wavemae.evaluation import corpus_defaults, load_sets, model_from_checkpoint, run_suite, write_suite
t = time.time()
ckpt = sys.argv[1]; out = sys.argv[2]
model = model_from_checkpoint(ckpt)
known = corpus_defaults("tablet")
sets = load_sets(model.grid, corpus="tablet", path=None, holdout="test", split_column=None,
                 group=known["group"], seed=0,
                 relative=model.axis == "relative")
report = run_suite(model, sets["reference"], sets["validation"], sets["evaluation"], seed=0, sections=("qc",))
write_suite(report, out, f"QC section of {ckpt}")
print(open(out + "/eval.md").read()); print(json.dumps(report["qc"]["validation_mean_auroc"], indent=1)); print("s", time.time() - t)
