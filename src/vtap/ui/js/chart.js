// A throughput-over-time line chart in plain SVG: one line per switch on a flow's path.

import { bits, esc } from "./format.js";

const COLORS = ["#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2"];

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/** series: [{label, points: [{t, bps, pps}]}] → SVG markup. */
export function throughputChart(series, { width = 640, height = 220, field = "bps" } = {}) {
  const pad = { l: 64, r: 12, t: 12, b: 28 };
  const all = series.flatMap((s) => s.points);
  if (!all.length) return `<div class="chart-empty dim">Waiting for the first counter readings…</div>`;
  const t1 = Math.max(...all.map((p) => p.t));
  const t0 = Math.min(Math.min(...all.map((p) => p.t)), t1 - 30);
  const vmax = niceMax(Math.max(...all.map((p) => p[field])));
  const x = (t) => pad.l + ((t - t0) / Math.max(1, t1 - t0)) * (width - pad.l - pad.r);
  const y = (v) => height - pad.b - (v / vmax) * (height - pad.t - pad.b);
  const fmt = field === "bps" ? bits : (v) => `${v.toFixed(v < 10 ? 1 : 0)} pps`;
  let grid = "";
  for (let i = 0; i <= 4; i += 1) {
    const v = (vmax * i) / 4;
    grid += `<line class="grid" x1="${pad.l}" x2="${width - pad.r}" y1="${y(v)}" y2="${y(v)}"></line>`;
    grid += `<text class="axis" x="${pad.l - 6}" y="${y(v) + 4}" text-anchor="end">${fmt(v)}</text>`;
  }
  for (let i = 0; i <= 4; i += 1) {
    const t = t0 + ((t1 - t0) * i) / 4;
    const label = `-${Math.round(t1 - t)}s`;
    grid += `<text class="axis" x="${x(t)}" y="${height - 8}" text-anchor="middle">${i === 4 ? "now" : label}</text>`;
  }
  const lines = series.map((s, i) => {
    const pts = s.points.map((p) => `${x(p.t).toFixed(1)},${y(p[field]).toFixed(1)}`).join(" ");
    // Hops usually carry the same rate: wider lines underneath keep every one visible.
    const width = 2 + 2.5 * (series.length - 1 - i);
    return `<polyline class="series" stroke="${COLORS[i % COLORS.length]}" stroke-width="${width}" points="${pts}"><title>${esc(s.label)}</title></polyline>`;
  });
  const legend = series
    .map((s, i) => `<span><i style="background:${COLORS[i % COLORS.length]}"></i>${esc(s.label)}</span>`)
    .join("");
  return `<svg class="chart" viewBox="0 0 ${width} ${height}" role="img" aria-label="Throughput over time">${grid}${lines.join("")}</svg><div class="chart-legend">${legend}</div>`;
}
