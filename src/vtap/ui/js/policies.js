// Policies page: the live table, a detail panel with compiled rules, and the actions.

import { api } from "./api.js";
import { bits, bytes, count, esc, matchSummary, monitorOf, pps, sparkline } from "./format.js";
import { openPolicyForm } from "./policyform.js";
import { VirtualTable } from "./vtable.js";

function statusPill(p) {
  const reason = p.status_reason ? `<span class="reason" title="${esc(p.status_reason)}">${esc(p.status_reason)}</span>` : "";
  return `<span class="pill ${p.status}">${p.status}</span>${reason}`;
}

export class PoliciesPage {
  constructor(el, store, app) {
    this.el = el;
    this.store = store;
    this.app = app;
    this.selectedId = null;
    this.filter = "";
    el.innerHTML = `
      <div class="toolbar">
        <h1>TAP policies</h1>
        <input type="search" class="filter" placeholder="Filter by name, address, monitor…" aria-label="Filter policies">
        <span class="count dim"></span>
        <span class="grow"></span>
        <button class="primary" data-new>+ New policy</button>
      </div>
      <div class="split">
        <div class="table-host" id="policy-table"></div>
        <aside class="detail" id="policy-detail" hidden></aside>
      </div>`;
    this.countEl = el.querySelector(".count");
    this.detailEl = el.querySelector("#policy-detail");
    el.querySelector("[data-new]").addEventListener("click", () => this.openForm());
    el.querySelector(".filter").addEventListener("input", (e) => {
      this.filter = e.target.value.trim().toLowerCase();
      this.refresh();
    });
    this.table = new VirtualTable(
      el.querySelector("#policy-table"),
      [
        { key: "id", title: "ID", width: "52px", html: (p) => `<span class="dim">${p.id}</span>`, sort: (p) => p.id, cls: "num" },
        { key: "name", title: "Name", width: "minmax(100px,1fr)", html: (p) => `<b>${esc(p.name)}</b>`, sort: (p) => p.name },
        { key: "match", title: "Match", width: "minmax(140px,2fr)", html: (p) => `<span class="mono">${esc(matchSummary(p))}</span>`, sort: (p) => matchSummary(p) },
        { key: "monitor", title: "Monitor", width: "minmax(90px,1fr)", html: (p) => `<span class="mono">${esc(monitorOf(p))}</span>`, sort: (p) => monitorOf(p) },
        { key: "delivery", title: "Delivery", width: "86px", html: (p) => esc(p.delivery), sort: (p) => p.delivery },
        { key: "status", title: "Status", width: "minmax(120px,1.4fr)", html: statusPill, sort: (p) => p.status },
        { key: "packets", title: "Copied", width: "92px", cls: "num", html: (p) => `${count(p.copies.packets)}<div class="sub">${bytes(p.copies.bytes)}</div>`, sort: (p) => p.copies.packets },
        { key: "rate", title: "Copy rate", width: "112px", cls: "num", html: (p) => `${bits(p.copies.bps)}<div class="sub">${pps(p.copies.pps)}</div>`, sort: (p) => p.copies.bps },
        { key: "trend", title: "Trend", width: "76px", cls: "trend", html: (p) => sparkline(this.store.copyRates.get(p.id)) },
        {
          key: "actions", title: "", width: "176px", cls: "actions",
          html: (p) => `<button class="link" data-action="edit">Edit</button><button class="link" data-action="toggle">${p.enabled ? "Disable" : "Enable"}</button><button class="link danger" data-action="delete">Delete</button>`,
        },
      ],
      {
        rowHeight: 40,
        sortKey: "id",
        empty: "No policies yet. Create one with “+ New policy”, or tap a flow on the Flows page.",
        onSelect: (p) => this.showDetail(p.id),
        onAction: (action, p) => this.action(action, p),
      },
    );
    store.on("policies", () => this.refresh());
  }

  hosts() {
    return (this.store.topology && this.store.topology.hosts) || [];
  }

  refresh() {
    let rows = Array.from(this.store.policies.values());
    if (this.filter) {
      const f = this.filter;
      rows = rows.filter((p) => `${p.name} ${matchSummary(p)} ${monitorOf(p)} ${p.status} ${p.status_reason}`.toLowerCase().includes(f));
    }
    this.countEl.textContent = `${rows.length} of ${this.store.policies.size}`;
    this.table.setRows(rows);
    if (this.selectedId !== null) {
      const p = this.store.policies.get(this.selectedId);
      if (!p) this.hideDetail();
      else this.updateDetailHeader(p);
    }
  }

