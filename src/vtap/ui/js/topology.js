// Topology page: the leaf-spine as a layered SVG (spines, leaves, hosts), live switch and link
// state, and for a selected policy its production path (blue) and copy path (orange).

import { api } from "./api.js";
import { esc, matchSummary, monitorOf } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
const Y = { spine: 70, leaf: 250, host: 410 };
const SW_W = 92;
const SW_H = 32;

function natural(a, b) {
  return a.localeCompare(b, undefined, { numeric: true });
}

function cableKey(a, b) {
  const x = `${a.dpid}:${a.port_no}`;
  const y = `${b.dpid}:${b.port_no}`;
  return x < y ? `${x}|${y}` : `${y}|${x}`;
}

export class TopologyPage {
  constructor(el, store, app) {
    this.el = el;
    this.store = store;
    this.app = app;
    this.everSeen = new Map(); // cable key → {a, b}: a cable that vanished is drawn as down
    this.policyId = null;
    this.paths = null;
    el.innerHTML = `
      <div class="toolbar">
        <h1>Topology</h1>
        <label class="inline">Policy
          <select class="policy-pick" aria-label="Highlight a policy"><option value="">— none —</option></select>
        </label>
        <button class="fit" type="button" title="Show the whole fabric (wheel: zoom, drag: pan)">Fit</button>
        <span class="grow"></span>
        <span class="legend">
          <span><i class="sw-ok"></i>switch</span><span><i class="sw-down"></i>disconnected</span>
          <span><i class="ln-up"></i>link</span><span><i class="ln-down"></i>link down</span>
          <span><i class="ln-prod"></i>production path</span><span><i class="ln-copy"></i>copy path</span>
        </span>
      </div>
      <div class="topo-wrap">
        <div class="topo-canvas"><svg class="topo" role="img" aria-label="Leaf-spine topology"></svg></div>
        <aside class="detail topo-info"></aside>
      </div>`;
    this.svg = el.querySelector("svg.topo");
    this.info = el.querySelector(".topo-info");
    this.full = null; // the whole fabric's box {x, y, w, h}
    this.view = null; // the part shown after a zoom or pan; null: fit the whole fabric
    el.querySelector("button.fit").addEventListener("click", () => this.fit());
    this.svg.addEventListener("wheel", (e) => this.zoom(e), { passive: false });
    this.svg.addEventListener("pointerdown", (e) => this.pan(e));
    this.pick = el.querySelector(".policy-pick");
    this.pick.addEventListener("change", () => this.highlight(this.pick.value ? Number(this.pick.value) : null));
    store.on("topology", () => this.draw());
    store.on("policies", () => this.fillPicker());
    setInterval(() => {
      if (this.policyId !== null && !this.el.hidden) this.loadPaths();
    }, 2000);
    this.renderInfo();
  }

