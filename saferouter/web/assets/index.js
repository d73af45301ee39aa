import { el, KeySnippet } from "/assets/app.js";

const base = `${location.origin}/v1`;
const code = el("code", { id: "quickstart-code" });
const reveal = el("button", { className: "secondary", id: "quickstart-reveal" });
const copy = el("button", { className: "secondary", textContent: "Copy" });
const said = el("span", { className: "small muted" });
document.getElementById("quickstart").append(
  el("p", { textContent: "Point any OpenAI SDK at SafeRouter: change only the base URL and the key." }),
  el("pre", {}, [code]), el("div", { className: "row" }, [copy, reveal, said]),
  el("p", { className: "small muted",
            textContent: "The demo model needs no provider key. Set DEEPSEEK_API_KEY or ZAI_API_KEY on the gateway for real models." }),
);
new KeySnippet({ code, reveal, copy, said }).show((key) =>
`from openai import OpenAI

client = OpenAI(base_url="${base}", api_key="${key}")
reply = client.chat.completions.create(
    model="demo", messages=[{"role": "user", "content": "Hello"}])
print(reply.choices[0].message.content)`);

const ROADMAP = [
  ["OpenAI-compatible chat, streaming byte for byte, catalog routing, demo provider", "shipped"],
  ["Keys, credits that cannot be overspent, exact stream billing, activity, rate limits", "shipped"],
  ["Fallback chains raced in a nursery, hedging, circuit breaking, honest streams", "shipped"],
  ["AMD SEV-SNP reports, chain verification, sealing, demo attester", "shipped"],
  ["Quotes, transparency log, signed audit log, saferouter verify", "shipped"],
  ["Web pages: models, chat, compare, activity, keys, credits", "shipped"],
  ["Verifier page: every check of saferouter verify, in the browser (WebCrypto)", "shipped"],
  ["Performance push: raw ASGI hot path, lean upstream client", "coming"],
  ["PostgreSQL store for several replicas", "coming"],
];
const body = document.querySelector("#roadmap tbody");
for (const [what, state] of ROADMAP) {
  const cls = state === "shipped" ? "ok" : state === "in flight" ? "warn" : "";
  body.append(el("tr", {}, [el("td", { textContent: what }),
                            el("td", {}, [el("span", { className: `badge ${cls}`, textContent: state })])]));
}
