"""Writers for the formats that have a well-kept writer: CSV (wide and long), NumPy,
JCAMP-DX (the ``jcamp`` package), Galactic SPC (``spc-io``) and ENVI cubes (``spectral``).

Each writes what :func:`wavemae.data.read_spectra` reads back: the same values (float32),
grid and unit (SPC and ENVI store float32 axes, so their grids round-trip to float32).
Bruker OPUS and OMNIC SPA have no public writer and are read-only.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from wavemae.data.spectra import Spectra

__all__ = [
    "write_csv_long",
    "write_csv_wide",
    "write_envi",
    "write_jcamp",
    "write_npz",
    "write_spc",
]


def write_csv_wide(spectra: Spectra, path: str | Path) -> None:
    """Write ``spectra`` as a wide CSV that :func:`read_csv_wide` reads back.

    A ``# unit=`` comment line, then the header ``id, <metadata keys...>, <wavelengths...>``.
    Wavelengths and values are written with ``repr`` precision, so a round trip is exact.
    """
    keys: list[str] = []
    for entry in spectra.metadata or []:
        keys += [k for k in entry if k not in keys]
    ids = spectra.ids if spectra.ids is not None else [str(i) for i in range(len(spectra))]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        handle.write(f"# unit={spectra.unit}\n")
        writer = csv.writer(handle)
        writer.writerow(["id", *keys, *(repr(float(w)) for w in spectra.wavelengths)])
        for i, row in enumerate(spectra.values):
            entry = spectra.metadata[i] if spectra.metadata is not None else {}
            writer.writerow(
                [ids[i], *(entry.get(k, "") for k in keys), *(repr(float(v)) for v in row)]
            )


def write_npz(spectra: Spectra, path: str | Path) -> None:
    """Write ``spectra`` to an ``.npz`` archive that :func:`read_npy` reads back exactly."""
    arrays: dict[str, Any] = {
        "values": spectra.values,
        "wavelengths": spectra.wavelengths,
        "unit": np.array(spectra.unit),
    }
    if spectra.ids is not None:
        arrays["ids"] = np.array(spectra.ids, dtype=str)
    if spectra.metadata is not None:
        arrays["metadata_json"] = np.array(json.dumps(spectra.metadata))
    np.savez(path, **arrays)


def write_csv_long(spectra: Spectra, path: str | Path) -> None:
    """Write ``spectra`` as a long CSV: ``wavelength (<unit>), <id>, <id>...``, one band a row.

    Ids default to ``spectrum-<k>``; metadata is not written (the long layout has no room).
    """
    ids = spectra.ids or [f"spectrum-{k}" for k in range(len(spectra))]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"wavelength ({spectra.unit})", *ids])
        for j, axis in enumerate(spectra.wavelengths):
            writer.writerow([repr(float(axis)), *(repr(float(v)) for v in spectra.values[:, j])])


_JCAMP_XUNITS = {"nm": "NANOMETERS", "um": "MICROMETERS", "cm-1": "1/CM"}


def write_jcamp(spectra: Spectra, path: str | Path, *, index: int = 0) -> None:
    """Write spectrum ``index`` of ``spectra`` as a JCAMP-DX 5.01 file (``jcamp.writefile``).

    ``##TITLE`` is the spectrum's id; ``##YUNITS`` its metadata ``yunits`` when present.
    The package writes values with 4 decimals, so they are stored scaled by ``##YFACTOR``
    (1e-7): float32 values come back exactly.
    """
    import contextlib
    import io

    import jcamp

    title = spectra.ids[index] if spectra.ids else f"spectrum-{index}"
    meta = spectra.metadata[index] if spectra.metadata else {}
    record: dict[str, Any] = {
        "title": title,
        "data type": "INFRARED SPECTRUM" if spectra.unit == "cm-1" else "NIR SPECTRUM",
        "xunits": _JCAMP_XUNITS[spectra.unit],
        "yunits": str(meta.get("yunits", "ABSORBANCE")),
        "yfactor": 1e-7,
        "x": spectra.wavelengths.astype(np.float64),
        "y": spectra.values[index].astype(np.float64),
    }
    with contextlib.redirect_stdout(io.StringIO()):  # jcamp 1.3 prints every data point
        jcamp.writefile(str(path), record)


_SPC_XTYPES = {"nm": "XNMETR", "um": "XUMETR", "cm-1": "XWAVEN"}


def write_spc(spectra: Spectra, path: str | Path) -> None:
    """Write ``spectra`` as one multi-subfile Galactic SPC file (float32 x and y, ``spc-io``)."""
    from spc_io import SPC
    from spc_io.high_level import LogBook
    from spc_io.low_level.headers.fxytype import Fxtype, Fytype

    ids = spectra.ids or [f"spectrum-{k}" for k in range(len(spectra))]
    # spc-io reads its own files back only with a non-empty log book and without z values
    log = LogBook(text={"source": "wavemae", "ids": ";".join(ids)})
    spc = SPC(xarray=spectra.wavelengths.astype(np.float32), log_book=log)
    for row in spectra.values:
        spc.add_subfile(yarray=row.astype(np.float32))
    raw = spc.to_spc_raw()
    # SPC(xtype=...) is not carried into the header by spc-io 0.2: set it on the raw header
    raw.main_header.fxtype = Fxtype(_SPC_XTYPES[spectra.unit])
    raw.main_header.fytype = Fytype("YABSRB")
    Path(path).write_bytes(raw.to_bytes())


def write_envi(
    spectra: Spectra, path: str | Path, *, image_shape: tuple[int, int] | None = None
) -> None:
    """Write ``spectra`` as an ENVI cube ``path`` (``.hdr``) + its ``.img`` (``spectral``).

    ``image_shape`` (rows, cols) defaults to ``spectra.image_shape``, else one row.
    """
    import spectral.io.envi as envi

    rows, cols = image_shape or spectra.image_shape or (1, len(spectra))
    cube = spectra.values.reshape(rows, cols, spectra.n_bands)
    units = {"nm": "Nanometers", "um": "Micrometers", "cm-1": "Wavenumber"}[spectra.unit]
    metadata = {
        "wavelength": [repr(float(w)) for w in spectra.wavelengths],
        "wavelength units": units,
    }
    envi.save_image(str(path), cube, dtype=np.float32, metadata=metadata, force=True)
