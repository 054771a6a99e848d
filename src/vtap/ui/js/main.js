// The console's entry point: one live store, three pages, hash routing, toasts.

import { LiveStore } from "./store.js";
import { PoliciesPage } from "./policies.js";
import { TopologyPage } from "./topology.js";
import { FlowsPage } from "./flows.js";
import { bits, esc } from "./format.js";

class App {
  constructor() {
    this.store = new LiveStore();
    this.pages = {
      policies: new PoliciesPage(document.getElementById("page-policies"), this.store, this),
      topology: new TopologyPage(document.getElementById("page-topology"), this.store, this),
      flows: new FlowsPage(document.getElementById("page-flows"), this.store, this),
    };
    window.addEventListener("hashchange", () => this.route());
    this.store.on("connection", (up) => this.connection(up));
    for (const topic of ["topology", "policies", "flows"]) this.store.on(topic, () => this.summary());
    this.route();
    this.store.start();
    window.vtap = this; // for the browser tests and the performance check
  }

  route() {
    const name = (location.hash || "#policies").slice(1).split("?")[0];
    const page = this.pages[name] ? name : "policies";
    for (const [key, p] of Object.entries(this.pages)) {
      p.el.hidden = key !== page;
      document.querySelector(`[data-tab="${key}"]`).classList.toggle("active", key === page);
    }
    this.current = page;
    if (this.pages[page].shown) this.pages[page].shown();
  }

  connection(up) {
    const el = document.getElementById("conn");
    el.classList.toggle("up", up);
    el.querySelector(".label").textContent = up ? "live" : "reconnecting…";
  }

  summary() {
    const topo = this.store.topology;
    const policies = Array.from(this.store.policies.values());
    const active = policies.filter((p) => p.status === "active").length;
    const copying = policies.reduce((sum, p) => sum + (p.copies ? p.copies.bps : 0), 0);
    const sw = topo ? topo.switches.filter((s) => s.connected).length : 0;
    document.getElementById("summary").innerHTML = `
      <span><b>${sw}</b>/${topo ? topo.switches.length : 0} switches</span>
      <span><b>${topo ? topo.hosts.length : 0}</b> hosts</span>
      <span><b>${active}</b>/${policies.length} policies active</span>
      <span><b>${this.store.flowTotal}</b> flows</span>
      <span>copying <b>${esc(bits(copying))}</b></span>`;
  }

  openPolicyForm(initial) {
    this.pages.policies.openForm(initial);
  }

  showOnTopology(policyId) {
    location.hash = "#topology";
    this.pages.topology.highlight(policyId);
  }

  toast(text) {
    const box = document.getElementById("toasts");
    const el = document.createElement("div");
    el.className = "toast";
    el.textContent = text;
    box.appendChild(el);
    setTimeout(() => el.remove(), 5000);
  }
}

new App();