  openForm(initial = {}, policy = null) {
    openPolicyForm({
      initial,
      policy,
      hosts: this.hosts(),
      onSaved: (saved) => {
        this.app.toast(`Policy “${saved.name}” ${policy ? "saved" : "created"}: ${saved.status}${saved.status_reason ? ` (${saved.status_reason})` : ""}`);
        this.store.policies.set(saved.id, { copies: { packets: 0, bytes: 0, pps: 0, bps: 0 }, ...this.store.policies.get(saved.id), ...saved });
        this.refresh();
        this.showDetail(saved.id);
      },
    });
  }

  async action(action, p) {
    if (action === "edit") this.openForm({}, p);
    if (action === "toggle") {
      const saved = await api.patch(`/policies/${p.id}`, { enabled: !p.enabled });
      this.app.toast(`Policy “${saved.name}” ${saved.enabled ? "enabled" : "disabled"}`);
    }
    if (action === "delete") this.confirmDelete(p);
    if (action === "topology") this.app.showOnTopology(p.id);
  }

  confirmDelete(p) {
    const root = document.getElementById("modal-root");
    root.innerHTML = `
      <div class="modal-backdrop"><div class="modal confirm" role="alertdialog" aria-label="Delete policy">
        <header><h2>Delete policy “${esc(p.name)}”?</h2></header>
        <p>Its rules and groups are removed from every switch; copies to <span class="mono">${esc(monitorOf(p))}</span> stop.</p>
        <footer><button class="secondary" data-cancel>Cancel</button><button class="danger-btn" data-confirm>Delete</button></footer>
      </div></div>`;
    root.querySelector("[data-cancel]").addEventListener("click", () => {
      root.innerHTML = "";
    });
    root.querySelector("[data-confirm]").addEventListener("click", async (e) => {
      e.target.disabled = true;
      await api.del(`/policies/${p.id}`);
      root.innerHTML = "";
      this.store.policies.delete(p.id);
      this.refresh();
      this.app.toast(`Policy “${p.name}” deleted`);
    });
    root.querySelector("[data-cancel]").focus();
  }

  hideDetail() {
    this.selectedId = null;
    this.detailEl.hidden = true;
    this.table.select(null);
  }

  updateDetailHeader(p) {
    const head = this.detailEl.querySelector(".detail-head");
    if (!head) return;
    head.innerHTML = `
      <h2>${esc(p.name)} <span class="dim">#${p.id}</span></h2>
      <div>${statusPill(p)}</div>
      <dl class="facts">
        <dt>Match</dt><dd class="mono">${esc(matchSummary(p))}</dd>
        <dt>Monitor</dt><dd class="mono">${esc(monitorOf(p))}</dd>
        <dt>Delivery</dt><dd>${esc(p.delivery)}${p.enabled ? "" : " · disabled"}</dd>
        <dt>Copied</dt><dd>${count(p.copies.packets)} packets · ${bytes(p.copies.bytes)} · ${bits(p.copies.bps)}</dd>
      </dl>`;
  }

  async showDetail(id) {
    this.selectedId = id;
    this.table.select(id);
    const p = this.store.policies.get(id);
    if (!p) return;
    this.detailEl.hidden = false;
    this.detailEl.innerHTML = `
      <button class="icon close" aria-label="Close detail">✕</button>
      <div class="detail-head"></div>
      <div class="detail-actions">
        <button class="secondary" data-act="topology">Show on topology</button>
        <button class="secondary" data-act="edit">Edit</button>
      </div>
      <h3>Compiled rules <button class="link" data-act="reload">reload</button></h3>
      <div class="rules">Loading…</div>`;
    this.updateDetailHeader(p);
    this.detailEl.querySelector(".close").addEventListener("click", () => this.hideDetail());
    this.detailEl.querySelectorAll("[data-act]").forEach((b) =>
      b.addEventListener("click", () => {
        const cur = this.store.policies.get(id);
        if (b.dataset.act === "reload") this.loadRules(id);
        else if (cur) this.action(b.dataset.act, cur);
      }));
    this.loadRules(id);
  }

  async loadRules(id) {
    const box = this.detailEl.querySelector(".rules");
    try {
      const rules = await api.get(`/policies/${id}/rules`);
      if (this.selectedId !== id) return;
      if (!rules.switches.length) {
        box.innerHTML = `<p class="dim">No rules installed${rules.status_reason ? `: ${esc(rules.status_reason)}` : ""}.</p>`;
        return;
      }
      box.innerHTML = rules.switches.map((s) => `
        <div class="switch-rules"><div class="sw-name">${esc(s.switch)} <span class="dim mono">${esc(s.dpid)}</span> <span class="dim">· ${s.rules.length} rule${s.rules.length === 1 ? "" : "s"}</span></div>
        <pre>${s.rules.map((r) => esc(r.ofctl)).join("\n")}</pre></div>`).join("");
    } catch (err) {
      box.textContent = `Could not load rules: ${err.message}`;
    }
  }
}
