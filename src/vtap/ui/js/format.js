// Small formatting helpers: numbers an operator reads at a glance.

const PROTOS = { 1: "ICMP", 6: "TCP", 17: "UDP" };

export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

export function proto(n) {
  if (n === null || n === undefined) return "any";
  return PROTOS[n] || String(n);
}

function scaled(value, units, base) {
  let i = 0;
  let v = value;
  while (Math.abs(v) >= base && i < units.length - 1) {
    v /= base;
    i += 1;
  }
  const digits = v >= 100 || i === 0 ? 0 : v >= 10 ? 1 : 2;
  return `${v.toFixed(digits)} ${units[i]}`;
}

export function bits(bps) {
  return scaled(bps || 0, ["b/s", "kb/s", "Mb/s", "Gb/s", "Tb/s"], 1000);
}

export function bytes(n) {
  return scaled(n || 0, ["B", "kB", "MB", "GB", "TB"], 1000);
}

export function count(n) {
  if (n === null || n === undefined) return "0";
  return n >= 10000 ? scaled(n, ["", "k", "M", "G"], 1000).replace(" ", "") : String(n);
}

export function pps(n) {
  const v = n || 0;
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} pps`;
}

export function clock(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour12: false });
}

export function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 2) return "now";
  if (s < 60) return `${Math.round(s)}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

export function endpoint(ip, port, name, protoNum) {
  const who = name ? `${esc(name)} <span class="dim">${esc(ip)}</span>` : esc(ip);
  const withPort = protoNum === 6 || protoNum === 17;
  return withPort ? `${who}<span class="dim">:${port}</span>` : who;
}

export function matchSummary(p) {
  const parts = [];
  const src = [p.src_mac, p.src_ip].filter(Boolean).join(" ");
  const dst = [p.dst_mac, p.dst_ip].filter(Boolean).join(" ");
  parts.push(`${src || "*"} → ${dst || "*"}`);
  if (p.ip_proto !== null && p.ip_proto !== undefined) parts.push(proto(p.ip_proto));
  if (p.src_port) parts.push(`sport ${p.src_port}`);
  if (p.dst_port) parts.push(`dport ${p.dst_port}`);
  if (p.vlan_id) parts.push(`vlan ${p.vlan_id}`);
  return parts.join(" · ");
}

export function monitorOf(p) {
  return [p.monitor_mac, p.monitor_ip].filter(Boolean).join(" ") || "—";
}

// A tiny line chart of recent values (copy rate per policy): an inline SVG, no library.
export function sparkline(values, width = 64, height = 18) {
  if (!values || values.length < 2) return `<svg class="spark" width="${width}" height="${height}"></svg>`;
  const max = Math.max(...values, 1);
  const step = width / (values.length - 1);
  const points = values
    .map((v, i) => `${(i * step).toFixed(1)},${(height - 1 - (v / max) * (height - 2)).toFixed(1)}`)
    .join(" ");
  return `<svg class="spark" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" aria-label="copy rate, last ${values.length} readings"><polyline points="${points}"></polyline></svg>`;
}

