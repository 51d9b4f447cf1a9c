// Query view: a spectrum from a file or pasted numbers -> its reconstruction (hidden bands
// shaded), its QC score, and its nearest library entries overlaid on a shared axis.

import { ApiError, api } from "./api.js";
import { fmt, fmtMetadata, getModel, h, showEntry, state, toast } from "./common.js";
import { interpolate, parseSpectra, readSpectraFile } from "./parse.js";
import { PALETTE, spectrumPlot } from "./plot.js";

const HIDDEN_BAND = "rgba(242, 142, 43, 0.18)";
const OUTSIDE_MODEL = "rgba(120, 120, 120, 0.14)";

let parsed = null; // {wavelengths, spectra, unit?} of the loaded file or pasted text

const $ = (id) => document.getElementById(id);

/** "1400-1450, 1900-1950" -> [[1400, 1450], [1900, 1950]]; throws naming the bad part. */
export function parseBands(text) {
  return text
    .split(/[,;]/)
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const m = part.match(/^(-?[\d.]+(?:e-?\d+)?)\s*(?:-|–|to|\.\.)\s*(-?[\d.]+(?:e-?\d+)?)$/i);
      if (!m) throw new Error(`hidden band "${part}" is not "low-high"`);
      const lo = Number(m[1]);
      const hi = Number(m[2]);
      return [Math.min(lo, hi), Math.max(lo, hi)];
    });
}

/** QC figures of one answer of POST /reconstruct: today the RMSE; a threshold and warnings
 * when the service sends them (`qc` per spectrum, or `warnings` per spectrum). */
function qcFrom(answer, index) {
  const qc = (answer.qc && answer.qc[index]) || {};
  return {
    score: qc.score ?? answer.rmse[index],
    threshold: qc.threshold ?? answer.threshold ?? null,
    warnings: qc.warnings ?? (answer.warnings && answer.warnings[index]) ?? [],
  };
}

function showQc(qc) {
  const flagged = qc.threshold !== null && qc.score > qc.threshold;
  const parts = [
    h("span", { className: `qc-score ${flagged ? "bad" : ""}` }, `QC score (RMSE) ${fmt(qc.score)}`),
    qc.threshold !== null ? h("span", {}, ` · threshold ${fmt(qc.threshold)}`) : null,
    qc.threshold === null ? h("span", { className: "muted" }, " · no threshold from this server") : null,
    ...qc.warnings.map((w) => h("div", { className: "warning" }, `⚠ ${w}`)),
  ];
  $("qc").replaceChildren(...parts.filter(Boolean));
}

/** Hit quality index: squared Pearson correlation of the stored spectrum (interpolated onto
 * the query's grid) with the query, over their overlap; also the match rescaled to the query's
 * mean and spread there, for the overlay. */
function compare(qx, qy, mx, my) {
  const pairs = [];
  for (let i = 0; i < qx.length; i++) {
    const m = interpolate(mx, my, qx[i]);
    if (m !== null) pairs.push([qy[i], m, i]);
  }
  if (pairs.length < 3) return { hqi: null, overlay: qx.map(() => null) };
  const mean = (k) => pairs.reduce((s, p) => s + p[k], 0) / pairs.length;
  const [aq, am] = [mean(0), mean(1)];
  let sqm = 0;
  let sqq = 0;
  let smm = 0;
  for (const [q, m] of pairs) {
    sqm += (q - aq) * (m - am);
    sqq += (q - aq) ** 2;
    smm += (m - am) ** 2;
  }
  const hqi = sqq && smm ? (sqm * sqm) / (sqq * smm) : null;
  const scale = smm ? Math.sqrt(sqq / smm) : 1;
  const overlay = qx.map(() => null);
  for (const [, m, i] of pairs) overlay[i] = aq + (m - am) * scale;
  return { hqi, overlay };
}

async function matchesFor(values, axis, k) {
  try {
    const answer = await api("/similar", { method: "POST", body: { spectra: [values], ...axis, k } });
    return { hits: answer.results[0], error: null };
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    return { hits: [], error: error.message };
  }
}

