import { api, el, micro, showError } from "/assets/app.js";

const status = document.getElementById("status");

function stat(label, value) { return el("div", { className: "stat" }, [el("span", { className: "small muted", textContent: label }), el("b", { textContent: value })]); }

async function load() {
  try {
    const credits = await api("/v1/credits");
    status.replaceChildren();
    document.getElementById("summary").replaceChildren(
      stat("Balance", credits.metered ? micro(credits.balance_micro_usd) : "unmetered"),
      stat("Reserved", micro(credits.reserved_micro_usd)),
      stat("Spent", micro(credits.spent_micro_usd)),
      stat("Topped up", micro(credits.topped_up_micro_usd)),
      // admins: what providers billed beyond the reservations, the operator's loss
      ...(credits.gateway_overrun_micro_usd === undefined ? [] : [stat("Gateway overrun", micro(credits.gateway_overrun_micro_usd))]));
    document.querySelector("#models tbody").replaceChildren(...credits.by_model.map((m) => el("tr", {}, [
      el("td", { textContent: m.model }), el("td", { textContent: m.requests }),
      el("td", { textContent: m.prompt_tokens }), el("td", { textContent: m.completion_tokens }),
      el("td", { textContent: micro(m.cost_micro_usd) })])));
    if (credits.role !== "admin") {
      document.getElementById("topup-section").hidden = true;
      return;
    }
  } catch (error) {
    showError(status, error);
    return;
  }
  try {
    const keys = (await api("/v1/keys")).data.filter((k) => !k.revoked);
    const select = document.getElementById("topup-key");
    select.replaceChildren(...keys.map((k) => el("option", { value: k.id, textContent: `${k.name} (${k.prefix}…)${k.metered ? "" : ", unmetered"}` })));
    document.getElementById("topup-section").hidden = false;
  } catch (error) {
    showError(document.getElementById("topup-status"), error);
  }
}

document.getElementById("topup").addEventListener("submit", async (event) => {
  event.preventDefault();
  const out = document.getElementById("topup-status");
  try {
    const result = await api("/v1/credits/topup", { method: "POST", body: {
      key_id: document.getElementById("topup-key").value,
      amount_usd: document.getElementById("amount").value.trim(),
      make_metered: document.getElementById("make-metered").checked } });
    out.replaceChildren(el("div", { className: "notice ok", textContent: `Balance now ${micro(result.balance_micro_usd)}.` }));
    await load();
  } catch (error) {
    showError(out, error);
  }
});
document.addEventListener("keychange", load);
load();
