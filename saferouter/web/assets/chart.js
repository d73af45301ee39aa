// Small inline-SVG charts over time buckets (the Activity page): bars or lines, a y axis
// with three gridlines, a few time labels, a legend and a tooltip naming the bucket and
// its values. Our own code, no library: the pages load nothing from elsewhere, and every
// byte of them is in the measured build. Colours are classes whose values come from the
// stylesheets' variables (chart.css), so light and dark follow the system.

const SVG_NS = "http://www.w3.org/2000/svg";
const HEIGHT = 160;
const PAD = { top: 8, right: 10, bottom: 22 };
const charts = new WeakMap(); // svg → { spec, layout }

function svgNode(tag, attributes = {}, text = "") {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text) node.textContent = text;
  return node;
}

function present(value) { return value !== null && value !== undefined; }

// the axis' top: the next of 1, 2, 4, 6, 8, 10 × a power of ten (its half is as round)
function niceCeiling(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 4, 6, 8, 10].find((f) => f * power >= value * (1 - 1e-9));
  return step * power;
}

// how a time reads: the clock within a day, the weekday too over longer spans, the date
// alone for whole days
function timeKind(stepS, spanS) {
  if (stepS >= 86400) return "date";
  return spanS > 86400 ? "day-clock" : "clock";
}

function timeText(seconds, kind) {
  const at = new Date(seconds * 1000);
  if (kind === "date") return at.toLocaleDateString([], { month: "short", day: "numeric" });
  const clock = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return kind === "day-clock" ? `${at.toLocaleDateString([], { weekday: "short" })} ${clock}` : clock;
}

// Axis labels at round local times (every 5 min, 15 min, 1 h … 1 week: the finest
// whose labels fit side by side), each where its time falls: on a bucket's edge, or
// inside the bucket where the reader's offset is not whole hours (India's +05:30 puts
// no 3 h edge on a round hour).
const LABEL_STEPS_S = [60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
                       2 * 86400, 7 * 86400];

function timeLabels(starts, bucketS, plotWidth) {
  const spanS = starts.length * bucketS;
  for (const stepS of LABEL_STEPS_S) {
    if (stepS < bucketS) continue;  // at most one label per bucket
    const kind = timeKind(stepS, spanS);
    const labels = starts.flatMap((start, index) => {
      // seconds of local time: a label at 06:00 where the reader lives
      const local = start - new Date(start * 1000).getTimezoneOffset() * 60;
      const intoS = (stepS - (local % stepS)) % stepS;  // to the next round time
      return intoS < bucketS ? [{ index: index + intoS / bucketS, text: timeText(start + intoS, kind) }] : [];
    });
    const needed = labels.reduce((sum, label) => sum + label.text.length * 6.5 + 14, 0);
    if (needed <= plotWidth) return labels;
  }
  return [];
}

