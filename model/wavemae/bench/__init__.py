"""``wavemae bench``, and every measurement helper of the project in one place.

Modes:

- ``engine`` (:mod:`wavemae.bench.modes`, :mod:`wavemae.bench.engine`): in-process encoder
  throughput of every available backend by batch size, as a fraction of this machine's measured
  matrix-multiply throughput, with retrieval parity of lower precisions.
- ``serve`` (:mod:`wavemae.bench.modes`): an HTTP load generator (:mod:`wavemae.bench.wrk` or
  :mod:`wavemae.bench.loadgen`) against the service, next to the in-process engine.
- ``baseline`` (:mod:`wavemae.bench.peers`): the service side by side, in one run, with the
  obvious server (:mod:`wavemae.bench.peer_app`: a FastAPI ``def`` endpoint calling one ONNX
  Runtime session) and a FastAPI + PyTorch eager one (:mod:`wavemae.bench.baseline_app`);
  ``all`` is ``engine`` then ``baseline``.

Shared helpers: :mod:`wavemae.bench.measure` (throughput timer, neighbour agreement),
:mod:`wavemae.bench.backends` (ONNX Runtime session set-up), :mod:`wavemae.bench.spectra`
(synthetic and held-out spectra), :mod:`wavemae.bench.loadgen` (request bodies),
:mod:`wavemae.bench.servers` (the one server launcher, also used by the tests).

Nothing here imports torch at module level; the torch backends are skipped without it.
"""
