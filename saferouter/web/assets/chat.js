import { api, el, markdown, plainText, showError, streamChat } from "/assets/app.js";

const STORE = "saferouter.conversations";
const messagesBox = document.getElementById("messages");
const prompt = document.getElementById("prompt");
const send = document.getElementById("send");
const stop = document.getElementById("stop");
const picker = document.getElementById("picker");
const drawer = document.getElementById("drawer");
const status = document.getElementById("status");
let conversations = JSON.parse(localStorage.getItem(STORE) || "[]");
let current = conversations[0] || null;
let models = [];
let controller = null;

function save() { localStorage.setItem(STORE, JSON.stringify(conversations)); }

function newConversation(model = current?.model || "demo") {
  current = { id: crypto.randomUUID(), title: "New conversation", model, messages: [] };
  conversations.unshift(current);
  save();
  render();
}

function renderList() {
  const list = document.getElementById("list");
  list.replaceChildren(...conversations.map((c) => {
    const open = el("button", { className: c === current ? "" : "secondary", textContent: c.title });
    open.addEventListener("click", () => { current = c; render(); });
    const rename = el("button", { className: "secondary small", textContent: "Rename",
                                  ariaLabel: `Rename ${c.title}` });
    rename.addEventListener("click", () => {
      const title = window.prompt("New name", c.title);
      if (title) { c.title = title.slice(0, 80); save(); renderList(); }
    });
    const remove = el("button", { className: "secondary small", textContent: "Delete",
                                  ariaLabel: `Delete ${c.title}` });
    remove.addEventListener("click", () => {
      conversations = conversations.filter((x) => x !== c);
      if (current === c) current = conversations[0] || null;
      save();
      render();
    });
    return el("div", {}, [open, el("div", { className: "row" }, [rename, remove])]);
  }));
}

function messageNode(message) {
  const node = el("div", { className: `message ${message.role}` });
  node.append(el("div", { className: "meta", textContent:
    message.role === "user" ? "you" : (message.model || "assistant") + (message.note ? ` · ${message.note}` : "") }));
  if (message.reasoning) {
    const details = el("details", { className: "thinking" }, [
      el("summary", { textContent: message.done ? "Thinking" : "Thinking…" })]);
    const body = el("div", { className: "small" });
    body.innerHTML = markdown(message.reasoning);
    details.append(body);
    if (!message.done) details.open = true;
    node.append(details);
  }
  const content = el("div", { className: "content" });
  if (message.role === "user") content.replaceChildren(...plainText(message.content));
  else content.innerHTML = markdown(message.content || "");
  node.append(content);
  if (message.receipt) {
    // The verifier page checks it (one implementation of every check, kept in that one
    // self-contained file); on this gateway it fetches the receipt with this page's key.
    node.append(el("a", { className: "receipt small", href: `/verifier?receipt=${encodeURIComponent(message.receipt)}`,
                          target: "_blank", rel: "noopener", textContent: "receipt",
                          title: "Who saw this prompt, what it cost, verified in your browser" }));
  }
  return node;
}

function renderMessages() {
  messagesBox.replaceChildren(...(current?.messages || []).map(messageNode));
  messagesBox.lastElementChild?.scrollIntoView({ block: "end" });
}

function render() {
  if (!current) { newConversation(); return; }
  picker.textContent = `model: ${current.model}`;
  renderList();
  renderMessages();
}

async function ask(text) {
  const userMessage = { role: "user", content: text };
  const answer = { role: "assistant", content: "", reasoning: "", model: current.model, done: false };
  current.messages.push(userMessage, answer);
  if (current.title === "New conversation") current.title = text.slice(0, 40);
  save();
  render();
  controller = new AbortController();
  send.disabled = true;
  stop.disabled = false;
  status.replaceChildren();
  const history = current.messages.slice(0, -1).map((m) => ({ role: m.role, content: m.content }));
  try {
    await streamChat({ model: current.model, messages: history }, {
      signal: controller.signal,
      onHeaders: (headers) => {
        const from = headers.get("x-saferouter-fallback-from");
        const to = headers.get("x-saferouter-fallback-to");
        if (from && to) {
          answer.note = `fallback: ${from} → ${to}`;
          document.getElementById("fallback").textContent = answer.note;
        }
        answer.model = headers.get("x-saferouter-model") || answer.model;
        answer.receipt = headers.get("x-saferouter-receipt") || undefined;
      },
      onEvent: (event) => {
        const delta = event.choices?.[0]?.delta || {};
        answer.reasoning += delta.reasoning_content || delta.reasoning || "";
        answer.content += typeof delta.content === "string" ? delta.content : "";
        renderMessages();
      },
    });
  } catch (error) {
    if (error.name === "AbortError") answer.note = "stopped";
    else showError(status, error);
  } finally {
    answer.done = true;
    controller = null;
    send.disabled = false;
    stop.disabled = true;
    save();
    renderMessages();
  }
}

document.getElementById("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = prompt.value.trimEnd(); // a first line's indentation is kept (code)
  if (!text.trim() || controller) return;
  prompt.value = "";
  ask(text);
});
prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    document.getElementById("composer").requestSubmit();
  }
});
stop.addEventListener("click", () => controller?.abort());
document.getElementById("new").addEventListener("click", () => newConversation());

function renderChoices() {
  const query = document.getElementById("filter").value.toLowerCase();
  document.getElementById("choices").replaceChildren(...models
    .filter((m) => m.id.toLowerCase().includes(query) || m.name.toLowerCase().includes(query))
    .map((m) => {
      const choose = el("button", { className: m.id === current.model ? "" : "secondary",
        textContent: `${m.id}${m.available ? "" : " (unavailable)"}` });
      choose.addEventListener("click", () => { current.model = m.id; save(); drawer.close(); render(); });
      return choose;
    }));
}
picker.addEventListener("click", async () => {
  if (!models.length) {
    try { models = (await api("/v1/models")).data; } catch (error) { showError(status, error); return; }
  }
  renderChoices();
  drawer.showModal();
  document.getElementById("filter").focus();
});
document.getElementById("filter").addEventListener("input", renderChoices);
// what is available depends on the key (its own provider keys): asked again after a change
document.addEventListener("keychange", () => { models = []; });
document.getElementById("drawer-close").addEventListener("click", () => drawer.close());
render();
