// Flows page: in-flight flows with their rate at every switch of the path, filters, a
// throughput chart for the selected flow and "Tap this flow".

import { api } from "./api.js";
import { ago, bits, bytes, clock, count, endpoint, esc, pps, proto } from "./format.js";
import { throughputChart } from "./chart.js";
import { VirtualTable } from "./vtable.js";

const PROTO_FILTER = { tcp: 6, udp: 17, icmp: 1 };

function hopsHtml(f) {
  return f.hops
    .map((h) => `<span class="hop" title="${esc(h.switch)}: ${pps(h.pps)}, ${h.packets} packets, ${bytes(h.bytes)}"><b>${esc(h.switch)}</b> ${bits(h.bps)}</span>`)
    .join('<span class="arrow">→</span>');
}

export class FlowsPage {
  constructor(el, store, app) {
    this.el = el;
    this.store = store;
    this.app = app;
    this.selected = null;
    this.field = "bps";
    el.innerHTML = `
      <div class="toolbar">
        <h1>Flows</h1>
        <input class="f-host" type="search" placeholder="Host (IP, MAC or name)" aria-label="Filter by host">
        <select class="f-proto" aria-label="Filter by protocol"><option value="">any protocol</option><option value="tcp">TCP</option><option value="udp">UDP</option><option value="icmp">ICMP</option></select>
        <input class="f-port" type="search" inputmode="numeric" placeholder="Port" aria-label="Filter by port" size="6">
        <span class="count dim"></span>
      </div>
      <div class="stack">
        <div class="table-host" id="flow-table"></div>
        <section class="flow-detail" hidden></section>
      </div>`;
    this.countEl = el.querySelector(".count");
    this.detailEl = el.querySelector(".flow-detail");
    for (const sel of [".f-host", ".f-proto", ".f-port"]) {
      el.querySelector(sel).addEventListener("input", () => this.refresh());
    }
    this.table = new VirtualTable(
      el.querySelector("#flow-table"),
      [
        { key: "src", title: "Source", width: "minmax(130px,1fr)", html: (f) => endpoint(f.src_ip, f.src_port, f.src_host, f.ip_proto), sort: (f) => f.src_ip },
        { key: "dst", title: "Destination", width: "minmax(130px,1fr)", html: (f) => endpoint(f.dst_ip, f.dst_port, f.dst_host, f.ip_proto), sort: (f) => f.dst_ip },
        { key: "proto", title: "Proto", width: "64px", html: (f) => proto(f.ip_proto), sort: (f) => f.ip_proto },
        { key: "first", title: "First seen", width: "96px", html: (f) => clock(f.first_seen), sort: (f) => f.first_seen },
        { key: "last", title: "Last seen", width: "90px", html: (f) => ago(f.last_seen), sort: (f) => f.last_seen },
        { key: "packets", title: "Packets", width: "76px", cls: "num", html: (f) => count(f.packets), sort: (f) => f.packets },
        { key: "rate", title: "Rate in", width: "104px", cls: "num", html: (f) => `${bits(f.bps)}<div class="sub">${pps(f.pps)}</div>`, sort: (f) => f.bps },
        { key: "path", title: "Rate at each switch on the path", width: "minmax(260px,3fr)", cls: "path-cell", html: hopsHtml },
        { key: "tap", title: "", width: "56px", cls: "actions", html: () => '<button class="link" data-action="tap" title="Tap this flow">Tap</button>' },
      ],
      {
        rowHeight: 40,
        sortKey: "rate",
        sortDir: -1,
        empty: "No flow in flight. Flows appear here while hosts exchange IPv4 traffic.",
        onSelect: (f) => this.select(f.id),
        onAction: (action, f) => {
          if (action === "tap") this.tap(f);
        },
      },
    );
    store.on("flows", () => {
      if (!this.el.hidden) this.refresh();
    });
    setInterval(() => {
      if (this.selected && !this.el.hidden) this.loadDetail();
    }, 1000);
  }

  filters() {
    const host = this.el.querySelector(".f-host").value.trim().toLowerCase();
    const protoSel = this.el.querySelector(".f-proto").value;
    const portText = this.el.querySelector(".f-port").value.trim();
    return { host, proto: protoSel ? PROTO_FILTER[protoSel] : null, port: /^\d+$/.test(portText) ? Number(portText) : null };
  }

  hostMatches(f, host) {
    if (!host) return true;
    const names = [f.src_ip, f.dst_ip, f.src_host, f.dst_host];
    if (names.some((n) => n && n.toLowerCase() === host)) return true;
    const topo = this.store.topology;
    const byMac = topo && topo.hosts.find((h) => h.mac === host);
    return Boolean(byMac && (byMac.ip === f.src_ip || byMac.ip === f.dst_ip));
  }

