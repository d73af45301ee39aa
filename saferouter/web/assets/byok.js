// "Your provider keys" on the Keys page, for any SafeRouter key.
// Adding one: (1) verify the gateway with the verifier page's own checks, run in a hidden
// same-origin frame of /verifier (one copy of them, not two); (2) seal the provider key in
// this browser to the byok_public_key of the quote just verified; (3) upload only the
// sealed box, with the SafeRouter key, to this gateway (the key the pages keep is sent
// nowhere else). The provider key is held only by its input and add()'s locals: never in
// localStorage, the URL (the inputs have no name, so a form submitted without script
// carries none of them) or the console; the input is emptied as soon as it is sealed.
import { api, apiKey, el, showError } from "/assets/app.js";
import { base64, fingerprint, ownerOf, publicKeyFromHex, seal } from "/assets/sealedbox.js";

const $ = (id) => document.getElementById(id);
const status = $("byok-status");
let verified = null; // what the last passing verification attested: { publicKey, measurement, destinations }
let names = {}; // provider id → name

// The verifier page's API, from a hidden frame loaded once.
let verifierFrame = null;
function openVerifier() {
  verifierFrame ||= new Promise((resolve, reject) => {
    const frame = el("iframe", { src: "/verifier", hidden: true, title: "Gateway verifier" });
    frame.addEventListener("load", () => {
      let api = null;
      try { api = frame.contentWindow.SafeRouterVerifier; } catch { api = null; }
      if (api) resolve(api);
      else { verifierFrame = null; frame.remove(); reject(new Error("The verifier page (/verifier) could not be loaded.")); }
    });
    document.body.append(frame);
  });
  return verifierFrame;
}

function showStep(n, name, state, detail) {
  const li = el("li", {}, [
    el("span", { className: { true: "ok", false: "bad", unchecked: "warn" }[state], textContent: { true: "✓ ", false: "✗ ", unchecked: "– " }[state] }),
    el("strong", { textContent: `(${n}) ${name}: ` }), el("span", { textContent: detail })]);
  li.dataset.step = n;
  li.dataset.ok = state;
  $("byok-steps").append(li);
}

function setVerdict(result, text, cls) {
  const verdict = $("byok-verdict");
  verdict.textContent = text;
  verdict.className = `verdict ${cls}`;
  verdict.dataset.result = result;
}

function forget() {
  verified = null;
  $("byok-add").hidden = true;
}

async function verify(event) {
  event.preventDefault();
  forget();
  status.replaceChildren();
  $("byok-steps").replaceChildren();
  setVerdict("", "Verifying…", "");
  const base = $("byok-url").value.trim().replace(/\/+$/, "");
  let ctx;
  try {
    new URL(base);
    const verifier = await openVerifier();
    ctx = await verifier.runChecks(base, { expected: "", allowDemo: $("byok-allow-demo").checked, audience: "" }, showStep);
  } catch (error) {
    showStep(1, "status", "false", error.message);
    ctx = { passed: false };
  }
  if (!ctx.passed) return setVerdict("failed", "FAILED: nothing will be sealed to this gateway", "bad");
  const attested = ctx.attested; // only what every step verified
  try {
    if (!attested.byok_public_key) throw new Error("This gateway attests no BYOK key: it cannot take sealed provider keys.");
    const publicKey = publicKeyFromHex(attested.byok_public_key);
    // The upload goes to this page's gateway; a key sealed to another one would not open there.
    const here = await api("/v1/byok");
    if (here.byok_public_key !== attested.byok_public_key)
      throw new Error(`The gateway verified holds BYOK key ${attested.byok_public_key.slice(0, 16)}…, the one this page uploads to (${location.origin}) ${String(here.byok_public_key).slice(0, 16)}…: open the Keys page of the gateway you verified.`);
    const destinations = await measuredDestinations(await openVerifier(), base, attested.measurement);
    verified = { publicKey, measurement: attested.measurement, destinations };
  } catch (error) {
    showError(status, error);
    return setVerdict("failed", "FAILED: nothing will be sealed to this gateway", "bad");
  }
  const notes = ctx.unchecked ? " (TLS key not checked in the browser)" : "";
  if (ctx.root === "DEMO") setVerdict("demo", `DEMO — no hardware guarantee${notes}`, "warn");
  else setVerdict("verified", `VERIFIED${notes}`, "ok");
  const where = Object.entries(verified.destinations).map(([id, url]) => `${names[id] || id} → ${url}`).join("; ");
  status.replaceChildren(el("p", { className: "small", textContent: `Keys you add are sealed to ${attested.byok_public_key.slice(0, 16)}…, held by measurement ${attested.measurement.slice(0, 16)}…. As measured, requests with them go to: ${where}.` }));
  $("byok-add").hidden = false;
}

// Where the attested build sends each provider's requests — and so a key: read from the
// measured document once it hashes to the attested measurement (as `saferouter byok add`
// does, saferouter/byok/destination.py), so an operator cannot point a build elsewhere
// unseen. Providers that take no key (the demo) are left out.
async function measuredDestinations(verifier, base, measurement) {
  const response = await fetch(`${base}/attestation/measurement`);
  if (!response.ok) throw new Error(`/attestation/measurement answered ${response.status}`);
  const { document: measured } = await response.json();
  const digest = verifier.hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier.canonical(measured))));
  if (digest !== measurement) throw new Error(`The measured document hashes to ${digest.slice(0, 16)}…, not the attested measurement ${measurement.slice(0, 16)}….`);
  const destinations = {};
  for (const [id, provider] of Object.entries(measured.config.providers))
    if (provider.api_key_env) destinations[id] = provider.base_url;
  return destinations;
}

