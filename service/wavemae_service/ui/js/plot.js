// Plots on the vendored uPlot (window.uPlot): spectra on a shared wavelength axis with shaded
// bands, and a 2-D scatter (the library map) drawn in one pass per colour.

export const PALETTE = [
  "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
  "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
];
const OTHER = "#c8c8c8";

/** Make a uPlot follow its container's width. */
function fitWidth(plot, el, height) {
  const observer = new ResizeObserver(() => {
    const width = Math.max(200, el.clientWidth);
    if (Math.abs(width - plot.width) > 1) plot.setSize({ width, height });
  });
  observer.observe(el);
  return observer;
}

/** Destroy the plot a container holds (and its resize observer), if any. */
export function clearPlot(el) {
  if (el._plot) {
    el._observer.disconnect();
    el._plot.destroy();
    el._plot = null;
  }
}

function ascending(xs, ys) {
  if (xs.length < 2 || xs[xs.length - 1] >= xs[0]) return [xs, ys];
  return [xs.slice().reverse(), ys.slice().reverse()];
}

/**
 * Spectra on one wavelength axis.
 * @param {HTMLElement} el container (replaced content)
 * @param {{label: string, x: number[], y: (number|null)[], color: string, width?: number,
 *          dash?: number[]}[]} lines each on its own grid; uPlot.join aligns them
 * @param {{from: number, to: number, color: string}[]} bands shaded x ranges behind the lines
 * @param {{xLabel?: string, yLabel?: string, height?: number}} options
 */
export function spectrumPlot(el, lines, bands = [], options = {}) {
  clearPlot(el);
  const height = options.height || 320;
  const data = window.uPlot.join(lines.map((l) => ascending(l.x, l.y)));
  const shade = (u) => {
    const { ctx } = u;
    const top = u.bbox.top;
    const h = u.bbox.height;
    ctx.save();
    for (const band of bands) {
      const a = u.valToPos(band.from, "x", true);
      const b = u.valToPos(band.to, "x", true);
      const left = Math.max(Math.min(a, b), u.bbox.left);
      const right = Math.min(Math.max(a, b), u.bbox.left + u.bbox.width);
      if (right <= left) continue;
      ctx.fillStyle = band.color;
      ctx.fillRect(left, top, right - left, h);
    }
    ctx.restore();
  };
  const plot = new window.uPlot(
    {
      width: Math.max(200, el.clientWidth),
      height,
      scales: { x: { time: false } },
      axes: [{ label: options.xLabel || "" }, { label: options.yLabel || "", size: 60 }],
      series: [
        { label: options.xLabel || "x" },
        ...lines.map((l) => ({
          label: l.label,
          stroke: l.color,
          width: l.width || 1.5,
          dash: l.dash,
          spanGaps: true,
          points: { show: false },
        })),
      ],
      legend: { live: false },
      hooks: { drawClear: [shade] },
    },
    data,
    el,
  );
  el._plot = plot;
  el._observer = fitWidth(plot, el, height);
  return plot;
}

/**
 * Colours for values: categorical (10 most frequent, the rest grey) or, for many distinct
 * numbers, a blue-to-orange gradient. Returns {colors, legend: [[label, color]]}.
 */
export function colorize(values) {
  const numbers = values.filter((v) => typeof v === "number");
  const distinct = new Set(values);
  if (numbers.length === values.length && distinct.size > PALETTE.length) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of numbers) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    const span = hi - lo || 1;
    const colors = values.map((v) => {
      const t = (v - lo) / span;
      return `rgb(${Math.round(40 + 200 * t)},${Math.round(90 + 40 * t)},${Math.round(200 - 160 * t)})`;
    });
    return { colors, legend: [[`low ${lo.toPrecision(4)}`, "rgb(40,90,200)"], [`high ${hi.toPrecision(4)}`, "rgb(240,130,40)"]] };
  }
  const counts = new Map();
  for (const v of values) counts.set(v, (counts.get(v) || 0) + 1);
  const top = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, PALETTE.length);
  const colorOf = new Map(top.map(([v], i) => [v, PALETTE[i]]));
  const legend = top.map(([v]) => [String(v ?? "—"), colorOf.get(v)]);
  if (counts.size > top.length) legend.push(["other", OTHER]);
  return { colors: values.map((v) => colorOf.get(v) || OTHER), legend };
}

/**
 * A scatter plot of many points (the library map): uPlot draws axes, zoom (drag; double-click
 * resets) and cursor; the points are drawn in one pass per colour and hit-tested here.
 * @param {HTMLElement} el container
 * @param {{x: number[], y: number[], colors: string[], highlight?: number,
 *          label: (i: number) => string, onClick: (i: number) => void}} spec
 */