function render(svg) {
  const { spec } = charts.get(svg);
  const width = Math.max(240, Math.round(svg.getBoundingClientRect().width) || 600);
  const count = spec.starts.length;
  const values = spec.series.flatMap((s) => s.values.filter(present));
  let top = niceCeiling(Math.max(0, ...values));
  if (spec.integer) top = Math.max(2, top);
  // three ticks that read alike say nothing (0.4 ms at the top read "0 ms" three times):
  // a higher top, until the format tells them apart
  for (let tries = 0; tries < 30 && new Set([0, top / 2, top].map(spec.format)).size < 3; tries += 1) {
    top = niceCeiling(top * 2);
  }
  const ticks = [0, top / 2, top];
  const left = 12 + 6.5 * Math.max(...ticks.map((t) => spec.format(t).length));
  const plotWidth = width - left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const step = plotWidth / Math.max(1, count);
  const x = (i) => left + i * step;
  const y = (v) => PAD.top + plotHeight - (v / top) * plotHeight;
  charts.get(svg).layout = { left, step, width };
  svg.setAttribute("viewBox", `0 0 ${width} ${HEIGHT}`);

  const parts = [];
  for (const tick of ticks) {
    parts.push(svgNode("line", { class: "gridline", x1: left, x2: width - PAD.right, y1: y(tick), y2: y(tick) }),
               svgNode("text", { class: "tick", x: left - 6, y: y(tick) + 4, "text-anchor": "end" }, spec.format(tick)));
  }
  let free = 0;  // where the last label ended: the next one starts past it, or is left out
  for (const { index, text } of timeLabels(spec.starts, spec.bucketS, plotWidth)) {
    const half = text.length * 3.25;
    const at = x(index);
    // one that would stick out of the chart is left out, not pushed in: pushed, it
    // crowded out its neighbour, and 08:45, 09:15, 09:30 read as a gap in time
    if (at - half < free || at + half > width) continue;
    free = at + half + 8;
    parts.push(svgNode("line", { class: "gridline", x1: at, x2: at, y1: PAD.top + plotHeight, y2: PAD.top + plotHeight + 4 }),
               svgNode("text", { class: "tick", x: at, y: HEIGHT - 6, "text-anchor": "middle" }, text));
  }
  parts.push(svgNode("rect", { class: "cursor", x: 0, y: PAD.top, width: step, height: plotHeight, visibility: "hidden" }));
  // bars of one chart overlap (errors drawn over the requests they are part of)
  const gap = step > 4 ? Math.min(2, step * 0.2) : 0;
  for (const s of spec.series) {
    const group = svgNode("g", { class: `series ${s.color}`, "data-name": s.name });
    if (s.kind === "bar") {
      s.values.forEach((v, i) => group.append(svgNode("rect", {
        class: "col", x: x(i) + gap / 2, width: Math.max(0.5, step - gap), y: y(v || 0),
        height: y(0) - y(v || 0), "data-start": spec.starts[i], "data-value": v ?? 0 })));
    } else {
      // a line through the measured buckets, broken where a bucket measured nothing
      let d = "";
      s.values.forEach((v, i) => {
        if (!present(v)) return;
        d += `${present(s.values[i - 1]) ? "L" : "M"}${(x(i) + step / 2).toFixed(1)},${y(v).toFixed(1)}`;
        group.append(svgNode("circle", { class: "dot", cx: x(i) + step / 2, cy: y(v), r: 2.5,
                                         "data-start": spec.starts[i], "data-value": v }));
      });
      group.prepend(svgNode("path", { class: "line", d }));
    }
    parts.push(group);
  }
  svg.replaceChildren(...parts);
}

function legend(figure, spec) {
  let list = figure.querySelector(".chart-legend");
  if (!list) {
    list = document.createElement("ul");
    list.className = "chart-legend";
    figure.querySelector("svg").before(list);
  }
  list.replaceChildren(...spec.series.map((s) => {
    const item = document.createElement("li");
    item.className = s.color;
    item.append(document.createElement("i"), s.name);
    return item;
  }));
}

function showTip(svg, event) {
  const chart = charts.get(svg);
  const { spec, layout } = chart;
  Object.assign(chart, { pointer: event, keyed: false });
  const box = svg.getBoundingClientRect();
  const px = (event.clientX - box.left) * (layout.width / box.width);
  const index = Math.floor((px - layout.left) / layout.step);
  if (index < 0 || index >= spec.starts.length) { hideTip(svg); return; }
  chart.index = index;  // the arrows go on from the bucket last pointed at
  tipAt(svg, index, event.clientX);
}

// The keyboard's way to the values: the chart takes focus (Tab), the arrows, Home and
// End walk its buckets, the tooltip (a live region) reads each one; Escape closes it.
function keyTip(svg, index) {
  const chart = charts.get(svg);
  const { spec, layout } = chart;
  chart.index = Math.max(0, Math.min(spec.starts.length - 1, index));
  chart.keyed = true;
  const box = svg.getBoundingClientRect();
  const middle = layout.left + (chart.index + 0.5) * layout.step;
  tipAt(svg, chart.index, box.left + middle * (box.width / layout.width));
}

function onKey(svg, event) {
  const chart = charts.get(svg);
  if (event.key === "Escape") { hideTip(svg); return; }
  const last = chart.spec.starts.length - 1;
  const to = { ArrowLeft: chart.index - 1, ArrowRight: chart.index + 1, Home: 0, End: last }[event.key];
  if (to === undefined) return;
  event.preventDefault();  // not a scroll of the page
  keyTip(svg, to);
}

