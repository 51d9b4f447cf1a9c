// Spectra for the dashboard:
//  - files, in every format the service accepts (CSV, JCAMP-DX, SPC, OPUS, SPA, .npy/.npz), are
//    read by the service itself (POST /parse), so the page shows exactly what /embed and
//    /reconstruct read from them, with the file's ids, metadata and unit;
//  - pasted text is parsed here: wide CSV (header row = optional id/metadata columns, then one
//    numeric wavelength per column; one spectrum per following row), two columns (wavelength,
//    value), or plain numbers (one spectrum on the model's grid, seq_len values). Separators:
//    comma, semicolon, tab or spaces. Lines starting with '#' are comments.

import { api } from "./api.js";

/**
 * A spectra file read by the service (POST /parse). A .npy is sent as application/x-npy (values
 * on the model's grid); anything else raw with its name, the format detected from content and
 * name.
 * @param {File} file
 * @returns {Promise<{wavelengths: number[], spectra: {id: string|null, values: number[],
 *   metadata: object}[], format: string, unit: string, fileUnit: string|null}>}
 *   wavelengths in the model's unit (converted from the file's).
 * @throws ApiError with the service's message (naming the file and the problem)
 */
export async function readSpectraFile(file) {
  const npy = /\.npy$/i.test(file.name);
  const answer = await api(npy ? "/parse" : `/parse?filename=${encodeURIComponent(file.name)}`, {
    method: "POST",
    body: file,
    headers: { "Content-Type": npy ? "application/x-npy" : "application/octet-stream" },
  });
  return {
    wavelengths: answer.wavelengths,
    spectra: answer.spectra.map((s) => ({ id: s.id, values: s.values, metadata: s.metadata })),
    format: answer.format,
    unit: answer.unit,
    fileUnit: answer.file_unit,
  };
}

/** A number from a cell, or null. */
function toNumber(cell) {
  const text = cell.trim();
  if (text === "") return null;
  const value = Number(text);
  return Number.isFinite(value) ? value : null;
}

function splitter(line) {
  const counts = [",", ";", "\t"].map((d) => [d, line.split(d).length - 1]);
  counts.sort((a, b) => b[1] - a[1]);
  if (counts[0][1] > 0) {
    const d = counts[0][0];
    return (l) => l.split(d);
  }
  return (l) => l.trim().split(/\s+/);
}

function cleanLines(text) {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}

/** Unquote a CSV cell ("a" -> a). */
function unquote(cell) {
  const t = cell.trim();
  return t.length >= 2 && t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1) : t;
}

function parseWide(rows, name) {
  const header = rows[0].map(unquote);
  let nMeta = 0;
  while (nMeta < header.length && toNumber(header[nMeta]) === null) nMeta++;
  const wavelengths = header.slice(nMeta).map(toNumber);
  const bad = wavelengths.findIndex((w) => w === null);
  if (bad >= 0) {
    throw new Error(`header column ${nMeta + bad + 1} (${header[nMeta + bad]}) is not a number`);
  }
  const idColumn = header.slice(0, nMeta).findIndex((h) => h.toLowerCase() === "id");
  const spectra = rows.slice(1).map((row, r) => {
    if (row.length !== header.length) {
      throw new Error(`row ${r + 2} has ${row.length} cells; the header has ${header.length}`);
    }
    const values = row.slice(nMeta).map(toNumber);
    const hole = values.findIndex((v) => v === null);
    if (hole >= 0) throw new Error(`row ${r + 2}, column ${nMeta + hole + 1}: not a number`);
    const metadata = {};
    header.slice(0, nMeta).forEach((h, i) => {
      if (i !== idColumn) {
        const cell = unquote(row[i]);
        metadata[h] = toNumber(cell) ?? cell;
      }
    });
    const id = idColumn >= 0 ? unquote(row[idColumn]) : `${name}-${r + 1}`;
    return { id, values, metadata };
  });
  return { wavelengths, spectra };
}

/**
 * Parse spectra from text.
 * @param {string} text file content or pasted numbers
 * @param {string} name used for ids of rows without an id column
 * @returns {{wavelengths: number[]|null, spectra: {id: string, values: number[], metadata: object}[]}}
 * @throws Error naming the line or column that could not be read
 */
export function parseSpectra(text, name = "spectrum") {
  const lines = cleanLines(text);
  if (lines.length === 0) throw new Error("no numbers found");
  const split = splitter(lines[0]);
  const rows = lines.map(split);
  const numericRows = rows.map((r) => r.map(toNumber));
  const allNumeric = (r) => r.every((v) => v !== null);

  // Plain numbers: one value per line, or everything on one line.
  if (rows.length === 1 || rows.every((r) => r.length === 1)) {
    const values = numericRows.flat();
    const bad = values.findIndex((v) => v === null);
    if (bad >= 0) throw new Error(`value ${bad + 1} is not a number`);
    return { wavelengths: null, spectra: [{ id: name, values, metadata: {} }] };
  }
  // Two columns: wavelength, value (an optional non-numeric header line).
  const body = allNumeric(numericRows[0]) ? numericRows : numericRows.slice(1);
  if (rows.every((r) => r.length === 2) && body.length > 2 && body.every(allNumeric)) {
    return {
      wavelengths: body.map((r) => r[0]),
      spectra: [{ id: name, values: body.map((r) => r[1]), metadata: {} }],
    };
  }
  return parseWide(rows, name);
}

/** Linear interpolation of (xs, ys) at x (xs ascending or descending); null outside. */
export function interpolate(xs, ys, x) {
  const n = xs.length;
  const ascending = xs[n - 1] >= xs[0];
  const lo = ascending ? xs[0] : xs[n - 1];
  const hi = ascending ? xs[n - 1] : xs[0];
  if (x < lo || x > hi) return null;
  let a = 0;
  let b = n - 1;
  while (b - a > 1) {
    const m = (a + b) >> 1;
    if (xs[m] <= x === ascending) a = m;
    else b = m;
  }
  const span = xs[b] - xs[a];
  const t = span === 0 ? 0 : (x - xs[a]) / span;
  return ys[a] + t * (ys[b] - ys[a]);
}