export function scatterPlot(el, spec) {
  clearPlot(el);
  const height = 520;
  const n = spec.x.length;
  let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
  for (let i = 0; i < n; i++) {
    x0 = Math.min(x0, spec.x[i]);
    x1 = Math.max(x1, spec.x[i]);
    y0 = Math.min(y0, spec.y[i]);
    y1 = Math.max(y1, spec.y[i]);
  }
  if (spec.marker) {
    // the current query, placed on the map: part of the view, drawn over the points
    x0 = Math.min(x0, spec.marker.x);
    x1 = Math.max(x1, spec.marker.x);
    y0 = Math.min(y0, spec.marker.y);
    y1 = Math.max(y1, spec.marker.y);
  }
  const px = (x1 - x0 || 1) * 0.03;
  const py = (y1 - y0 || 1) * 0.03;
  const screenX = new Float32Array(n);
  const screenY = new Float32Array(n);
  const byColor = new Map();
  spec.colors.forEach((c, i) => {
    if (!byColor.has(c)) byColor.set(c, []);
    byColor.get(c).push(i);
  });
  const tip = document.createElement("div");
  tip.className = "map-tip";
  let hovered = -1;

  const drawPoints = (u) => {
    const { ctx } = u;
    // Bigger marks for small maps; 2 px squares keep 10,000 points readable and fast.
    const r = (n > 3000 ? 2 : 3.5) * devicePixelRatio;
    ctx.save();
    ctx.beginPath();
    ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
    ctx.clip();
    for (const [color, idx] of byColor) {
      ctx.fillStyle = color;
      for (const i of idx) {
        const cx = u.valToPos(spec.x[i], "x", true);
        const cy = u.valToPos(spec.y[i], "y", true);
        screenX[i] = cx / devicePixelRatio - u.bbox.left / devicePixelRatio;
        screenY[i] = cy / devicePixelRatio - u.bbox.top / devicePixelRatio;
        ctx.fillRect(cx - r, cy - r, 2 * r, 2 * r);
      }
    }
    if (spec.highlight !== undefined && spec.highlight >= 0) {
      const cx = u.valToPos(spec.x[spec.highlight], "x", true);
      const cy = u.valToPos(spec.y[spec.highlight], "y", true);
      ctx.strokeStyle = "#111";
      ctx.lineWidth = 2 * devicePixelRatio;
      ctx.beginPath();
      ctx.arc(cx, cy, 7 * devicePixelRatio, 0, 2 * Math.PI);
      ctx.stroke();
    }
    if (spec.marker) {
      // a diamond, bigger than any point, black-edged so it reads on every colour
      const cx = u.valToPos(spec.marker.x, "x", true);
      const cy = u.valToPos(spec.marker.y, "y", true);
      const d = 9 * devicePixelRatio;
      ctx.beginPath();
      ctx.moveTo(cx, cy - d);
      ctx.lineTo(cx + d, cy);
      ctx.lineTo(cx, cy + d);
      ctx.lineTo(cx - d, cy);
      ctx.closePath();
      ctx.fillStyle = "#ffd400";
      ctx.fill();
      ctx.strokeStyle = "#111";
      ctx.lineWidth = 2 * devicePixelRatio;
      ctx.stroke();
    }
    ctx.restore();
  };

  const nearest = (left, top) => {
    let best = -1;
    let bestD = 64; // (8 px)^2
    for (let i = 0; i < n; i++) {
      const dx = screenX[i] - left;
      const dy = screenY[i] - top;
      const d = dx * dx + dy * dy;
      if (d < bestD) {
        bestD = d;
        best = i;
      }
    }
    return best;
  };

  const onCursor = (u) => {
    const { left, top } = u.cursor;
    hovered = left >= 0 ? nearest(left, top) : -1;
    if (hovered < 0) {
      tip.style.display = "none";
      return;
    }
    tip.textContent = spec.label(hovered);
    tip.style.display = "block";
    tip.style.left = `${Math.min(screenX[hovered] + 12, u.bbox.width / devicePixelRatio - 220)}px`;
    tip.style.top = `${screenY[hovered] + 12}px`;
  };

  const plot = new window.uPlot(
    {
      width: Math.max(200, el.clientWidth),
      height,
      scales: { x: { time: false } },
      axes: [{}, { size: 50 }],
      series: [{}, { paths: () => null, points: { show: false } }],
      cursor: { drag: { x: true, y: true, uni: 20 }, points: { show: false } },
      legend: { show: false },
      hooks: { draw: [drawPoints], setCursor: [onCursor] },
    },
    [
      [x0 - px, x1 + px],
      [y0 - py, y1 + py],
    ],
    el,
  );
  plot.over.appendChild(tip);
  plot.over.addEventListener("click", () => {
    if (hovered >= 0) spec.onClick(hovered);
  });
  el._plot = plot;
  el._observer = fitWidth(plot, el, height);
  return plot;
}
