// A virtual table: thousands of rows, but only the visible ones (plus a margin) are in the DOM.
// Rows have a fixed height, so the visible slice follows from the scroll offset alone; updates
// are coalesced into one render per animation frame.

import { esc } from "./format.js";

export class VirtualTable {
  /**
   * columns: [{key, title, width, html(row) → string, sort(row) → value, cls}]
   * options: {rowHeight, rowKey(row), onSelect(row), onAction(action, row), empty}
   */
  constructor(host, columns, options = {}) {
    this.columns = columns;
    this.rowHeight = options.rowHeight || 34;
    this.rowKey = options.rowKey || ((r) => r.id);
    this.onSelect = options.onSelect || (() => {});
    this.onAction = options.onAction || (() => {});
    this.empty = options.empty || "Nothing to show.";
    this.rows = [];
    this.sorted = [];
    this.sortKey = options.sortKey || null;
    this.sortDir = options.sortDir || 1;
    this.selected = null;
    this.pending = false;
    this.lastRenderMs = 0;

    const template = columns.map((c) => c.width || "1fr").join(" ");
    host.classList.add("vtable");
    host.style.setProperty("--cols", template);
    host.innerHTML = `
      <div class="vt-head" role="row">${columns
        .map((c) => `<div class="vt-th ${c.cls || ""}" data-key="${c.key}" role="columnheader">${esc(c.title)}<span class="sort"></span></div>`)
        .join("")}</div>
      <div class="vt-body" role="rowgroup"><div class="vt-spacer"></div><div class="vt-rows"></div><div class="vt-empty" hidden></div></div>`;
    this.head = host.querySelector(".vt-head");
    this.body = host.querySelector(".vt-body");
    this.spacer = host.querySelector(".vt-spacer");
    this.rowsEl = host.querySelector(".vt-rows");
    this.emptyEl = host.querySelector(".vt-empty");

    this.body.addEventListener("scroll", () => this.schedule(false));
    this.head.addEventListener("click", (e) => {
      const th = e.target.closest(".vt-th");
      const col = th && this.columns.find((c) => c.key === th.dataset.key);
      if (!col || !col.sort) return;
      this.sortDir = this.sortKey === col.key ? -this.sortDir : 1;
      this.sortKey = col.key;
      this.schedule(true);
    });
    this.rowsEl.addEventListener("click", (e) => {
      const rowEl = e.target.closest(".vt-row");
      if (!rowEl) return;
      const row = this.sorted[Number(rowEl.dataset.index)];
      if (!row) return;
      const action = e.target.closest("[data-action]");
      if (action) {
        e.stopPropagation();
        this.onAction(action.dataset.action, row, action);
        return;
      }
      this.select(this.rowKey(row));
      this.onSelect(row);
    });
    new ResizeObserver(() => this.schedule(false)).observe(this.body);
  }

  setRows(rows) {
    this.rows = rows;
    this.schedule(true);
  }

  select(key) {
    this.selected = key;
    this.schedule(false);
  }

  schedule(resort) {
    this.needSort = this.needSort || resort;
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  sortRows() {
    const col = this.columns.find((c) => c.key === this.sortKey);
    if (!col || !col.sort) {
      this.sorted = this.rows.slice();
      return;
    }
    const dir = this.sortDir;
    const keyed = this.rows.map((r) => [col.sort(r), r]);
    keyed.sort((a, b) => (a[0] < b[0] ? -dir : a[0] > b[0] ? dir : 0));
    this.sorted = keyed.map((k) => k[1]);
  }

  render() {
    const t0 = performance.now();
    if (this.needSort) {
      this.sortRows();
      this.needSort = false;
      for (const th of this.head.children) {
        const on = th.dataset.key === this.sortKey;
        th.classList.toggle("sorted", on);
        th.querySelector(".sort").textContent = on ? (this.sortDir > 0 ? " ▲" : " ▼") : "";
      }
    }
    const h = this.rowHeight;
    const total = this.sorted.length;
    this.spacer.style.height = `${total * h}px`;
    this.emptyEl.hidden = total > 0;
    this.emptyEl.textContent = this.empty;
    const top = this.body.scrollTop;
    const view = this.body.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / h) - 5);
    const last = Math.min(total, Math.ceil((top + view) / h) + 5);
    let html = "";
    for (let i = first; i < last; i += 1) {
      const row = this.sorted[i];
      const key = this.rowKey(row);
      const sel = key === this.selected ? " selected" : "";
      html += `<div class="vt-row${sel}" role="row" data-index="${i}" data-key="${esc(key)}" style="transform:translateY(${i * h}px)">`;
      for (const c of this.columns) html += `<div class="vt-td ${c.cls || ""}">${c.html(row)}</div>`;
      html += "</div>";
    }
    this.rowsEl.innerHTML = html;
    this.lastRenderMs = performance.now() - t0;
  }
}