/** The query's embedding, to place it on the map; null when the service cannot embed it. */
async function embeddingFor(values, axis) {
  try {
    const answer = await api("/embed", { method: "POST", body: { spectra: [values], ...axis } });
    return answer.embeddings[0];
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    return null;
  }
}

async function analyse() {
  if (!parsed) return toast("Load a file or paste numbers first", "error");
  const spectrum = parsed.spectra[Number($("query-row").value) || 0];
  const model = await getModel();
  const x = parsed.wavelengths || model.manifest.wavelengths;
  if (x.length !== spectrum.values.length) {
    return toast(
      `${spectrum.values.length} values without wavelengths: the model's grid has ${model.seq_len}`,
      "error",
    );
  }
  let bands;
  try {
    bands = parseBands($("query-hide").value);
  } catch (error) {
    return toast(error.message, "error");
  }
  // A file's axis comes from POST /parse already in the model's unit: saying so keeps the
  // service from guessing another unit for an axis outside the model's range.
  const axis = { wavelengths: parsed.wavelengths, unit: parsed.unit };
  const k = Number($("query-k").value) || 5;
  $("query-status").textContent = "working…";
  const started = performance.now();
  try {
    const [recon, similar, embedding] = await Promise.all([
      api("/reconstruct", {
        method: "POST",
        body: { spectra: [spectrum.values], ...axis, missing: [bands] },
      }),
      matchesFor(spectrum.values, axis, k),
      embeddingFor(spectrum.values, axis),
    ]);
    state.lastQuery = { id: spectrum.id, embedding, bestMatchId: null };
    const reconstruction = recon.reconstructions[0];
    showQc(qcFrom(recon, 0));
    drawReconstruction(x, spectrum, reconstruction, bands, model);
    await showMatches(x, spectrum, similar, model);
    $("query-status").textContent = `${recon.model} · ${Math.round(performance.now() - started)} ms`;
  } catch (error) {
    $("query-status").textContent = "";
    for (const id of ["qc", "query-plot", "match-plot", "matches"]) $(id).replaceChildren();
    toast(error.message, "error");
  }
}

function drawReconstruction(x, spectrum, reconstruction, bands, model) {
  const shaded = bands.map(([from, to]) => ({ from, to, color: HIDDEN_BAND }));
  // Where the caller's grid lies outside the model's range, the service answers null.
  const [lo, hi] = model.wavelength_range;
  const xmin = Math.min(x[0], x[x.length - 1]);
  const xmax = Math.max(x[0], x[x.length - 1]);
  if (xmin < lo) shaded.push({ from: xmin, to: lo, color: OUTSIDE_MODEL });
  if (xmax > hi) shaded.push({ from: hi, to: xmax, color: OUTSIDE_MODEL });
  spectrumPlot(
    $("query-plot"),
    [
      { label: `measured: ${spectrum.id}`, x, y: spectrum.values, color: "#222", width: 1.5 },
      { label: "reconstruction", x, y: reconstruction, color: "#e15759", width: 1.5, dash: [6, 3] },
    ],
    shaded,
    { xLabel: `wavelength (${model.wavelength_unit})`, yLabel: "value" },
  );
  $("query-legend").hidden = shaded.length === 0;
}

