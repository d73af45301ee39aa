// Shared by every page: the nav, the key (kept in localStorage, sent only to this
// gateway), API calls, and a small markdown renderer that never lets model output
// become HTML: everything is escaped first, then our own tags are added.

const KEY = "saferouter.key";
const PAGES = [
  ["/", "Home"], ["/models", "Models"], ["/chat", "Chat"], ["/compare", "Compare"],
  ["/activity", "Activity"], ["/keys", "Keys"], ["/credits", "Credits"], ["/verifier", "Verifier"],
];

export function apiKey() { return localStorage.getItem(KEY) || ""; }

// A key as a page shows it unless asked: its kind and last four characters, enough to
// tell keys apart and too little to use (a screen share, a screenshot, a shoulder).
const NO_KEY = "sk-sr-…"; // in a snippet when this browser holds no key
export function maskKey(key) { return key ? `${key.slice(0, 6)}…${key.slice(-4)}` : NO_KEY; }

// A code snippet holding the page's key: shown masked, a button reveals it, Copy copies
// the whole key. `textFor(key)` writes the snippet around a key.
export class KeySnippet {
  constructor({ code, reveal, copy, said }) {
    Object.assign(this, { code, reveal, said, revealed: false, textFor: () => "" });
    reveal.addEventListener("click", () => { this.revealed = !this.revealed; this.render(); });
    copy.addEventListener("click", () => this.copy());
    document.addEventListener("keychange", () => this.render());
  }

  // `masked`: start masked again (a dialog opened anew), else keep what was chosen
  show(textFor, { masked = false } = {}) {
    Object.assign(this, { textFor, revealed: this.revealed && !masked });
    this.said.textContent = "";
    this.render();
  }

  render() {
    this.reveal.hidden = !apiKey();
    this.reveal.textContent = this.revealed ? "Hide key" : "Show key";
    this.reveal.setAttribute("aria-pressed", String(this.revealed));
    this.code.textContent = this.textFor(this.revealed ? apiKey() || NO_KEY : maskKey(apiKey()));
  }

  async copy() {
    await copyText(this.textFor(apiKey() || NO_KEY), { shown: this.code, said: this.said,
      // selected by hand, the snippet must hold the whole key
      beforeSelect: () => { this.revealed = true; this.render(); } });
  }
}

// Copy `text` to the clipboard and say so in `said`. Where there is none — plain http
// from another host is not a secure context, so `navigator.clipboard` is undefined — or
// it refuses, the `shown` node (holding the text, once `beforeSelect` ran) is selected
// for Ctrl+C instead. Every page copies through here: none may throw on that path.
export async function copyText(text, { shown, said, beforeSelect = () => {} }) {
  try {
    await navigator.clipboard.writeText(text);
    said.textContent = "Copied.";
  } catch {
    beforeSelect();
    const range = document.createRange();
    range.selectNodeContents(shown);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    said.textContent = "Selected: press Ctrl+C.";
  }
}

export function renderNav() {
  const header = document.createElement("header");
  header.className = "nav";
  const brand = el("a", { className: "brand", href: "/", textContent: "SafeRouter" });
  const nav = el("nav", { ariaLabel: "Pages" });
  for (const [path, name] of PAGES) {
    const link = el("a", { href: path, textContent: name });
    if (location.pathname === path) link.setAttribute("aria-current", "page");
    nav.append(link);
  }
  const box = el("form", { className: "keybox" });
  const input = el("input", { type: "password", placeholder: "sk-sr-… (your key)", value: apiKey(),
                              ariaLabel: "API key", autocomplete: "off" });
  const save = el("button", { type: "submit", className: "secondary", textContent: "Use key" });
  const shown = el("span", { className: "small muted" });
  const refresh = () => { shown.textContent = apiKey() ? `key ${apiKey().slice(0, 10)}…` : "no key"; };
  box.addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem(KEY, input.value.trim());
    refresh();
    document.dispatchEvent(new CustomEvent("keychange"));
  });
  refresh();
  box.append(input, save, shown);
  header.append(brand, nav, box);
  document.body.prepend(header);
}

