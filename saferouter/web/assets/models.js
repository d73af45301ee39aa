import { api, el, KeySnippet, showError, usd } from "/assets/app.js";

const cards = document.getElementById("cards");
const search = document.getElementById("search");
const providerSelect = document.getElementById("provider");
const dialog = document.getElementById("try");
let models = [];
let tab = "curl";

function snippet(model, kind, key) {
  const base = `${location.origin}/v1`;
  if (kind === "curl") {
    return `curl ${base}/chat/completions \\
  -H "Authorization: Bearer ${key}" \\
  -H "Content-Type: application/json" \\
  -d '{"model": "${model.id}", "messages": [{"role": "user", "content": "Hello"}]}'`;
  }
  if (kind === "python") {
    return `from openai import OpenAI

client = OpenAI(base_url="${base}", api_key="${key}")
reply = client.chat.completions.create(
    model="${model.id}", messages=[{"role": "user", "content": "Hello"}])
print(reply.choices[0].message.content)`;
  }
  return `import OpenAI from "openai";

const client = new OpenAI({ baseURL: "${base}", apiKey: "${key}" });
const reply = await client.chat.completions.create({
  model: "${model.id}", messages: [{ role: "user", content: "Hello" }] });
console.log(reply.choices[0].message.content);`;
}

const shown = new KeySnippet({ code: document.getElementById("snippet"), reveal: document.getElementById("reveal"),
                               copy: document.getElementById("copy"), said: document.getElementById("copied") });

function openTry(model) {
  document.getElementById("try-title").textContent = `Try ${model.id}`;
  const tabs = document.getElementById("tabs");
  tabs.replaceChildren(...["curl", "python", "javascript"].map((kind) => {
    const button = el("button", { className: kind === tab ? "" : "secondary", textContent: kind,
                                  role: "tab" });
    button.addEventListener("click", () => { tab = kind; openTry(model); });
    return button;
  }));
  shown.show((key) => snippet(model, tab, key), { masked: !dialog.open }); // each opening starts masked
  if (!dialog.open) dialog.showModal();
}

document.getElementById("close").addEventListener("click", () => dialog.close());

function card(model) {
  const p = model.pricing;
  const badge = model.demo ? "demo" : model.provider_name;
  const available = el("span", { className: `badge ${model.available ? "ok" : "bad"}`,
                                 textContent: model.available ? "available" : "unavailable",
                                 title: model.availability });
  const tryIt = el("button", { className: "secondary", textContent: "Try it" });
  tryIt.addEventListener("click", () => openTry(model));
  return el("article", { className: "panel" }, [
    el("div", { className: "row" }, [el("strong", { textContent: model.id }),
                                      el("span", { className: "badge", textContent: badge }), available]),
    el("p", { className: "small muted", textContent: model.description || model.name }),
    el("div", { className: "small", textContent:
      `${(model.context_length || 0).toLocaleString()} context · ${(model.max_output_tokens || 0).toLocaleString()} max output` }),
    el("div", { className: "small", textContent:
      `per 1M: in ${usd(p.input)} · cached ${usd(p.cached_input)} · out ${usd(p.output)}` +
      (p.peak ? ` (peak ${usd(p.peak.input)} / ${usd(p.peak.output)})` : "") }),
    el("div", { className: "row small" }, model.capabilities.map((c) => el("span", { className: "badge", textContent: c }))),
    el("div", { className: "row", style: "margin-top:.5rem" }, [tryIt]),
  ]);
}

function render() {
  const query = search.value.trim().toLowerCase();
  const provider = providerSelect.value;
  const availableOnly = document.getElementById("available-only").checked;
  const listed = models.filter((m) => (!provider || m.provider === provider) &&
    (!availableOnly || m.available) &&
    (!query || `${m.id} ${m.name} ${m.provider_name}`.toLowerCase().includes(query)));
  cards.replaceChildren(...(listed.length ? listed.map(card) : [el("p", { className: "muted", id: "none",
    textContent: availableOnly && !models.some((m) => m.available && (!provider || m.provider === provider))
      ? "No model here is available: its provider's key is not set, or its circuit is open "
        + "(see each card). The operator sets a key; you can bring your own on the Keys page."
      : "No model matches." })]));
  document.getElementById("count").textContent = `${listed.length} of ${models.length}`;
}

async function load() {
  try {
    models = (await api("/v1/models")).data;
  } catch (error) {
    showError(document.getElementById("status"), error);
    return;
  }
  const providers = [...new Map(models.map((m) => [m.provider, m.provider_name])).entries()];
  const chosen = providerSelect.value;
  providerSelect.replaceChildren(el("option", { value: "", textContent: "All providers" }),
    ...providers.map(([id, name]) => el("option", { value: id, textContent: name })));
  providerSelect.value = chosen;
  render();
}

search.addEventListener("input", render);
providerSelect.addEventListener("change", render);
document.getElementById("available-only").addEventListener("change", render);
// what is available depends on the key: a provider it brought its own key for is
document.addEventListener("keychange", load);
load();
