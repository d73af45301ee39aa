// A fast OpenAI-compatible mock upstream for benchmarks (node's http; no dependencies).
// POST /v1/chat/completions: non-stream -> a small chat.completion JSON (`tail_pct` % of
// them after `tail_ms`);
// stream -> `n_chunks` SSE chunks (default 8) every `interval_ms` (default 0), then
// usage and [DONE]; with `stamp`, each chunk carries `sent_ms`, the wall-clock time (ms,
// sub-ms precision) it was written, for measuring inter-chunk latency at the client.
// The knobs are read from the request body. GET /stats: requests seen.
// POST /v1/messages and /v1/responses: the same answer in Anthropic's Messages and
// OpenAI's Responses wire formats (stream or not; `n_chunks` text deltas, default 8),
// each event as those APIs frame it (`event:` + `data:`, the terminal event with usage).
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

// The Anthropic Messages stream (api.anthropic.com's framing: message_start, ping, one
// text block, message_delta with the cumulative usage, message_stop) and whole message.
function sse(type, body) {
  return `event: ${type}\ndata: ` + JSON.stringify({ type, ...body }) + "\n\n";
}

const anthropicUsage = (output) => ({ input_tokens: 9, cache_creation_input_tokens: 0,
  cache_read_input_tokens: 0, output_tokens: output });
const message = (n) => ({ id: "msg_bench", type: "message", role: "assistant",
  model: "bench", content: [{ type: "text", text: "Hello from the mock." }],
  stop_reason: "end_turn", stop_sequence: null, usage: anthropicUsage(n) });

const messagesEvents = {
  head: () => [
    sse("message_start", { message: { ...message(1), content: [], stop_reason: null } }),
    sse("ping", {}),
    sse("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
  ],
  delta: (i) => sse("content_block_delta",
    { index: 0, delta: { type: "text_delta", text: `tok${i} ` } }),
  tail: (n) => [
    sse("content_block_stop", { index: 0 }),
    sse("message_delta", { delta: { stop_reason: "end_turn", stop_sequence: null },
                           usage: anthropicUsage(n) }),
    sse("message_stop", {}),
  ],
  whole: message,
};

// The Responses stream (DeepSeek's /responses framing: created, in_progress, one message
// item opened, text deltas, closed, then response.completed with the usage; no [DONE]).
const response = (status, n) => ({ id: "resp_bench", object: "response", created_at: 1,
  status, error: null, model: "bench",
  output: status === "completed" ? [item("completed")] : [],
  usage: status === "completed" ? { input_tokens: 9, input_tokens_details: { cached_tokens: 0 },
    output_tokens: n, output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: 9 + n } : null });
const item = (status) => ({ type: "message", id: "msg_bench", status, role: "assistant",
  content: status === "completed"
    ? [{ type: "output_text", text: "Hello from the mock.", annotations: [] }] : [] });
const part = { type: "output_text", text: "", annotations: [] };

const responsesEvents = {
  head: () => [
    sse("response.created", { sequence_number: 0, response: response("in_progress", 0) }),
    sse("response.in_progress", { sequence_number: 1, response: response("in_progress", 0) }),
    sse("response.output_item.added", { sequence_number: 2, output_index: 0,
                                        item: item("in_progress") }),
    sse("response.content_part.added", { sequence_number: 3, item_id: "msg_bench",
                                         output_index: 0, content_index: 0, part }),
  ],
  delta: (i) => sse("response.output_text.delta", { sequence_number: 4 + i,
    item_id: "msg_bench", output_index: 0, content_index: 0, delta: `tok${i} ` }),
  tail: (n) => [
    sse("response.output_text.done", { sequence_number: 4 + n, item_id: "msg_bench",
      output_index: 0, content_index: 0, text: "Hello from the mock." }),
    sse("response.content_part.done", { sequence_number: 5 + n, item_id: "msg_bench",
      output_index: 0, content_index: 0, part: { ...part, text: "Hello from the mock." } }),
    sse("response.output_item.done", { sequence_number: 6 + n, output_index: 0,
                                       item: item("completed") }),
    sse("response.completed", { sequence_number: 7 + n, response: response("completed", n) }),
  ],
  whole: (n) => response("completed", n),
};

const FORMATS = { "/v1/messages": messagesEvents, "/v1/responses": responsesEvents };

// One of the formats above: the whole answer, or its events written one per tick.
function answerIn(format, body, res) {
  const n = body.n_chunks ?? 8;
  if (!body.stream) {
    const whole = JSON.stringify(format.whole(n));
    res.writeHead(200, { "content-type": "application/json",
                         "content-length": Buffer.byteLength(whole) });
    res.end(whole);
    return;
  }
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  res.flushHeaders();
  const events = [...format.head(), ...Array.from({ length: n }, (_, i) => format.delta(i)),
                  ...format.tail(n)];
  let i = 0;
  const send = () => {
    if (res.destroyed) return;
    if (i < events.length - 1) {
      res.write(events[i]);
      i += 1;
      setImmediate(send);
      return;
    }
    res.end(events[i]);
  };
  send();
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
    if (FORMATS[req.url]) {
      answerIn(FORMATS[req.url], body, res);
      return;
    }
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