// bucket `index`'s time and values, beside the client x `clientX`
function tipAt(svg, index, clientX) {
  const { spec, layout, tip } = charts.get(svg);
  const box = svg.getBoundingClientRect();
  const cursor = svg.querySelector(".cursor");
  cursor.setAttribute("x", layout.left + index * layout.step);
  cursor.setAttribute("visibility", "visible");
  const start = spec.starts[index];
  const heading = document.createElement("b");
  const kind = timeKind(spec.bucketS, spec.starts.length * spec.bucketS);
  heading.textContent = `${timeText(start, kind)} – ${timeText(start + spec.bucketS, kind)}`;
  const rows = spec.series.map((s) => {
    const row = document.createElement("div");
    row.className = s.color;
    const v = s.values[index];
    row.append(document.createElement("i"), `${s.name}: ${present(v) ? spec.format(v) : "–"}`);
    return row;
  });
  tip.replaceChildren(heading, ...rows);
  tip.hidden = false;
  // beside the pointer, not under it, inside the figure (the tip's positioned parent)
  const figure = tip.parentElement.getBoundingClientRect();
  const pointer = clientX - figure.left;
  const right = pointer + 12 + tip.offsetWidth <= figure.width;  // else to the left of it
  const at = right ? pointer + 12 : pointer - 12 - tip.offsetWidth;
  tip.style.left = `${Math.max(0, Math.min(figure.width - tip.offsetWidth, at))}px`;
  tip.style.top = `${box.top - figure.top + 4}px`;
}

function hideTip(svg) {
  const chart = charts.get(svg);
  Object.assign(chart, { pointer: null, keyed: false });
  chart.tip.hidden = true;
  svg.querySelector(".cursor")?.setAttribute("visibility", "hidden");
}

/**
 * Draw (or redraw, on new data) a chart into `svg`, whose parent (a figure) gets the
 * legend and the tooltip.
 * spec: { starts: [bucket start, unix s], bucketS, integer: whether values are counts,
 *         format: value → text, series: [{ name, kind: "bar" | "line", color: a class
 *         of chart.css (c-accent, c-bad, c-warn, c-ok), values: [number | null] }] }
 */
export function drawChart(svg, spec) {
  const known = charts.get(svg);
  if (known) {
    known.spec = spec;
  } else {
    const tip = document.createElement("div");
    tip.className = "chart-tip";
    tip.hidden = true;
    tip.setAttribute("role", "status");
    svg.parentElement.append(tip);
    // pointer: the event a tooltip follows; index: the bucket the keyboard is on;
    // keyed: whether the keyboard's tooltip is up
    charts.set(svg, { spec, layout: null, tip, pointer: null, index: null, keyed: false });
    svg.setAttribute("tabindex", "0");
    svg.setAttribute("aria-keyshortcuts", "ArrowLeft ArrowRight Home End Escape");
    svg.addEventListener("keydown", (event) => onKey(svg, event));
    // a click focuses the chart too: only a keyboard's focus opens the latest bucket
    svg.addEventListener("focus", () => {
      if (svg.matches(":focus-visible")) keyTip(svg, charts.get(svg).index ?? Infinity);
    });
    svg.addEventListener("blur", () => hideTip(svg));
    svg.addEventListener("pointermove", (event) => showTip(svg, event));
    svg.addEventListener("pointerdown", (event) => showTip(svg, event));
    // a finger lifted fires pointerleave too: a tapped tooltip stays until a tap elsewhere
    svg.addEventListener("pointerleave", (event) => { if (event.pointerType !== "touch") hideTip(svg); });
    document.addEventListener("pointerdown", (event) => { if (!svg.contains(event.target)) hideTip(svg); });
    let width = svg.getBoundingClientRect().width;
    new ResizeObserver(() => {
      const now = svg.getBoundingClientRect().width;
      if (now !== width) { width = now; redraw(svg); }
    }).observe(svg);
  }
  legend(svg.parentElement, spec);
  redraw(svg);
}

// new data or a new width under an open tooltip: it shows the new values, in place
function redraw(svg) {
  render(svg);
  const { pointer, keyed, index } = charts.get(svg);
  if (keyed) keyTip(svg, index);
  else if (pointer) showTip(svg, pointer);
}
