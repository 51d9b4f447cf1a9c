// Map view: the library's 2-D map (GET /library/map?method=umap|tsne) as a scatter plot,
// coloured by cluster or a metadata field; hover for id and metadata, click to open the entry.
// "Fit map" starts the fit (POST /library/map, admin key) and follows its job.

import { api } from "./api.js";
import { fmtMetadata, h, showEntry, state, toast } from "./common.js";
import { colorize, scatterPlot } from "./plot.js";

const $ = (id) => document.getElementById(id);
let points = null; // the parsed map of the last answer
let queryPoint = null; // {x, y} of the current query in that map, when it could be placed
let notPlaced = null; // why the current query could not be placed, when the user can fix it

/**
 * The map answer -> columns. The one place that knows the answer's shape:
 * {items: [{id, x, y, cluster, metadata}], ...}.
 */
export function parseMap(answer) {
  const all = Array.isArray(answer.items) ? answer.items : [];
  // entries added since the fit, when the fitted map is not in the server's memory: no x, y
  const items = all.filter((p) => p.x !== null && p.y !== null);
  return {
    unplaced: answer.unplaced ?? all.length - items.length,
    ids: items.map((p) => String(p.id)),
    x: items.map((p) => Number(p.x)),
    y: items.map((p) => Number(p.y)),
    cluster: items.map((p) => p.cluster ?? null),
    metadata: items.map((p) => p.metadata || {}),
    method: answer.method || null,
  };
}

function colourFields(map) {
  const keys = new Set();
  for (const m of map.metadata.slice(0, 1000)) for (const k of Object.keys(m)) keys.add(k);
  return ["cluster", ...[...keys].sort()];
}

function draw() {
  const field = $("map-colour").value || "cluster";
  const values = field === "cluster" ? points.cluster : points.metadata.map((m) => m[field] ?? null);
  const { colors, legend } = colorize(values);
  // The query itself when it could be placed; else (fallback) a ring on its best match.
  const best = !queryPoint && state.lastQuery ? points.ids.indexOf(state.lastQuery.bestMatchId) : -1;
  scatterPlot($("map-plot"), {
    x: points.x,
    y: points.y,
    colors,
    highlight: best,
    marker: queryPoint,
    label: (i) => `${points.ids[i]} · cluster ${points.cluster[i] ?? "—"}\n${fmtMetadata(points.metadata[i])}`,
    onClick: (i) => showEntry(points.ids[i]).catch((e) => toast(e.message, "error")),
  });
  const items = legend.map(([label, color]) =>
    h("span", { className: "legend-item" }, h("span", { className: "swatch", style: `background:${color}` }), `${field} ${label}`),
  );
  if (queryPoint) {
    items.push(h("span", { className: "legend-item", id: "map-query" }, `◆ current query: ${state.lastQuery.id}`));
  } else if (best >= 0) {
    items.push(h("span", { className: "legend-item" }, "◯ best match of the current query"));
  }
  if (notPlaced && state.lastQuery) items.push(h("span", { className: "legend-item muted" }, notPlaced));
  $("map-legend").replaceChildren(...items); // (replaceChildren writes a null as "null")
}

/** The current query's {x, y} in the stored map (POST /library/map/place), or null; sets
 * ``notPlaced`` when the user can do something about it. */
async function placeQuery(method) {
  notPlaced = null;
  const embedding = state.lastQuery?.embedding;
  if (!embedding) return null;
  try {
    const answer = await api("/library/map/place", { method: "POST", body: { method, embeddings: [embedding] } });
    return answer.points[0];
  } catch (error) {
    if (error.status === 409) {
      // map_not_loaded: stored, but its fitted transform is not in this server's memory
      notPlaced =
        "The query cannot be placed on this map: it was fitted before the service restarted " +
        "(or by another replica). Fit the map again to place queries on it.";
    }
    return null; // the ring on the best match instead
  }
}

/** What to say when GET /library/map fails. */
function mapError(error, method) {
  const name = method === "tsne" ? "t-SNE" : "UMAP";
  if (error.status === 404) {
    return (
      `No ${name} map of the library has been fitted for this model yet. ` +
      `Press "Fit map" (needs an admin key), or POST /library/map {"method": "${method}"}.`
    );
  }
  if (error.status === 405) return "This server has no library map (no GET /library/map).";
  return `The map could not be loaded: ${error.message}`;
}

export async function refreshMap() {
  const method = $("map-method").value;
  $("map-status").textContent = "loading…";
  let answer;
  try {
    answer = await api(`/library/map?method=${encodeURIComponent(method)}`);
  } catch (error) {
    $("map-plot").replaceChildren();
    $("map-legend").replaceChildren();
    $("map-status").textContent = mapError(error, method);
    return;
  }
  const started = performance.now();
  points = parseMap(answer);
  if (points.ids.length === 0) {
    $("map-plot").replaceChildren();
    $("map-status").textContent = "The library is empty: nothing to map.";
    return;
  }
  queryPoint = await placeQuery(method);
  const select = $("map-colour");
  const current = select.value;
  select.replaceChildren(...colourFields(points).map((f) => h("option", { value: f }, f)));
  if ([...select.options].some((o) => o.value === current)) select.value = current;
  draw();
  await new Promise((resolve) => setTimeout(resolve, 0)); // uPlot draws in a microtask
  const ms = Math.round(performance.now() - started);
  const unplaced = points.unplaced
    ? ` · ${points.unplaced} entries added since the fit are not shown: fit the map again`
    : "";
  $("map-status").textContent = `${points.ids.length} entries · ${points.method || method} · drawn in ${ms} ms · drag to zoom, double-click to reset${unplaced}`;
}

/** POST /library/map (admin) and follow the job until it is done, then show the new map. */
async function fitMap() {
  const method = $("map-method").value;
  const button = $("map-fit");
  button.disabled = true;
  try {
    let job = await api("/library/map", { method: "POST", body: { method } });
    while (job.state !== "done") {
      if (job.state === "failed") throw new Error(job.error || "the map job failed");
      $("map-status").textContent = `fitting the map: ${job.stage || job.state} ${Math.round(100 * (job.progress || 0))}%`;
      await new Promise((resolve) => setTimeout(resolve, 500));
      job = await api(job.status_url || `/library/jobs/${encodeURIComponent(job.id)}`);
    }
    await refreshMap();
  } catch (error) {
    const status = error.status ? ` (${error.status})` : "";
    $("map-status").textContent = "";
    toast(`Fitting the map failed${status}: ${error.message}`, "error");
  } finally {
    button.disabled = false;
  }
}

export function initMap() {
  $("map-method").addEventListener("change", refreshMap);
  $("map-colour").addEventListener("change", () => points && draw());
  $("map-fit").addEventListener("click", fitMap);
}
