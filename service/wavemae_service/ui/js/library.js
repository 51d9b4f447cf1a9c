// Library view: a paged, filterable table of the reference entries; add from files (any format
// the service reads, through POST /parse) and delete (both need an admin key: the service's 403
// message is shown to a read key).

import { api } from "./api.js";
import { fmtMetadata, fmtTime, h, showEntry, toast } from "./common.js";
import { readSpectraFile } from "./parse.js";

const PAGE = 25;
let offset = 0;

const $ = (id) => document.getElementById(id);

/** The filter box as a metadata filter: JSON, or "key=value, key=value" (numbers parsed). */
export function parseFilter(text) {
  const t = text.trim();
  if (!t) return null;
  if (t.startsWith("{")) return JSON.parse(t);
  const filter = {};
  for (const part of t.split(",")) {
    const [key, ...rest] = part.split("=");
    if (!key.trim() || rest.length === 0) throw new Error(`filter "${part.trim()}" is not key=value`);
    const value = rest.join("=").trim();
    filter[key.trim()] = value !== "" && Number.isFinite(Number(value)) ? Number(value) : value;
  }
  return filter;
}

/** Ask "are you sure?" in the page's confirmation dialog; resolves true or false. */
function confirmDialog(text) {
  const dialog = $("confirm-dialog");
  dialog.querySelector(".text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

async function remove(id) {
  if (!(await confirmDialog(`Delete library entry "${id}"? This cannot be undone.`))) return;
  try {
    await api(`/library/${encodeURIComponent(id)}`, { method: "DELETE" });
    toast(`Deleted ${id}`);
    await refresh();
  } catch (error) {
    toast(`Delete failed (${error.status}): ${error.message}`, "error");
  }
}

function row(entry) {
  const open = h("a", { href: "#", textContent: entry.id });
  open.addEventListener("click", (e) => {
    e.preventDefault();
    showEntry(entry.id).catch((err) => toast(err.message, "error"));
  });
  const del = h("button", { className: "danger small", textContent: "Delete" });
  del.dataset.id = entry.id;
  del.addEventListener("click", () => remove(entry.id));
  return h(
    "tr",
    {},
    h("td", {}, open),
    h("td", { className: "meta" }, fmtMetadata(entry.metadata)),
    h("td", {}, fmtTime(entry.created_at)),
    h("td", {}, entry.model_version),
    h("td", {}, del),
  );
}

export async function refresh() {
  let filter;
  try {
    filter = parseFilter($("library-filter").value);
  } catch (error) {
    return toast(`Filter: ${error.message}`, "error");
  }
  const params = new URLSearchParams({ offset, limit: PAGE });
  if (filter) params.set("filter", JSON.stringify(filter));
  try {
    const page = await api(`/library?${params}`);
    $("library-rows").replaceChildren(...page.entries.map(row));
    const last = Math.min(offset + page.entries.length, page.count);
    $("library-count").textContent = page.count
      ? `${offset + 1}–${last} of ${page.count} entries · embedded with ${page.model_version}`
      : "No entries" + (filter ? " match the filter" : " yet");
    $("library-prev").disabled = offset === 0;
    $("library-next").disabled = last >= page.count;
  } catch (error) {
    $("library-count").textContent = `Library unavailable: ${error.message}`;
    $("library-rows").replaceChildren();
  }
}

async function addFromFile(file) {
  let parsed;
  try {
    parsed = await readSpectraFile(file);
  } catch (error) {
    return toast(`${file.name}: ${error.message}`, "error");
  }
  const stem = file.name.replace(/\.[^.]*$/, "");
  const entries = parsed.spectra.map((s, i) => ({
    id: s.id ?? (parsed.spectra.length > 1 ? `${stem}-${i + 1}` : stem),
    spectrum: s.values,
    wavelengths: parsed.wavelengths,
    metadata: { ...s.metadata, source_file: file.name },
  }));
  try {
    const answer = await api("/library", { method: "POST", body: { entries } });
    toast(`Added ${answer.ids.length} entries from ${file.name}`);
    await refresh();
  } catch (error) {
    toast(`Adding ${file.name} failed (${error.status}): ${error.message}`, "error");
  }
}

export function initLibrary() {
  $("library-filter-go").addEventListener("click", () => {
    offset = 0;
    refresh();
  });
  $("library-filter").addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      offset = 0;
      refresh();
    }
  });
  $("library-prev").addEventListener("click", () => {
    offset = Math.max(0, offset - PAGE);
    refresh();
  });
  $("library-next").addEventListener("click", () => {
    offset += PAGE;
    refresh();
  });
  const file = $("library-file");
  file.addEventListener("change", async () => {
    for (const f of file.files) await addFromFile(f);
    file.value = "";
  });
}