  fillPicker() {
    const policies = Array.from(this.store.policies.values()).sort((a, b) => a.id - b.id);
    const sig = policies.map((p) => `${p.id}:${p.name}:${p.status}`).join(",");
    if (sig === this.pickerSig) return;
    this.pickerSig = sig;
    this.pick.innerHTML = `<option value="">— none —</option>${policies
      .map((p) => `<option value="${p.id}" ${p.id === this.policyId ? "selected" : ""}>#${p.id} ${esc(p.name)} (${p.status})</option>`)
      .join("")}`;
    this.renderInfo();
  }

  async highlight(id) {
    this.policyId = id;
    this.pick.value = id === null ? "" : String(id);
    this.paths = null;
    if (id !== null) await this.loadPaths();
    this.draw();
    this.renderInfo();
  }

  async loadPaths() {
    const id = this.policyId;
    try {
      const paths = await api.get(`/policies/${id}/paths`);
      if (id !== this.policyId) return;
      const changed = JSON.stringify(paths) !== JSON.stringify(this.paths);
      this.paths = paths;
      if (changed) {
        this.draw();
        this.renderInfo();
      }
    } catch {
      this.paths = null;
    }
  }

  layout(topo) {
    const hostsBy = new Map();
    for (const h of topo.hosts) {
      if (!hostsBy.has(h.dpid)) hostsBy.set(h.dpid, []);
      hostsBy.get(h.dpid).push(h);
    }
    const isLeaf = (s) => (s.name.startsWith("leaf") || (!s.name.startsWith("spine") && hostsBy.has(s.dpid)));
    const leaves = topo.switches.filter(isLeaf).sort((a, b) => natural(a.name, b.name));
    const spines = topo.switches.filter((s) => !isLeaf(s)).sort((a, b) => natural(a.name, b.name));
    const hostCount = Math.max(...leaves.map((l) => (hostsBy.get(l.dpid) || []).length), 1);
    const slot = Math.max(120, hostCount * 56);
    const width = Math.max(900, leaves.length * slot + 80, spines.length * 140 + 80);
    const pos = new Map();
    const spread = (items, y, w) => items.forEach((s, i) => pos.set(s.dpid, { x: (w / items.length) * (i + 0.5), y }));
    spread(spines, Y.spine, width);
    spread(leaves, Y.leaf, width);
    const hostPos = new Map();
    for (const leaf of leaves) {
      const hosts = (hostsBy.get(leaf.dpid) || []).sort((a, b) => natural(a.name || a.ip || a.mac, b.name || b.ip || b.mac));
      const cx = pos.get(leaf.dpid).x;
      hosts.forEach((h, i) => hostPos.set(h.mac, { x: cx + (i - (hosts.length - 1) / 2) * 56, y: Y.host, leaf: leaf.dpid, host: h }));
    }
    return { width, height: Y.host + 60, pos, hostPos, spines, leaves };
  }

  highlightSets() {
    const prod = new Set();
    const copy = new Set();
    const prodSw = new Set();
    const copySw = new Set();
    const prodHosts = new Set();
    const copyHosts = new Set();
    if (this.paths) {
      for (const r of this.paths.production_paths) {
        r.links.forEach((l) => prod.add(cableKey(l.a, l.b)));
        r.switches.forEach((s) => prodSw.add(s.dpid));
        if (r.src_host) prodHosts.add(r.src_host);
        if (r.dst_host) prodHosts.add(r.dst_host);
      }
      const c = this.paths.copy_path;
      if (c) {
        c.links.forEach((l) => copy.add(cableKey(l.a, l.b)));
        c.switches.forEach((s) => copySw.add(s.dpid));
        if (c.dst_host) copyHosts.add(c.dst_host);
        if (c.src_host) prodHosts.add(c.src_host); // the host whose packets are copied
      }
    }
    return { prod, copy, prodSw, copySw, prodHosts, copyHosts };
  }

  draw() {
    const topo = this.store.topology;
    if (!topo || this.el.hidden) {
      this.dirty = true;
      return;
    }
    this.dirty = false;
    const L = this.layout(topo);
    const hl = this.highlightSets();
    const current = new Map();
    for (const link of topo.links) current.set(cableKey(link.a, link.b), link);
    for (const [k, link] of current) this.everSeen.set(k, link);

    // The whole fabric fits the canvas (viewBox scales it, aspect kept); wheel and drag zoom
    // into a part of it: a 16×64 fabric is read by zooming, not by scrolling off the page.
    this.full = { x: 0, y: 0, w: L.width, h: L.height };
    this.applyView();
    const parts = [];
    // cables, grouped per switch pair so that parallel cables fan out
    const pairCount = new Map();
    for (const [k, link] of this.everSeen) {
      const a = L.pos.get(link.a.dpid);
      const b = L.pos.get(link.b.dpid);
      if (!a || !b) continue;
      const pair = [link.a.dpid, link.b.dpid].sort().join("-");
      const n = pairCount.get(pair) || 0;
      pairCount.set(pair, n + 1);
      const off = n * 6;
      const up = current.has(k);
      let cls = up ? "ln up" : "ln down";
      if (hl.prod.has(k)) cls += " prod";
      if (hl.copy.has(k)) cls += " copy";
      const title = `${link.a.switch}:${link.a.port_no} ↔ ${link.b.switch}:${link.b.port_no}${up ? "" : " (down)"}`;
      parts.push(`<line class="${cls}" x1="${a.x + off}" y1="${a.y}" x2="${b.x + off}" y2="${b.y}"><title>${esc(title)}</title></line>`);
      if (hl.prod.has(k) && hl.copy.has(k)) {
        parts.push(`<line class="ln copy overlay" x1="${a.x + off + 5}" y1="${a.y}" x2="${b.x + off + 5}" y2="${b.y}"></line>`);
      }
    }
    // host attachments
    for (const [mac, hp] of L.hostPos) {
      const leaf = L.pos.get(hp.leaf);
      let cls = "ln host";
      if (hl.prodHosts.has(mac)) cls += " prod";
      if (hl.copyHosts.has(mac)) cls += " copy";
      parts.push(`<line class="${cls}" x1="${leaf.x}" y1="${leaf.y + SW_H / 2}" x2="${hp.x}" y2="${hp.y - 12}"></line>`);
    }
    // switches
    for (const s of topo.switches) {
      const p = L.pos.get(s.dpid);
      if (!p) continue;
      let cls = `sw ${s.connected ? "ok" : "down"}`;
      if (hl.prodSw.has(s.dpid)) cls += " prod";
      if (hl.copySw.has(s.dpid)) cls += " copy";
      const ports = s.ports.filter((q) => q.up).length;
      parts.push(`<g class="${cls}" transform="translate(${p.x - SW_W / 2},${p.y - SW_H / 2})" data-dpid="${s.dpid}">
        <title>${esc(s.name)} ${s.dpid}\n${s.connected ? "connected" : "disconnected"} · ${ports}/${s.ports.length} ports up</title>
        <rect width="${SW_W}" height="${SW_H}" rx="6"></rect>
        <text x="${SW_W / 2}" y="${SW_H / 2 + 4}">${esc(s.name || s.dpid.slice(-4))}</text></g>`);
    }
    // hosts
    const monitorMacs = new Set(hl.copyHosts);
    for (const [mac, hp] of L.hostPos) {
      const h = hp.host;
      let cls = "host";
      if (hl.prodHosts.has(mac)) cls += " prod";
      if (monitorMacs.has(mac)) cls += " monitor";
      const label = h.name || h.ip || mac.slice(-5);
      parts.push(`<g class="${cls}" transform="translate(${hp.x},${hp.y})">
        <title>${esc(label)}\n${esc(mac)} ${esc(h.ip || "")}\n${esc(h.switch)} port ${h.port_no}</title>
        <circle r="11"></circle><text y="28">${esc(label)}</text>
        ${monitorMacs.has(mac) ? '<text class="tag" y="44">monitor</text>' : ""}</g>`);
    }
    const tiers = `<text class="tier" x="8" y="${Y.spine - 26}">SPINES</text><text class="tier" x="8" y="${Y.leaf - 26}">LEAVES</text><text class="tier" x="8" y="${Y.host - 26}">HOSTS</text>`;
    this.svg.innerHTML = tiers + parts.join("");
  }

  applyView() {
    const v = this.view || this.full;
    if (v) this.svg.setAttribute("viewBox", `${v.x} ${v.y} ${v.w} ${v.h}`);
  }

  fit() {
    this.view = null;
    this.applyView();
  }

  // SVG user units per screen pixel, and the user point under a client point
  scale() {
    const v = this.view || this.full;
    const box = this.svg.getBoundingClientRect();
    return Math.max(v.w / box.width, v.h / box.height);
  }

  zoom(e) {
    if (!this.full) return;
    e.preventDefault();
    const v = { ...(this.view || this.full) };
    const box = this.svg.getBoundingClientRect();
    const k = this.scale();
    // the user point under the cursor stays put (the viewBox is centred, aspect kept)
    const ux = v.x + v.w / 2 + (e.clientX - box.left - box.width / 2) * k;
    const uy = v.y + v.h / 2 + (e.clientY - box.top - box.height / 2) * k;
    const f = e.deltaY < 0 ? 0.8 : 1.25;
    const w = Math.min(this.full.w, Math.max(200, v.w * f));
    const h = (v.h * w) / v.w;
    this.view = { x: ux - (ux - v.x) * (w / v.w), y: uy - (uy - v.y) * (h / v.h), w, h };
    if (w >= this.full.w) this.view = null;
    this.applyView();
  }

  pan(e) {
    if (!this.view || e.button !== 0) return;
    const start = { x: e.clientX, y: e.clientY, view: { ...this.view } };
    const k = this.scale();
    this.svg.setPointerCapture(e.pointerId);
    const move = (m) => {
      this.view = { ...start.view, x: start.view.x - (m.clientX - start.x) * k, y: start.view.y - (m.clientY - start.y) * k };
      this.applyView();
    };
    const up = () => {
      this.svg.removeEventListener("pointermove", move);
      this.svg.removeEventListener("pointerup", up);
    };
    this.svg.addEventListener("pointermove", move);
    this.svg.addEventListener("pointerup", up);
  }

  renderInfo() {
    const topo = this.store.topology;
    const sw = topo ? topo.switches : [];
    const down = sw.filter((s) => !s.connected).length;
    const lost = topo ? Array.from(this.everSeen.keys()).filter((k) => !topo.links.some((l) => cableKey(l.a, l.b) === k)).length : 0;
    let html = `<h2>Fabric</h2><dl class="facts">
      <dt>Switches</dt><dd>${sw.length}${down ? ` · <span class="bad">${down} disconnected</span>` : ""}</dd>
      <dt>Links</dt><dd>${topo ? topo.links.length : 0}${lost ? ` · <span class="bad">${lost} down</span>` : ""}</dd>
      <dt>Hosts</dt><dd>${topo ? topo.hosts.length : 0}</dd></dl>`;
    const p = this.policyId !== null ? this.store.policies.get(this.policyId) : null;
    if (p) {
      html += `<h2>${esc(p.name)} <span class="dim">#${p.id}</span></h2>
        <div><span class="pill ${p.status}">${p.status}</span> <span class="reason">${esc(p.status_reason)}</span></div>
        <dl class="facts"><dt>Match</dt><dd class="mono">${esc(matchSummary(p))}</dd>
        <dt>Monitor</dt><dd class="mono">${esc(monitorOf(p))}</dd></dl>`;
      if (this.paths) {
        const prod = this.paths.production_paths;
        html += `<h3><i class="swatch prod"></i>Production path${prod.length > 1 ? `s (${prod.length} flows)` : ""}</h3>`;
        html += prod.length
          ? prod.slice(0, 6).map((r) => `<div class="path mono">${r.switches.map((s) => esc(s.name)).join(" → ")}${r.flow ? "" : ' <span class="dim">(computed)</span>'}</div>`).join("")
          : '<p class="dim">No matching flow in flight.</p>';
        const c = this.paths.copy_path;
        html += '<h3><i class="swatch copy"></i>Copy path</h3>';
        html += c
          ? `<div class="path mono">${c.switches.map((s) => esc(s.name)).join(" → ")} → monitor</div>`
          : `<p class="dim">${esc(this.paths.reason || "none")}</p>`;
      }
    } else {
      html += '<p class="dim">Pick a policy to highlight where its packets travel and where its copies go.</p>';
    }
    this.info.innerHTML = html;
  }

  shown() {
    this.draw();
    this.renderInfo();
  }
}
