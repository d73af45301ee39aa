import { api, el, micro, showError } from "/assets/app.js";
import { drawChart } from "/assets/chart.js";

const POLL_MS = 5000;
const status = document.getElementById("status");

// a time as the charts' axes read it: 600 s, not 600000 ms
function duration(value) { return value >= 1000 ? `${+(value / 1000).toFixed(1)} s` : `${Math.round(value)} ms`; }
function ms(value) { return value === null || value === undefined ? "–" : duration(value); }

function per(bucketS) {
  if (bucketS % 86400 === 0) return bucketS === 86400 ? "per day" : `per ${bucketS / 86400} days`;
  if (bucketS % 3600 === 0) return bucketS === 3600 ? "per hour" : `per ${bucketS / 3600} hours`;
  return bucketS === 60 ? "per minute" : `per ${bucketS / 60} minutes`;
}

// the series of /v1/activity/stats: one point per bucket, empty buckets included
function charts(stats) {
  const points = stats.series;
  const common = { starts: points.map((p) => p.start), bucketS: stats.bucket_s };
  const chart = (id) => document.querySelector(`#${id} svg`);
  const line = (name, color, values) => ({ name, color, kind: "line", values });
  document.getElementById("bucket").textContent = per(stats.bucket_s);
  drawChart(chart("chart-requests"), { ...common, integer: true, format: (v) => String(v), series: [
    { name: "requests", color: "c-accent", kind: "bar", values: points.map((p) => p.requests) },
    { name: "errors", color: "c-bad", kind: "bar", values: points.map((p) => p.errors) }] });
  drawChart(chart("chart-latency"), { ...common, format: duration, series: [
    line("p50", "c-accent", points.map((p) => p.latency_ms.p50)),
    line("p95", "c-warn", points.map((p) => p.latency_ms.p95))] });
  drawChart(chart("chart-ttfb"), { ...common, format: duration, series: [
    line("p50", "c-accent", points.map((p) => p.ttfb_ms.p50)),
    line("p95", "c-warn", points.map((p) => p.ttfb_ms.p95))] });
  drawChart(chart("chart-spend"), { ...common, format: micro, series: [
    { name: "spend", color: "c-ok", kind: "bar", values: points.map((p) => p.cost_micro_usd) }] });
}

function stat(label, value) { return el("div", { className: "stat" }, [el("span", { className: "small muted", textContent: label }), el("b", { textContent: value })]); }

function breakdown(groups) {
  const entries = Object.entries(groups);
  if (!entries.length) return el("p", { className: "muted small", textContent: "Nothing yet." });
  const slowest = Math.max(1, ...entries.map(([, g]) => g.latency_ms.p50 || 0));
  const rows = entries.map(([name, g]) => el("tr", {}, [
    el("td", { textContent: name }), el("td", { textContent: g.total }),
    el("td", { textContent: g.success_rate === null ? "–" : `${(g.success_rate * 100).toFixed(1)}%` }),
    el("td", {}, [el("div", { className: "bar", style: `width:${Math.max(2, (g.latency_ms.p50 || 0) / slowest * 100)}%`,
                              title: `p50 ${ms(g.latency_ms.p50)}` }), el("span", { className: "small muted", textContent: `${ms(g.latency_ms.p50)} / ${ms(g.latency_ms.p95)}` })]),
    el("td", { textContent: `${ms(g.ttfb_ms.p50)} / ${ms(g.ttfb_ms.p95)}` }),
    el("td", { textContent: micro(g.cost_micro_usd) }),
  ]));
  return el("table", {}, [el("thead", {}, [el("tr", {}, ["Name", "Requests", "Success", "Latency p50 / p95", "TTFB p50 / p95", "Cost"]
    .map((h) => el("th", { textContent: h })))]), el("tbody", {}, rows)]);
}

// the app filter's choices: the apps of the window, and the one chosen even once it left
function appChoices(apps) {
  const select = document.getElementById("app");
  const chosen = select.value;
  const names = [...new Set([...apps, ...(chosen ? [chosen] : [])])].sort();
  select.replaceChildren(el("option", { value: "", textContent: "All apps" }),
    ...names.map((name) => el("option", { value: name, textContent: name })));
  select.value = chosen;
}

// Polls overlap: the interval's and the one a changed window or app starts. Only the
// newest may draw, or an older answer coming in later puts back the window just left.
let newest = 0;

async function poll() {
  const mine = ++newest;
  const span = document.getElementById("window").value;
  const app = document.getElementById("app").value;
  const query = new URLSearchParams({ limit: "50", ...(app ? { app } : {}) });
  try {
    const [stats, log] = await Promise.all([api(`/v1/activity/stats?window=${span}`),
                                            api(`/v1/activity?${query}`)]);
    if (mine !== newest) return;
    status.replaceChildren();
    document.getElementById("totals").replaceChildren(
      stat("Requests", stats.total), stat("Success rate", stats.success_rate === null ? "–" : `${(stats.success_rate * 100).toFixed(1)}%`),
      stat("Latency p50 / p95", `${ms(stats.latency_ms.p50)} / ${ms(stats.latency_ms.p95)}`),
      stat("TTFB p50 / p95", `${ms(stats.ttfb_ms.p50)} / ${ms(stats.ttfb_ms.p95)}`),
      stat("Cost", micro(stats.cost_micro_usd)));
    charts(stats);
    document.getElementById("by-model").replaceChildren(breakdown(stats.by_model));
    document.getElementById("by-provider").replaceChildren(breakdown(stats.by_provider));
    document.getElementById("by-app").replaceChildren(breakdown(stats.by_app));
    appChoices(Object.keys(stats.by_app));
    document.querySelector("#log tbody").replaceChildren(...log.data.map((e) => el("tr", {}, [
      el("td", { textContent: new Date(e.created_at * 1000).toLocaleTimeString() }),
      el("td", { textContent: e.served_model && e.served_model !== e.requested_model
        ? `${e.requested_model} → ${e.served_model}` : e.requested_model }),
      el("td", { className: "app", textContent: e.app ?? "–", title: e.app_referer || "" }),
      el("td", { textContent: e.attempt }),
      el("td", {}, [el("span", { className: `badge ${e.outcome === "ok" ? "ok" : "bad"}`,
                                 textContent: `${e.status} ${e.outcome}`, title: e.error_type || "" })]),
      el("td", { textContent: ms(e.latency_ms) }), el("td", { textContent: ms(e.ttfb_ms) }),
      el("td", { textContent: `${e.prompt_tokens} / ${e.completion_tokens}` }),
      el("td", { textContent: micro(e.cost_micro_usd) + (e.estimated ? " (estimated)" : "") }),
    ])));
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    if (mine === newest) showError(status, error);
  }
}

document.getElementById("window").addEventListener("change", poll);
document.getElementById("app").addEventListener("change", poll);
document.addEventListener("keychange", poll);
poll();
setInterval(poll, POLL_MS);
