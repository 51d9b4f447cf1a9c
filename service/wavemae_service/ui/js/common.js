// What the views share: the model summary, the last query, messages, and the entry dialog.

import { api } from "./api.js";
import { spectrumPlot } from "./plot.js";

export const state = {
  model: null, // GET /model, once
  lastQuery: null, // {id, embedding, bestMatchId} of the last query, shown on the map
};

/** GET /model, cached for the page's life. */
export async function getModel() {
  if (!state.model) state.model = await api("/model");
  return state.model;
}

/** The model's wavelength grid (from its manifest). */
export async function modelGrid() {
  const model = await getModel();
  return model.manifest.wavelengths;
}

/** A short message at the top of the page; errors stay until closed. */
export function toast(message, kind = "info") {
  const box = document.getElementById("messages");
  const item = document.createElement("div");
  item.className = `message ${kind}`;
  item.setAttribute("role", kind === "error" ? "alert" : "status");
  item.textContent = message;
  const close = document.createElement("button");
  close.textContent = "×";
  close.title = "Dismiss";
  close.addEventListener("click", () => item.remove());
  item.appendChild(close);
  box.appendChild(item);
  if (kind !== "error") setTimeout(() => item.remove(), 4000);
}

/** Element helper: h("td", {className: "x"}, "text", child...). */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function fmt(value, digits = 4) {
  return typeof value === "number" ? value.toPrecision(digits) : String(value);
}

export function fmtTime(seconds) {
  return new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19);
}

/** A metadata object as "key=value, ..." (short). */
export function fmtMetadata(metadata) {
  return Object.entries(metadata || {})
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`)
    .join(", ");
}

/** Open the entry dialog: the stored spectrum as sent, its metadata and provenance. */
export async function showEntry(id) {
  const dialog = document.getElementById("entry-dialog");
  const [entry, model] = await Promise.all([
    api(`/library/${encodeURIComponent(id)}`),
    getModel(),
  ]);
  dialog.querySelector(".entry-id").textContent = entry.id;
  const table = dialog.querySelector(".entry-meta");
  table.replaceChildren(
    ...Object.entries(entry.metadata).map(([k, v]) =>
      h("tr", {}, h("th", {}, k), h("td", {}, typeof v === "object" ? JSON.stringify(v) : v)),
    ),
    h("tr", {}, h("th", {}, "model version"), h("td", {}, entry.model_version)),
    h("tr", {}, h("th", {}, "added"), h("td", {}, fmtTime(entry.created_at))),
    h("tr", {}, h("th", {}, "points"), h("td", {}, entry.spectrum.length)),
  );
  if (!dialog.open) dialog.showModal();
  const x = entry.wavelengths || model.manifest.wavelengths;
  spectrumPlot(
    dialog.querySelector(".entry-plot"),
    [{ label: entry.id, x, y: entry.spectrum, color: "#4e79a7" }],
    [],
    { xLabel: `wavelength (${model.wavelength_unit})`, height: 260 },
  );
}