async function showMatches(x, spectrum, similar, model) {
  const list = $("matches");
  if (similar.error) {
    list.replaceChildren(h("p", { className: "muted" }, `No matches: ${similar.error}`));
    $("match-plot").replaceChildren();
    return;
  }
  if (similar.hits.length === 0) {
    list.replaceChildren(h("p", { className: "muted" }, "The library is empty: add entries in the Library view."));
    $("match-plot").replaceChildren();
    return;
  }
  state.lastQuery = { ...state.lastQuery, bestMatchId: similar.hits[0].id };
  const entries = await Promise.all(
    similar.hits.map((hit) => api(`/library/${encodeURIComponent(hit.id)}`)),
  );
  const lines = [{ label: `query: ${spectrum.id}`, x, y: spectrum.values, color: "#222", width: 2 }];
  const rows = similar.hits.map((hit, i) => {
    const entry = entries[i];
    const mx = entry.wavelengths || model.manifest.wavelengths;
    const { hqi, overlay } = compare(x, spectrum.values, mx, entry.spectrum);
    const color = PALETTE[i % PALETTE.length];
    lines.push({ label: `#${i + 1} ${hit.id}`, x, y: overlay, color, width: 1.2 });
    const row = h(
      "tr",
      { className: "clickable", title: "Open the stored spectrum" },
      h("td", {}, h("span", { className: "swatch", style: `background:${color}` }), `${i + 1}`),
      h("td", {}, hit.id),
      h("td", { className: "num" }, fmt(hit.score, 4)),
      h("td", { className: "num" }, hqi === null ? "—" : hqi.toFixed(3)),
      h("td", { className: "meta" }, fmtMetadata(hit.metadata)),
    );
    row.addEventListener("click", () => showEntry(hit.id).catch((e) => toast(e.message, "error")));
    return row;
  });
  list.replaceChildren(
    h(
      "table",
      { className: "table" },
      h("thead", {}, h("tr", {}, ...["#", "id", "embedding cosine", "HQI (r²)", "metadata"].map((t) => h("th", {}, t)))),
      h("tbody", {}, ...rows),
    ),
  );
  spectrumPlot($("match-plot"), lines, [], {
    xLabel: `wavelength (${model.wavelength_unit})`,
    yLabel: "value (matches rescaled to the query)",
  });
}

const FORMAT_NAMES = {
  csv: "CSV",
  jcamp: "JCAMP-DX",
  spc: "SPC",
  opus: "OPUS",
  spa: "OMNIC SPA",
  npy: ".npy on the model's grid",
  npz: ".npz",
  innospectra: "InnoSpectra CSV",
};

/** The spectra of a file (read by the service) labelled for the plots: the file's name, and
 * the spectrum's id in it when it has one. */
async function fromFile(file) {
  const read = await readSpectraFile(file);
  const many = read.spectra.length > 1;
  const label = (s, i) => {
    if (s.id !== null) return `${file.name} · ${s.id}`;
    return many ? `${file.name} #${i + 1}` : file.name;
  };
  return { ...read, spectra: read.spectra.map((s, i) => ({ ...s, id: label(s, i) })) };
}

/** Where the spectra came from, for the line under the drop zone. */
function describe(name, loaded) {
  const count = loaded.spectra.length;
  const parts = [`${name}: ${count} ${count === 1 ? "spectrum" : "spectra"}, ${loaded.spectra[0].values.length} points`];
  if (loaded.format) parts.push(FORMAT_NAMES[loaded.format] || loaded.format);
  if (loaded.fileUnit && loaded.fileUnit !== loaded.unit) {
    parts.push(`axis converted from ${loaded.fileUnit} to ${loaded.unit}`);
  }
  return parts.join(" · ") + (loaded.wavelengths ? "" : " (model grid)");
}

/** Load spectra (``read`` resolves to them) and analyse the first. */
async function load(read, name) {
  try {
    parsed = await read();
  } catch (error) {
    parsed = null;
    toast(`${name}: ${error.message}`, "error");
    return;
  }
  const select = $("query-row");
  select.replaceChildren(...parsed.spectra.map((s, i) => h("option", { value: i }, s.id)));
  select.hidden = parsed.spectra.length < 2;
  $("query-loaded").textContent = describe(name, parsed);
  await analyse();
}

const loadFile = (file) => load(() => fromFile(file), file.name);

export function initQuery() {
  const drop = $("query-drop");
  const file = $("query-file");
  file.addEventListener("change", async () => {
    if (file.files[0]) await loadFile(file.files[0]);
  });
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const f = e.dataTransfer.files[0];
    if (f) await loadFile(f);
  });
  $("query-paste-go").addEventListener("click", () =>
    load(async () => parseSpectra($("query-paste").value, "pasted"), "pasted"),
  );
  $("query-run").addEventListener("click", analyse);
  $("query-row").addEventListener("change", analyse);
}
