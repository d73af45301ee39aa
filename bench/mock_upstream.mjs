// A fast OpenAI-compatible mock upstream for benchmarks (node's http; no dependencies).
// POST /v1/chat/completions: non-stream -> a small chat.completion JSON (`tail_pct` % of
// them after `tail_ms`);
// stream -> `n_chunks` SSE chunks (default 8) every `interval_ms` (default 0), then
// usage and [DONE]; with `stamp`, each chunk carries `sent_ms`, the wall-clock time (ms,
// sub-ms precision) it was written, for measuring inter-chunk latency at the client.
// The knobs are read from the request body. GET /stats: requests seen.
// Usage: node mock_upstream.mjs PORT
import http from "node:http";

const port = Number(process.argv[2] || 9100);
const completion = JSON.stringify({
  id: "chatcmpl-bench", object: "chat.completion", created: 1, model: "bench",
  choices: [{ index: 0, message: { role: "assistant", content: "Hello from the mock." },
              finish_reason: "stop" }],
  usage: { prompt_tokens: 9, completion_tokens: 5, total_tokens: 14 },
});

function chunk(i, extra) {
  return "data: " + JSON.stringify({
    id: "chatcmpl-bench", object: "chat.completion.chunk", created: 1, model: "bench",
    choices: [{ index: 0, delta: { content: `tok${i} ` }, finish_reason: null }],
    ...extra,
  }) + "\n\n";
}

function wallMs() {
  return performance.timeOrigin + performance.now();
}

let served = 0;

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/stats") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ requests: served }));
    return;
  }
  served += 1;
  const parts = [];
  req.on("data", (d) => parts.push(d));
  req.on("end", () => {
    let body = {};
    try { body = JSON.parse(Buffer.concat(parts).toString() || "{}"); } catch { body = {}; }
    if (!body.stream) {
      // a heavy tail: `tail_pct` % of requests wait `tail_ms` before answering
      const slow = body.tail_pct && Math.random() * 100 < body.tail_pct;
      const answer = () => {
        if (res.destroyed) return;
        res.writeHead(200, { "content-type": "application/json",
                             "content-length": Buffer.byteLength(completion) });
        res.end(completion);
      };
      if (slow) setTimeout(answer, body.tail_ms ?? 2000); else answer();
      return;
    }
    const n = body.n_chunks ?? 8;
    const interval = body.interval_ms ?? 0;
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    res.flushHeaders();
    let i = 0;
    const send = () => {
      if (res.destroyed) return;
      if (i < n) {
        res.write(chunk(i, body.stamp ? { sent_ms: wallMs() } : undefined));
        i += 1;
        if (interval) setTimeout(send, interval); else setImmediate(send);
        return;
      }
      res.write("data: " + JSON.stringify({ id: "chatcmpl-bench", choices: [],
        usage: { prompt_tokens: 9, completion_tokens: n, total_tokens: 9 + n } }) + "\n\n");
      res.end("data: [DONE]\n\n");
    };
    send();
  });
});
server.keepAliveTimeout = 75000;
server.listen(port, "127.0.0.1", () => console.log(`mock upstream on ${port}`));