export function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "ariaLabel") node.setAttribute("aria-label", value);
    else if (name in node) node[name] = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { "Content-Type": "application/json" };
  if (apiKey()) headers.Authorization = `Bearer ${apiKey()}`;
  const response = await fetch(path, { method, headers, signal,
                                        body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// Prices and costs arrive as exact decimal strings ("0.6", "0.0028"): shown as they are,
// with at least two decimals, never through a float.
export function usd(text) {
  const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(String(text));
  if (!match) return String(text);
  const [, sign, whole, fraction = ""] = match;
  if (/^0*$/.test(whole + fraction)) return "$0";
  return `${sign}$${whole}.${fraction.padEnd(2, "0")}`;
}

// micro-USD (an integer) as an exact decimal string
export function micro(value) {
  const n = Math.trunc(value || 0);
  const sign = n < 0 ? "-" : "";
  const digits = String(Math.abs(n)).padStart(7, "0");
  return usd(`${sign}${digits.slice(0, -6)}.${digits.slice(-6)}`.replace(/\.?0+$/, "") || "0");
}

export function showError(target, error) {
  target.replaceChildren(el("div", { className: "notice bad", role: "alert",
                                     textContent: error.message || String(error) }));
}

// Streams SSE events of a chat completion: calls onEvent(json) for each data event.
export async function streamChat(body, { signal, onEvent, onHeaders }) {
  const headers = { "Content-Type": "application/json" };
  if (apiKey()) headers.Authorization = `Bearer ${apiKey()}`;
  const response = await fetch("/v1/chat/completions", {
    method: "POST", headers, signal, body: JSON.stringify({ ...body, stream: true }),
  });
  if (onHeaders) onHeaders(response.headers);
  if (!response.ok) {
    let data = null;
    try { data = await response.json(); } catch { data = null; }
    throw new ApiError(response.status, data);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const raw = buffer.slice(0, cut);
      buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
      const data = raw.split(/\r?\n/).filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
      if (!data || data === "[DONE]") continue;
      let event;
      try { event = JSON.parse(data); } catch { continue; }
      if (event.error) throw new ApiError(502, event);
      onEvent(event);
    }
  }
}

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export function escapeHtml(text) { return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]); }

// A text cut at its fenced code blocks (```lang … ```, the last one possibly unclosed):
// [{ text }, { code, lang }, { text }, …]. Model output and the user's own words both.
export function fences(source) {
  // "\r\n" (some upstreams' line ends) read as "\n": a CR left in is a blank first line
  // in a code block and a stray space at each line's end
  const parts = String(source).replace(/\r\n?/g, "\n").split(/```([\w-]*)\n?([\s\S]*?)(?:```|$)/);
  const pieces = [];
  for (let i = 0; i < parts.length; i += 3) {
    pieces.push({ text: parts[i] });
    if (i + 2 < parts.length) pieces.push({ code: parts[i + 2], lang: parts[i + 1] || "" });
  }
  return pieces;
}

// Markdown subset: fenced code, inline code, bold, italic, headings, lists, links
// (http/https only). Input is escaped before any tag is added.
export function markdown(source) {
  return fences(source).map((piece) => piece.code === undefined ? blocks(piece.text)
    : `<pre><code data-lang="${escapeHtml(piece.lang)}">${escapeHtml(piece.code)}</code></pre>`).join("");
}

// What a person typed, as text nodes only (never HTML): its line breaks kept (the
// stylesheet's pre-wrap) and its fenced code blocks shown as code.
export function plainText(source) {
  const pieces = fences(source);
  return pieces.map((piece, i) => {
    if (piece.code !== undefined) return el("pre", {}, [el("code", { textContent: piece.code, "data-lang": piece.lang })]);
    // the line breaks around a fence are the fence's own, not blank lines of the text
    const text = piece.text.replace(i > 0 ? /^\n/ : /^/, "").replace(i < pieces.length - 1 ? /\n$/ : /$/, "");
    return text && el("div", { className: "typed", textContent: text });
  }).filter(Boolean);
}

function blocks(text) {
  const out = [];
  let list = null;
  for (const line of escapeHtml(text).split("\n")) {
    const item = line.match(/^\s*[-*] (.*)$/);
    if (item) { (list ||= []).push(`<li>${inline(item[1])}</li>`); continue; }
    if (list) { out.push(`<ul>${list.join("")}</ul>`); list = null; }
    const heading = line.match(/^(#{1,3}) (.*)$/);
    if (heading) out.push(`<h${heading[1].length + 2}>${inline(heading[2])}</h${heading[1].length + 2}>`);
    else if (line.trim()) out.push(`<p>${inline(line)}</p>`);
  }
  if (list) out.push(`<ul>${list.join("")}</ul>`);
  return out.join("");
}

function inline(text) {
  return text
    .replace(/`([^`]+)`/g, "<code>$1</code>")
    .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^*])\*([^*]+)\*/g, "$1<em>$2</em>")
    .replace(/\[([^\]]+)\]\((https?:\/\/[^\s)]+)\)/g,
             '<a href="$2" rel="noopener noreferrer" target="_blank">$1</a>');
}

renderNav();
