// The policy form (create and edit). Nothing is validated here on purpose: the API is the one
// place that knows the rules, and its 422 names the field, so its message is shown there.

import { api, ApiError } from "./api.js";
import { esc } from "./format.js";

const FIELDS = [
  { name: "name", label: "Name", hint: "letters, digits, . _ -", span: 2 },
  { group: "Source" },
  { name: "src_mac", label: "Source MAC", hint: "aa:bb:cc:dd:ee:ff", hostList: "mac" },
  { name: "src_ip", label: "Source IP", hint: "10.0.0.1", hostList: "ip" },
  { group: "Destination" },
  { name: "dst_mac", label: "Destination MAC", hostList: "mac" },
  { name: "dst_ip", label: "Destination IP", hostList: "ip" },
  { group: "Match" },
  { name: "ip_proto", label: "IP protocol", hint: "6 TCP · 17 UDP · 1 ICMP", number: true, list: "protos" },
  { name: "vlan_id", label: "VLAN id", hint: "1–4094", number: true },
  { name: "src_port", label: "Source port", number: true },
  { name: "dst_port", label: "Destination port", number: true },
  { group: "Monitor" },
  { name: "monitor_mac", label: "Monitor MAC", hostList: "mac" },
  { name: "monitor_ip", label: "Monitor IP", hostList: "ip" },
  { name: "delivery", label: "Delivery", select: ["tagged", "rewrite"], hint: "tagged: copies keep every header" },
  { name: "enabled", label: "Enabled", checkbox: true },
];

const SPEC = FIELDS.filter((f) => f.name).map((f) => f.name);

function value(field, input) {
  if (field.checkbox) return input.checked;
  const text = input.value.trim();
  if (text === "") return field.name === "delivery" ? "tagged" : null;
  if (field.number && /^\d+$/.test(text)) return Number(text);
  return text;
}

/** Open the form. `initial` prefills it; `policy` (with an id) makes it an edit. */
export function openPolicyForm({ initial = {}, policy = null, hosts = [], onSaved = () => {} } = {}) {
  const root = document.getElementById("modal-root");
  const editing = policy !== null;
  const start = { enabled: true, delivery: "tagged", ...(policy || {}), ...initial };
  const macs = hosts.map((h) => `<option value="${esc(h.mac)}">${esc(h.name || h.ip || "")}</option>`).join("");
  const ips = hosts.filter((h) => h.ip).map((h) => `<option value="${esc(h.ip)}">${esc(h.name || h.mac)}</option>`).join("");

  const fieldHtml = FIELDS.map((f) => {
    if (f.group) return `<div class="form-group-title">${f.group}</div>`;
    const v = start[f.name];
    const id = `pf-${f.name}`;
    let control;
    if (f.checkbox) {
      control = `<label class="check"><input type="checkbox" id="${id}" name="${f.name}" ${v !== false ? "checked" : ""}> copy while enabled</label>`;
    } else if (f.select) {
      control = `<select id="${id}" name="${f.name}">${f.select.map((o) => `<option ${o === v ? "selected" : ""}>${o}</option>`).join("")}</select>`;
    } else {
      const list = f.hostList ? `list="pf-hosts-${f.hostList}"` : f.list ? `list="pf-${f.list}"` : "";
      control = `<input id="${id}" name="${f.name}" autocomplete="off" spellcheck="false" ${list} placeholder="${esc(f.hint || "any")}" value="${esc(v ?? "")}">`;
    }
    return `<div class="field ${f.span ? "span2" : ""}" data-field="${f.name}">
      <label for="${id}">${f.label}</label>${control}
      <div class="field-error" data-error-for="${f.name}" role="alert"></div></div>`;
  }).join("");

  root.innerHTML = `
    <div class="modal-backdrop">
      <form class="modal policy-form" novalidate aria-label="${editing ? "Edit" : "New"} policy">
        <header><h2>${editing ? `Edit policy <span class="dim">#${policy.id}</span>` : "New TAP policy"}</h2>
          <button type="button" class="icon" data-close aria-label="Close">✕</button></header>
        <p class="form-note">Empty fields are wildcards. A policy needs a monitor and a source or a destination.</p>
        <div class="form-error" role="alert" hidden></div>
        <div class="form-grid">${fieldHtml}</div>
        <datalist id="pf-hosts-mac">${macs}</datalist>
        <datalist id="pf-hosts-ip">${ips}</datalist>
        <datalist id="pf-protos"><option value="6">TCP</option><option value="17">UDP</option><option value="1">ICMP</option></datalist>
        <footer><button type="button" class="secondary" data-close>Cancel</button>
          <button type="submit" class="primary">${editing ? "Save changes" : "Create policy"}</button></footer>
      </form>
    </div>`;
  const form = root.querySelector("form");
  const close = () => {
    root.innerHTML = "";
  };
  root.querySelectorAll("[data-close]").forEach((b) => b.addEventListener("click", close));
  root.querySelector(".modal-backdrop").addEventListener("mousedown", (e) => {
    if (e.target.classList.contains("modal-backdrop")) close();
  });
  form.addEventListener("keydown", (e) => {
    if (e.key === "Escape") close();
  });

  const clearErrors = () => {
    form.querySelectorAll(".field-error").forEach((el) => {
      el.textContent = "";
    });
    form.querySelectorAll(".field.invalid").forEach((el) => el.classList.remove("invalid"));
    const top = form.querySelector(".form-error");
    top.hidden = true;
    top.textContent = "";
  };

  const showErrors = (err) => {
    const top = form.querySelector(".form-error");
    const general = [];
    if (Array.isArray(err.detail)) {
      for (const d of err.detail) {
        const loc = d.loc || [];
        const field = loc.find((part) => SPEC.includes(part));
        const slot = field && form.querySelector(`[data-error-for="${field}"]`);
        if (slot) {
          slot.textContent = slot.textContent ? `${slot.textContent}; ${d.msg}` : d.msg;
          slot.closest(".field").classList.add("invalid");
        } else {
          general.push(d.msg);
        }
      }
    } else {
      general.push(String(err.detail || err.message));
    }
    if (general.length) {
      top.textContent = general.join("; ");
      top.hidden = false;
    }
    const firstBad = form.querySelector(".field.invalid input, .field.invalid select");
    if (firstBad) firstBad.focus();
  };

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors();
    const body = {};
    for (const f of FIELDS) {
      if (!f.name) continue;
      body[f.name] = value(f, form.elements[f.name]);
    }
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    submit.textContent = editing ? "Saving…" : "Creating…";
    try {
      const saved = editing
        ? await api.patch(`/policies/${policy.id}`, body)
        : await api.post("/policies", body);
      close();
      onSaved(saved);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      showErrors(err);
      submit.disabled = false;
      submit.textContent = editing ? "Save changes" : "Create policy";
    }
  });
  const focus = initial.monitor_ip === undefined && !editing && Object.keys(initial).length ? "monitor_ip" : "name";
  form.elements[focus].focus();
}
