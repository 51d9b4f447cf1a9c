// Model view: the model card (GET /model: manifest and training record) and live figures parsed
// from the service's Prometheus metrics (GET /metrics), refreshed while the view is open.

import { api } from "./api.js";
import { fmt, fmtMetadata, getModel, h } from "./common.js";

const $ = (id) => document.getElementById(id);
let timer = null;

function kvTable(rows) {
  return h(
    "table",
    { className: "kv" },
    ...rows
      .filter(([, v]) => v !== undefined && v !== null && v !== "")
      .map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, typeof v === "object" ? fmtMetadata(v) : v))),
  );
}

/** A {name: number | [number]} object as a two-column table, best (lowest) first. */
function scoreTable(title, scores) {
  const rows = Object.entries(scores)
    .map(([k, v]) => [k, Array.isArray(v) ? v[0] : v])
    .filter(([, v]) => typeof v === "number")
    .sort((a, b) => a[1] - b[1]);
  return h(
    "table",
    { className: "table compact" },
    h("thead", {}, h("tr", {}, h("th", {}, title), h("th", { className: "num" }, "value"))),
    h("tbody", {}, ...rows.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", { className: "num" }, fmt(v, 4))))),
  );
}

function card(model) {
  const m = model.manifest;
  const p = m.provenance || {};
  const pre = m.preprocessing || {};
  const metrics = p.metrics || {};
  const grid = model.wavelength_range;
  const parts = [
    h("h3", {}, `${model.name} ${model.version}`),
    kvTable([
      ["model id", model.model],
      ["created", m.created_at],
      ["grid", `${fmt(grid[0], 5)}–${fmt(grid[1], 5)} ${model.wavelength_unit}, ${model.seq_len} points`],
      ["embedding", `${model.latent_dim} dimensions (L2-normalised)`],
      ["preprocessing", `normalisation ${pre.normalization ?? "—"}, Savitzky–Golay ${pre.savgol ? JSON.stringify(pre.savgol) : "off"}, standardise ${pre.standardize ?? "—"}`],
      ["quality check", !model.qc ? null : model.qc.calibrated
        ? `${model.qc.components.join(" + ")}; "out of distribution" from percentile ${model.qc.flag_percentile}`
        : "not calibrated: no out-of-distribution warnings (rmse only)"],
      ["execution", model.engine],
      ["batching", model.batching],
      ["limits", model.limits],
      ["library", `${model.library.backend ?? "none"} (embedded with ${model.library.model_version ?? "—"})`],
    ]),
    h("h3", {}, "Training"),
    kvTable([
      ["data", p.data ? `${p.data.corpus ?? p.data.path} (${p.n_train} train / ${p.n_heldout} held out)` : null],
      ["steps", metrics.steps],
      ["train time", metrics.train_seconds ? `${fmt(metrics.train_seconds, 4)} s on ${p.device ?? "?"} (${p.machine ?? ""})` : null],
      ["command", p.command],
      ["git commit", p.git_commit],
      ["weights", p.checkpoint ? `${p.checkpoint.weights} at step ${p.checkpoint.step}` : null],
    ]),
  ];
  const evals = h("div", { className: "evals" });
  if (metrics.heldout_masked_mse) {
    evals.append(scoreTable("held-out masked MSE (lower is better)", metrics.heldout_masked_mse));
  }
  const comp = metrics.composition;
  if (comp && comp.rmse) {
    evals.append(scoreTable(`${comp.task} — RMSE`, comp.rmse));
  }
  if (evals.childElementCount) parts.push(h("h3", {}, "Held-out evaluation"), evals);
  if (m.quantization) {
    parts.push(
      h("p", { className: "muted" }, `int8 quantisation: ${m.quantization.kept ? "kept" : `not kept (${m.quantization.reason})`}`),
    );
  }
  return parts;
}

/** Prometheus text -> [{name, labels, value}]. */
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const [, k, v] of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

/** Quantile from cumulative histogram buckets [[le, count]] (upper bound of the bucket). */
function quantile(buckets, q) {
  const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
  if (!total) return null;
  const found = buckets.find(([, c]) => c >= q * total);
  return found ? found[0] : null;
}

function ms(seconds) {
  if (seconds === null || !Number.isFinite(seconds)) return seconds === Infinity ? "> 10 s" : "—";
  return seconds >= 1 ? `${fmt(seconds, 3)} s` : `${fmt(seconds * 1000, 3)} ms`;
}

function liveTable(samples) {
  const by = new Map(); // endpoint method -> {count, errors, sum, buckets}
  const key = (s) => `${s.labels.method} ${s.labels.endpoint}`;
  const get = (k) => {
    if (!by.has(k)) by.set(k, { count: 0, errors: 0, sum: 0, n: 0, buckets: [] });
    return by.get(k);
  };
  for (const s of samples) {
    if (s.name === "wavemae_requests_total") {
      const e = get(key(s));
      e.count += s.value;
      if (Number(s.labels.status) >= 400) e.errors += s.value;
    } else if (s.name === "wavemae_request_duration_seconds_bucket") {
      get(key(s)).buckets.push([s.labels.le === "+Inf" ? Infinity : Number(s.labels.le), s.value]);
    } else if (s.name === "wavemae_request_duration_seconds_sum") {
      get(key(s)).sum = s.value;
    } else if (s.name === "wavemae_request_duration_seconds_count") {
      get(key(s)).n = s.value;
    }
  }
  const rows = [...by.entries()]
    .filter(([k, e]) => e.count > 0 && !k.includes("/ui/"))
    .sort((a, b) => b[1].count - a[1].count);
  return h(
    "table",
    { className: "table compact" },
    h("thead", {}, h("tr", {}, ...["endpoint", "requests", "errors", "mean", "p50 ≤", "p95 ≤"].map((t) => h("th", {}, t)))),
    h(
      "tbody",
      {},
      ...rows.map(([k, e]) => {
        const b = e.buckets.sort((x, y) => x[0] - y[0]);
        return h(
          "tr",
          {},
          h("td", {}, k),
          h("td", { className: "num" }, e.count),
          h("td", { className: "num" }, e.errors),
          h("td", { className: "num" }, ms(e.n ? e.sum / e.n : null)),
          h("td", { className: "num" }, ms(quantile(b, 0.5))),
          h("td", { className: "num" }, ms(quantile(b, 0.95))),
        );
      }),
    ),
  );
}

function batchFigures(samples) {
  const value = (name, labels = {}) =>
    samples
      .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
      .reduce((t, s) => t + s.value, 0);
  const rows = ["embed", "reconstruct"].map((b) => {
    const n = value("wavemae_batch_size_spectra_count", { batcher: b });
    return [
      `${b} batcher`,
      n
        ? `${n} batches, mean ${fmt(value("wavemae_batch_size_spectra_sum", { batcher: b }) / n, 3)} spectra, ` +
          `mean engine time ${ms(value("wavemae_inference_seconds_sum", { batcher: b }) / n)}, ` +
          `queue ${value("wavemae_queue_spectra", { batcher: b })}, 429s ${value("wavemae_rejections_total", { batcher: b })}`
        : "no batches yet",
    ];
  });
  rows.push(["library entries", value("wavemae_library_entries")]);
  return kvTable(rows);
}

async function refreshLive() {
  try {
    const samples = parseMetrics(await api("/metrics"));
    $("model-live").replaceChildren(batchFigures(samples), liveTable(samples));
    $("model-live-time").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    $("model-live").replaceChildren(h("p", { className: "muted" }, `Metrics unavailable: ${error.message}`));
  }
}

export async function showModel() {
  $("model-card").replaceChildren(...card(await getModel()));
  await refreshLive();
  clearInterval(timer);
  timer = setInterval(() => {
    if (document.getElementById("view-model").hidden) clearInterval(timer);
    else refreshLive();
  }, 5000);
}
