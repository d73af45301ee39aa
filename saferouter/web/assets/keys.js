import { api, copyText, el, micro, showError } from "/assets/app.js";

const status = document.getElementById("status");
const created = document.getElementById("created");

function limits(key) {
  const each = [key.rpm_limit && `${key.rpm_limit} rpm`, key.tpm_limit && `${key.tpm_limit} tpm`];
  return each.filter(Boolean).join(" · ") || "none";
}

// The create form's fields as POST /v1/keys takes them; an empty one is left out (no
// limit, unmetered, a user key). The gateway checks the values (as the CLI's flags).
function newKey() {
  const value = (id) => document.getElementById(id).value.trim();
  const limit = (id) => (value(id) ? { [`${id}_limit`]: Number(value(id)) } : {});
  return { name: value("name"), ...(value("credits") ? { credits_usd: value("credits") } : {}),
           ...limit("rpm"), ...limit("tpm"),
           ...(document.getElementById("role-admin").checked ? { role: "admin" } : {}) };
}

function when(seconds) { return seconds ? new Date(seconds * 1000).toLocaleString() : "never"; }

// Only admins manage SafeRouter keys; every key has its provider keys (byok.js).
async function load() {
  try {
    const admin = (await api("/v1/credits")).role === "admin";
    document.getElementById("admin").hidden = !admin;
    if (!admin) return;
    const keys = (await api("/v1/keys")).data;
    status.replaceChildren();
    document.querySelector("#keys tbody").replaceChildren(...keys.map(row));
  } catch (error) {
    document.getElementById("admin").hidden = error.status === 401; // no key: byok.js says so
    showError(status, error);
  }
}

function row(key) {
  const name = el("input", { value: key.name, ariaLabel: `Name of ${key.prefix}`, disabled: key.revoked });
  name.addEventListener("change", async () => {
    try { await api(`/v1/keys/${key.id}`, { method: "PATCH", body: { name: name.value } }); await load(); }
    catch (error) { showError(status, error); }
  });
  const revoke = el("button", { className: "danger", textContent: key.revoked ? "Revoked" : "Revoke",
                                disabled: key.revoked });
  revoke.addEventListener("click", async () => {
    if (!confirm(`Revoke ${key.name} (${key.prefix}…)? It stops working at once.`)) return;
    try { await api(`/v1/keys/${key.id}`, { method: "DELETE" }); await load(); }
    catch (error) { showError(status, error); }
  });
  return el("tr", { className: key.revoked ? "muted" : "" }, [
    el("td", {}, [name]), el("td", {}, [el("code", { textContent: `${key.prefix}…` })]),
    el("td", { textContent: key.role }), el("td", { className: "limits", textContent: limits(key) }),
    el("td", { textContent: key.metered ? micro(key.balance_micro_usd) : "unmetered" }),
    el("td", { textContent: `${key.usage.requests} req · ${micro(key.usage.cost_micro_usd)}` }),
    el("td", { textContent: when(key.last_used_at) }), el("td", {}, [revoke]),
  ]);
}

document.getElementById("create").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const key = await api("/v1/keys", { method: "POST", body: newKey() });
    const secret = el("code", { className: "secret", textContent: key.key });
    const copy = el("button", { className: "secondary", textContent: "Copy" });
    const said = el("span", { className: "small" });
    copy.addEventListener("click", () => copyText(key.key, { shown: secret, said }));
    created.replaceChildren(el("div", { className: "notice ok", role: "status" }, [
      el("strong", { textContent: `${key.role === "admin" ? "Admin key" : "Key"} “${key.name}” created. ` }),
      el("span", { textContent: "Copy it now: it will not be shown again. " }), secret, copy, said]));
    document.getElementById("create").reset();
    await load();
  } catch (error) {
    showError(created, error);
  }
});
document.addEventListener("keychange", load);
load();
