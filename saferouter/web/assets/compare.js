import { api, el, markdown, streamChat } from "/assets/app.js";

const STORE = "saferouter.compare";
const columnsBox = document.getElementById("columns");
let selection = JSON.parse(localStorage.getItem(STORE) || '["demo", "demo-mini"]');
let models = [];

function save() { localStorage.setItem(STORE, JSON.stringify(selection)); }

function render() {
  columnsBox.replaceChildren(...selection.map((model, index) => {
    const select = el("select", { ariaLabel: `Model for column ${index + 1}` },
      (models.length ? models : [{ id: model }]).map((m) => el("option", { value: m.id, textContent: m.id,
                                                                             selected: m.id === model })));
    select.addEventListener("change", () => { selection[index] = select.value; save(); });
    const remove = el("button", { className: "secondary small", textContent: "×",
                                  ariaLabel: `Remove column ${index + 1}` });
    remove.addEventListener("click", () => { selection.splice(index, 1); save(); render(); });
    return el("section", { className: "panel" }, [
      el("div", { className: "row" }, [select, remove]),
      el("div", { className: "row small" }, [el("span", { className: "badge status", textContent: "waiting" }),
                                              el("span", { className: "muted timing" })]),
      el("div", { className: "content" }),
    ]);
  }));
  document.getElementById("add").disabled = selection.length >= 4;
}

async function run(prompt) {
  const columns = [...columnsBox.children];
  await Promise.all(columns.map(async (column, index) => {
    const badge = column.querySelector(".status");
    const timing = column.querySelector(".timing");
    const content = column.querySelector(".content");
    const started = performance.now();
    let first = null;
    let text = "";
    badge.textContent = "waiting"; badge.className = "badge status";
    content.replaceChildren();
    try {
      await streamChat({ model: selection[index], messages: [{ role: "user", content: prompt }] }, {
        onEvent: (event) => {
          const delta = event.choices?.[0]?.delta || {};
          if (first === null && (delta.content || delta.reasoning_content)) {
            first = performance.now() - started;
            badge.textContent = "streaming"; badge.className = "badge status warn";
          }
          text += typeof delta.content === "string" ? delta.content : "";
          content.innerHTML = markdown(text);
        },
      });
      badge.textContent = "done"; badge.className = "badge status ok";
    } catch (error) {
      badge.textContent = "error"; badge.className = "badge status bad";
      content.textContent = error.message;
    }
    const total = performance.now() - started;
    timing.textContent = `TTFT ${first === null ? "–" : Math.round(first) + " ms"} · total ${Math.round(total)} ms`;
  }));
}

document.getElementById("add").addEventListener("click", () => {
  if (selection.length < 4) { selection.push(selection.at(-1) || "demo"); save(); render(); }
});
document.getElementById("form").addEventListener("submit", (event) => {
  event.preventDefault();
  const prompt = document.getElementById("prompt").value.trim();
  if (prompt) run(prompt);
});
api("/v1/models").then((data) => { models = data.data; render(); }).catch(() => render());
render();
