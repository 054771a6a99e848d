// REST calls. Errors come back as {status, detail} so forms can place a 422 at its field.

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

// The API token: from the login link (?token=…) or asked for once, kept for this tab only.
const KEY = "vtap-token";

export function token() {
  const url = new URL(location.href);
  const given = url.searchParams.get("token");
  if (given) {
    sessionStorage.setItem(KEY, given);
    url.searchParams.delete("token"); // out of the address bar and the history
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  let current = sessionStorage.getItem(KEY);
  if (!current) {
    current = (window.prompt("vtap access token (vtap token create --role viewer)") || "").trim();
    if (current) sessionStorage.setItem(KEY, current);
  }
  return current || "";
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
}

async function call(method, path, body) {
  const init = { method, headers: { Authorization: `Bearer ${token()}` } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(`api/v1${path}`, init);
  if (res.status === 401) forgetToken(); // asked again on the next call
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data ? data.detail : res.statusText);
  return data;
}

export const api = {
  get: (path) => call("GET", path),
  post: (path, body) => call("POST", path, body),
  patch: (path, body) => call("PATCH", path, body),
  del: (path) => call("DELETE", path),
};
