// The endpoint table of SPEC §4 beyond chat: legacy /v1/completions, model
// listing with aliases, /metrics, and paths the proxy does not serve.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { startStack } from '../support/stack.mjs';
import { request, postJson, openStream, assertOpenAiError, assertProxyHeaders, withTimeout } from '../support/http.mjs';

let stack;

before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});
beforeEach(() => stack.reset());

test('GET /v1/models/{id} is passed to the upstream', async () => {
  const res = await request(`${stack.proxy.baseURL}/models/mistral-large-latest`);
  assert.equal(res.status, 200, res.text);
  assertProxyHeaders(res, 'mistral');
  assert.equal(res.json.id, 'mistral-large-latest');
  assert.equal(stack.fakes.mistral.requests[0].path, '/v1/models/mistral-large-latest');
});

test('GET /v1/models adds the rule files\' aliases to the upstream list', async () => {
  const res = await request(`${stack.proxy.baseURL}/models`);
  assert.equal(res.status, 200, res.text);
  const ids = res.json.data.map((m) => m.id);
  assert.ok(ids.includes('mistral-large-latest'));
  for (const alias of ['gpt-4o', 'text-embedding-3-small']) assert.ok(ids.includes(alias), `alias ${alias} missing from ${ids.join(',')}`);
  for (const m of res.json.data) assert.equal(m.object, 'model');
});

test('/v1/completions with a codestral model is FIM, answered as text_completion', async () => {
  const res = await postJson(`${stack.proxy.baseURL}/completions`, { model: 'codestral-latest', prompt: 'def add(a, b):', suffix: '\n', max_tokens: 16 });
  assert.equal(res.status, 200, res.text);
  assertProxyHeaders(res, 'codestral');
  const [sent] = stack.fakes.codestral.requests;
  assert.equal(sent?.path, '/v1/fim/completions');
  assert.equal(JSON.parse(sent.body).prompt, 'def add(a, b):');
  assert.equal(res.json.object, 'text_completion');
  assert.equal(res.json.choices[0].text, 'fim: def add(a, b):|\n');
  assert.equal(res.json.choices[0].finish_reason, 'stop');
  assert.equal(res.json.choices[0].index, 0);
  assert.ok(res.json.usage.total_tokens > 0);
});

test('/v1/completions with another model is a chat completion, answered as text_completion', async () => {
  const res = await postJson(`${stack.proxy.baseURL}/completions`, { model: 'mistral-small-latest', prompt: 'Say hi', max_tokens: 16 });
  assert.equal(res.status, 200, res.text);
  assertProxyHeaders(res, 'mistral');
  const [sent] = stack.fakes.mistral.requests;
  assert.equal(sent?.path, '/v1/chat/completions');
  assert.deepEqual(JSON.parse(sent.body).messages, [{ role: 'user', content: 'Say hi' }]);
  assert.equal(res.json.object, 'text_completion');
  assert.equal(res.json.choices[0].text, 'echo: Say hi');
});

test('/v1/completions streamed: text_completion chunks, then [DONE]', async () => {
  const s = await openStream(`${stack.proxy.baseURL}/completions`, { model: 'codestral-latest', prompt: 'x = ', stream: true });
  assert.equal(s.status, 200);
  const { events } = await withTimeout(s.done, 10_000, 'stream');
  assert.equal(events.at(-1).data, '[DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
  for (const c of chunks) assert.equal(c.object, 'text_completion');
  assert.equal(chunks.map((c) => c.choices[0]?.text ?? '').join(''), 'fim: x = |');
});

test('GET /metrics is Prometheus text', async () => {
  await postJson(`${stack.proxy.baseURL}/chat/completions`, { model: 'mistral-small-latest', messages: [{ role: 'user', content: 'count me' }] });
  const res = await request(`${stack.proxy.url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers['content-type'] ?? '', /^text\/plain/);
  assert.match(res.text, /^# TYPE \S+ (counter|gauge|histogram|summary)$/m);
  assert.match(res.text, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [0-9.eE+-]+$/m);
  assert.equal(stack.fakes.mistral.requests.length, 1, '/metrics is not forwarded');
});

test('a path outside /v1 (not /healthz or /metrics): 404 in OpenAI shape, nothing sent', async () => {
  const res = await request(`${stack.proxy.url}/v2/whatever`);
  assertOpenAiError(res, 404);
  assert.deepEqual(stack.allRequests(), []);
});
