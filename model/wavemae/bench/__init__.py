"""``wavemae bench``: measure the encoder in process, the service over HTTP, and a baseline.

Modes (see :mod:`wavemae.bench.modes`):

- ``engine``: in-process encoder throughput of every available backend by batch size, as a
  fraction of this machine's measured matrix-multiply throughput, with retrieval parity of
  lower precisions (:mod:`wavemae.bench.engine`).
- ``serve``: an async HTTP load generator against the service (:mod:`wavemae.bench.loadgen`),
  next to the in-process engine measured in the same run.
- ``baseline``: the same load against a hand-written FastAPI + PyTorch eager server
  (:mod:`wavemae.bench.baseline_app`), started by the bench.

Nothing here imports torch at module level; the torch backends are skipped without it.
"""
