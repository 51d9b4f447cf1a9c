"""WaveMAE: a masked autoencoder for one-dimensional spectra.

Importing this package never imports torch: the service uses the numpy-only parts
(:mod:`wavemae.artifact`, :mod:`wavemae.preprocessing`) and its image has no torch.
The torch parts live in :mod:`wavemae.models`, :mod:`wavemae.train` and :mod:`wavemae.export`.
"""

__version__ = "0.1.0"
