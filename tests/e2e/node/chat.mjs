// Usage: node chat.mjs BASE_URL API_KEY
// Prints one JSON line with what the openai npm package saw, for the Python test to check.
import OpenAI from "openai";

const [baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const messages = [{ role: "user", content: "hello from node" }];

const completion = await client.chat.completions.create({ model: "demo", messages });

let content = "";
let reasoning = "";
let chunks = 0;
const stream = await client.chat.completions.create({ model: "demo", messages, stream: true });
for await (const chunk of stream) {
  chunks += 1;
  const delta = chunk.choices[0]?.delta ?? {};
  content += delta.content ?? "";
  reasoning += delta.reasoning_content ?? "";
}

let notFound = null;
try {
  await client.chat.completions.create({ model: "no-such-model", messages });
} catch (err) {
  notFound = { status: err.status, code: err.code };
}

const models = await client.models.list();
console.log(JSON.stringify({
  nonStream: completion.choices[0].message.content,
  usage: completion.usage,
  content,
  reasoning,
  chunks,
  notFound,
  modelCount: models.data.length,
}));
