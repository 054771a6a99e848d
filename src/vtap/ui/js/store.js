// The live model: one EventSource, three collections, listeners per topic.
import { token } from "./api.js";
// The server sends full snapshots first and changes afterwards (see GET /api/v1/events), so
// applying an event costs in proportion to what changed, not to the size of the network.

export class LiveStore {
  constructor(url = "api/v1/events") {
    this.url = url;
    this.topology = null;
    this.policies = new Map(); // id → policy row (with .copies)
    this.copyRates = new Map(); // policy id → its last copy rates (pps), oldest first
    this.flows = new Map(); // flow id → flow row
    this.flowTotal = 0;
    this.connected = false;
    this.listeners = { topology: [], policies: [], flows: [], connection: [] };
    this.perf = { applied: 0, lastApplyMs: 0, maxApplyMs: 0 };
  }

  on(topic, fn) {
    this.listeners[topic].push(fn);
  }

  emit(topic, detail) {
    for (const fn of this.listeners[topic]) fn(detail);
  }

  start() {
    // EventSource cannot send headers: this one route takes the token in the query.
    const source = new EventSource(`${this.url}?access_token=${encodeURIComponent(token())}`);
    source.onopen = () => {
      this.connected = true;
      this.emit("connection", true);
    };
    source.onerror = () => {
      this.connected = false;
      this.emit("connection", false);
    };
    source.addEventListener("topology", (e) => {
      this.topology = JSON.parse(e.data);
      this.emit("topology", this.topology);
    });
    source.addEventListener("policies", (e) => this.apply(e, this.policies, "policies"));
    source.addEventListener("flows", (e) => this.apply(e, this.flows, "flows"));
    this.source = source;
  }

  // A sparkline's worth of copy rate per policy: a point per update the stream sends.
  recordRates(msg) {
    if (msg.full) {
      for (const id of this.copyRates.keys()) if (!this.policies.has(id)) this.copyRates.delete(id);
    }
    for (const row of msg.upsert) {
      const rates = this.copyRates.get(row.id) || [];
      rates.push(row.copies ? row.copies.pps : 0);
      if (rates.length > 60) rates.shift();
      this.copyRates.set(row.id, rates);
    }
    for (const id of msg.removed) this.copyRates.delete(id);
  }

  apply(event, map, topic) {
    const t0 = performance.now();
    const msg = JSON.parse(event.data);
    if (msg.full) map.clear();
    for (const row of msg.upsert) map.set(row.id, row);
    for (const id of msg.removed) map.delete(id);
    if (topic === "flows") this.flowTotal = msg.total;
    if (topic === "policies") this.recordRates(msg);
    this.emit(topic, msg);
    const ms = performance.now() - t0;
    this.perf.applied += 1;
    this.perf.lastApplyMs = ms;
    this.perf.maxApplyMs = Math.max(this.perf.maxApplyMs, ms);
  }
}