  refresh() {
    const t0 = performance.now();
    const flt = this.filters();
    const rows = [];
    for (const f of this.store.flows.values()) {
      if (flt.proto !== null && f.ip_proto !== flt.proto) continue;
      if (flt.port !== null && f.src_port !== flt.port && f.dst_port !== flt.port) continue;
      if (!this.hostMatches(f, flt.host)) continue;
      rows.push(f);
    }
    this.countEl.textContent = `${rows.length} of ${this.store.flows.size} flows`;
    this.table.setRows(rows);
    this.lastRefreshMs = performance.now() - t0;
    if (this.selected && !this.store.flows.has(this.selected)) this.renderDetail(null);
  }

  tap(f) {
    const ports = f.ip_proto === 6 || f.ip_proto === 17;
    const short = (h, ip) => (h || ip).replace(/[^A-Za-z0-9._-]/g, "-");
    const initial = {
      name: `tap-${proto(f.ip_proto).toLowerCase()}-${short(f.src_host, f.src_ip)}-${short(f.dst_host, f.dst_ip)}${ports ? `-${f.dst_port}` : ""}`,
      src_ip: f.src_ip,
      dst_ip: f.dst_ip,
      ip_proto: f.ip_proto,
      src_port: ports ? f.src_port : null,
      dst_port: ports ? f.dst_port : null,
    };
    this.app.openPolicyForm(initial);
  }

  async select(id) {
    this.selected = id;
    this.table.select(id);
    this.detailEl.hidden = false;
    this.detailEl.innerHTML = '<p class="dim">Loading…</p>';
    await this.loadDetail();
  }

  async loadDetail() {
    const id = this.selected;
    try {
      const detail = await api.get(`/flows/${encodeURIComponent(id)}`);
      if (id === this.selected) this.renderDetail(detail);
    } catch {
      if (id === this.selected) this.renderDetail(null);
    }
  }

  renderDetail(f) {
    if (!f) {
      this.detailEl.innerHTML = `<p class="dim">Flow ${esc(this.selected)} ended (its entries idled out).</p>`;
      return;
    }
    const series = f.history.map((h) => ({ label: h.switch, points: h.points }));
    this.detailEl.innerHTML = `
      <div class="detail-bar">
        <h2><span class="mono">${endpoint(f.src_ip, f.src_port, f.src_host, f.ip_proto)} → ${endpoint(f.dst_ip, f.dst_port, f.dst_host, f.ip_proto)}</span> <span class="pill neutral">${proto(f.ip_proto)}</span></h2>
        <span class="dim">first seen ${clock(f.first_seen)} · last seen ${ago(f.last_seen)} · ${count(f.packets)} packets · ${bytes(f.bytes)}</span>
        <span class="grow"></span>
        <div class="seg" role="group" aria-label="Chart unit">
          <button class="${this.field === "bps" ? "on" : ""}" data-field="bps">bit/s</button><button class="${this.field === "pps" ? "on" : ""}" data-field="pps">packets/s</button>
        </div>
        <button class="primary" data-tap>Tap this flow</button>
        <button class="icon" data-close aria-label="Close detail">✕</button>
      </div>
      <div class="detail-body">
        <div class="chart-box">${throughputChart(series, { field: this.field })}</div>
        <table class="hops"><thead><tr><th>Switch</th><th class="num">Rate</th><th class="num">pps</th><th class="num">Packets</th><th class="num">Bytes</th></tr></thead>
        <tbody>${f.hops.map((h) => `<tr><td><b>${esc(h.switch)}</b> <span class="dim mono">${h.dpid.slice(-4)}</span></td><td class="num">${bits(h.bps)}</td><td class="num">${pps(h.pps)}</td><td class="num">${count(h.packets)}</td><td class="num">${bytes(h.bytes)}</td></tr>`).join("")}</tbody></table>
      </div>`;
    this.detailEl.querySelector("[data-tap]").addEventListener("click", () => this.tap(f));
    this.detailEl.querySelector("[data-close]").addEventListener("click", () => {
      this.selected = null;
      this.table.select(null);
      this.detailEl.hidden = true;
    });
    this.detailEl.querySelectorAll("[data-field]").forEach((b) => b.addEventListener("click", () => {
      this.field = b.dataset.field;
      this.renderDetail(f);
    }));
  }

  shown() {
    this.refresh();
  }
}