// https anywhere, or plain http to this machine (as destination.may_carry_a_key).
function mayCarryAKey(url) {
  let parsed;
  try { parsed = new URL(url); } catch { return false; }
  if (parsed.protocol === "https:") return Boolean(parsed.hostname);
  const host = parsed.hostname;
  return parsed.protocol === "http:" && (host === "localhost" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host));
}

async function add(event) {
  event.preventDefault();
  const input = $("byok-key"), provider = $("byok-provider").value;
  let sealed, computed;
  const destination = verified.destinations[provider];
  try {
    if (destination === undefined) throw new Error(`The attested build takes no key for ${names[provider] || provider}.`);
    if (!mayCarryAKey(destination)) throw new Error(`The attested build sends ${names[provider] || provider} requests to ${destination}: your key would cross the network in the clear. Nothing was sealed.`);
    const providerKey = input.value.trim();
    // bound to the SafeRouter key that uploads it and to this provider
    sealed = seal(verified.publicKey, providerKey, { owner: await ownerOf(apiKey()), provider }); // refuses a malformed key first
    computed = await fingerprint(providerKey);
  } catch (error) {
    return showError(status, error);
  } finally {
    input.value = "";
    $("byok-fingerprint").textContent = "";
  }
  status.replaceChildren(el("p", { className: "small", textContent: `Sealed ${computed} for ${names[provider] || provider} to measurement ${verified.measurement.slice(0, 16)}…; its requests go to ${destination} (as measured); uploading…` }));
  try {
    const stored = await api(`/v1/byok/${encodeURIComponent(provider)}`, { method: "PUT",
      body: { sealed_key: base64(sealed), byok_fallback: $("byok-fallback").checked } });
    if (stored.fingerprint !== computed)
      throw new Error(`The gateway holds a key with fingerprint ${stored.fingerprint}, not the ${computed} sealed here: remove it and add yours again.`);
    status.replaceChildren(el("div", { className: "notice ok", role: "status",
      textContent: `Stored your ${names[provider] || provider} key, fingerprint ${stored.fingerprint} (as computed in this browser).` }));
  } catch (error) {
    showError(status, error);
  }
  await list();
}

// What the key will be known by, before anything is sent: shown for the whole key only
// (on `change`), never per keystroke — a fingerprint of every prefix would let a screen
// recording rebuild the key a character at a time against the 48-bit tag.
async function preview() {
  const typed = $("byok-key").value.trim();
  const shown = typed ? `fingerprint ${await fingerprint(typed)}` : "";
  if ($("byok-key").value.trim() === typed) $("byok-fingerprint").textContent = shown;
}

async function list() {
  let listing;
  try { listing = await api("/v1/byok"); }
  catch (error) { return showError(status, error.status === 401 ? new Error("Enter your SafeRouter key above to see and add your provider keys.") : error); }
  names = Object.fromEntries(listing.providers.map((p) => [p.id, p.name]));
  const select = $("byok-provider"), chosen = select.value;
  select.replaceChildren(...listing.providers.map((p) => el("option", { value: p.id, textContent: p.name })));
  if (chosen in names) select.value = chosen;
  document.querySelector("#byok-keys tbody").replaceChildren(...listing.data.map(row));
}

function row(key) {
  const name = names[key.provider] || key.provider;
  const fallback = el("input", { type: "checkbox", checked: key.byok_fallback, ariaLabel: `Operator fallback for ${name}` });
  fallback.addEventListener("change", () => act(`/v1/byok/${encodeURIComponent(key.provider)}`, { method: "PATCH", body: { byok_fallback: fallback.checked } }));
  const remove = el("button", { className: "danger", textContent: "Remove" });
  remove.addEventListener("click", () => {
    if (confirm(`Remove your ${name} key (${key.fingerprint})? Requests go back to the operator's key.`))
      act(`/v1/byok/${encodeURIComponent(key.provider)}`, { method: "DELETE" });
  });
  const state = key.usable ? el("span", { className: "badge ok", textContent: "usable" })
    : el("span", { className: "badge bad", textContent: "sealed to another build — re-add" });
  return el("tr", { "data-provider": key.provider }, [
    el("td", { textContent: name }), el("td", {}, [el("code", { textContent: key.fingerprint })]),
    el("td", {}, [el("code", { textContent: `${key.sealed_for_measurement.slice(0, 16)}…`, title: key.sealed_for_measurement })]),
    el("td", {}, [fallback]), el("td", {}, [state]), el("td", {}, [remove])]);
}

async function act(path, init) {
  try { await api(path, init); status.replaceChildren(); }
  catch (error) { showError(status, error); }
  await list();
}

$("byok-url").value = location.origin;
$("byok-allow-demo").checked = false; // off on every load, whatever the browser restores
$("byok-url").addEventListener("input", forget);
$("byok-allow-demo").addEventListener("change", forget);
$("byok-verify").addEventListener("submit", verify);
$("byok-add").addEventListener("submit", add);
$("byok-key").addEventListener("input", () => { $("byok-fingerprint").textContent = ""; }); // no longer that key's
$("byok-key").addEventListener("change", preview);
document.addEventListener("keychange", () => { forget(); list(); });
list();
