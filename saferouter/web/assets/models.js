import { apiKey, api, el, showError, usd } from "/assets/app.js";

const cards = document.getElementById("cards");
const search = document.getElementById("search");
const providerSelect = document.getElementById("provider");
const dialog = document.getElementById("try");
let models = [];
let current = null;
let tab = "curl";

function snippet(model, kind) {
  const base = `${location.origin}/v1`;
  const key = apiKey() || "sk-sr-…";
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

function openTry(model) {
  current = model;
  document.getElementById("try-title").textContent = `Try ${model.id}`;
  const tabs = document.getElementById("tabs");
  tabs.replaceChildren(...["curl", "python", "javascript"].map((kind) => {
    const button = el("button", { className: kind === tab ? "" : "secondary", textContent: kind,
                                  role: "tab" });
    button.addEventListener("click", () => { tab = kind; openTry(model); });
    return button;
  }));
  document.getElementById("snippet").textContent = snippet(model, tab);
  document.getElementById("copied").textContent = "";
  if (!dialog.open) dialog.showModal();
}

document.getElementById("copy").addEventListener("click", async () => {
  const text = snippet(current, tab);
  try {
    await navigator.clipboard.writeText(text);
    document.getElementById("copied").textContent = "Copied.";
  } catch {
    const range = document.createRange();
    range.selectNodeContents(document.getElementById("snippet"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    document.getElementById("copied").textContent = "Selected: press Ctrl+C.";
  }
});
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
  const shown = models.filter((m) => (!provider || m.provider === provider) &&
    (!query || `${m.id} ${m.name} ${m.provider_name}`.toLowerCase().includes(query)));
  cards.replaceChildren(...shown.map(card));
  document.getElementById("count").textContent = `${shown.length} of ${models.length}`;
}

async function load() {
  try {
    models = (await api("/v1/models")).data;
  } catch (error) {
    showError(document.getElementById("status"), error);
    return;
  }
  const providers = [...new Map(models.map((m) => [m.provider, m.provider_name])).entries()];
  providerSelect.append(...providers.map(([id, name]) => el("option", { value: id, textContent: name })));
  render();
}

search.addEventListener("input", render);
providerSelect.addEventListener("change", render);
load();
