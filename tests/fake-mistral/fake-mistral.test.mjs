// Self-tests of the fake Mistral (no proxy involved): the suites rely on it
// behaving like the real API and on its controls doing what they say.
//   cd tests && node --test fake-mistral/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import OpenAI from 'openai';
import { startFakeMistral, embeddingFor } from './fake-mistral.mjs';
import { request, postJson, openStream, deltaText, withTimeout } from '../support/http.mjs';
import { makeTestCerts } from '../support/certs.mjs';

const KEY = 'fake-self-test-key';
const AUTH = { authorization: `Bearer ${KEY}` };
let fake;
let codestral;

before(async () => {
  fake = await startFakeMistral({ name: 'mistral', apiKey: KEY });
  codestral = await startFakeMistral({ name: 'codestral', apiKey: KEY });
});
after(async () => {
  await fake?.close();
  await codestral?.close();
});

test('rejects a missing or wrong key with Mistral\'s 401 shape', async () => {
  for (const headers of [{}, { authorization: 'Bearer nope' }, { authorization: KEY }]) {
    const res = await request(`${fake.url}/models`, { headers });
    assert.equal(res.status, 401);
    assert.equal(res.json.message, 'Unauthorized');
    assert.match(res.json.request_id, /^[0-9a-f]{32}$/);
  }
});

test('answers a chat completion in Mistral\'s shape, echoing the last user message', async () => {
  const res = await postJson(`${fake.url}/chat/completions`, { model: 'mistral-small-latest', messages: [{ role: 'user', content: 'first' }, { role: 'assistant', content: 'x' }, { role: 'user', content: 'bonjour' }] }, AUTH);
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.object, 'chat.completion');
  assert.equal(res.json.model, 'mistral-small-latest');
  assert.deepEqual(res.json.choices, [{ index: 0, message: { role: 'assistant', content: 'echo: bonjour', tool_calls: null, prefix: false }, finish_reason: 'stop' }]);
  const u = res.json.usage;
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
});

test('422 with FastAPI detail for fields the schema does not allow', async () => {
  const res = await postJson(`${fake.url}/chat/completions`, { model: 'mistral-small-latest', messages: [{ role: 'user', content: 'x' }], user: 'u1', store: true }, AUTH);
  assert.equal(res.status, 422);
  const locs = res.json.detail.map((d) => [d.type, d.loc.join('.'), d.msg]);
  assert.deepEqual(locs.sort(), [['extra_forbidden', 'body.store', 'Extra inputs are not permitted'], ['extra_forbidden', 'body.user', 'Extra inputs are not permitted']]);
});

test('422 for a forbidden key inside a message, a range, a missing field', async () => {
  const res = await postJson(`${fake.url}/chat/completions`, { messages: [{ role: 'system', content: 'x', name: 'n' }], temperature: 2 }, AUTH);
  assert.equal(res.status, 422);
  const got = res.json.detail.map((d) => `${d.type}@${d.loc.join('.')}`).sort();
  assert.deepEqual(got, ['extra_forbidden@body.messages.0.name', 'less_than_equal@body.temperature', 'missing@body.model']);
});

test('document parts as Mistral takes them: document_url (a data URL too) and file ids that are UUIDs', async () => {
  const chat = (part) => postJson(`${fake.url}/chat/completions`, { model: 'mistral-small-latest', messages: [{ role: 'user', content: [{ type: 'text', text: 'read' }, part] }] }, AUTH);
  for (const part of [
    { type: 'document_url', document_url: 'data:application/pdf;base64,JVBERi0xLjQK', document_name: 'a.pdf' },
    { type: 'document_url', document_url: 'https://example.test/a.pdf' },
    { type: 'file', file_id: '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d' },
  ]) {
    const res = await chat(part);
    assert.equal(res.status, 200, `${JSON.stringify(part)}: ${res.text}`);
  }
  const badId = await chat({ type: 'file', file_id: 'file-abc123' });
  assert.equal(badId.status, 422);
  assert.ok(badId.json.detail.some((d) => d.type === 'uuid_parsing' && d.loc.join('.') === 'body.messages.0.content.1.file_id'), badId.text);
  const openai = await chat({ type: 'file', file: { file_data: 'data:application/pdf;base64,JVBER' } });
  assert.equal(openai.status, 422, 'OpenAI\'s file part is not Mistral\'s');
});

test('400 invalid_model for unknown and removed models', async () => {
  for (const model of ['mistral-tiny', 'mistral-medium', 'gpt-4o']) {
    const res = await postJson(`${fake.url}/chat/completions`, { model, messages: [{ role: 'user', content: 'x' }] }, AUTH);
    assert.equal(res.status, 400);
    assert.deepEqual(res.json, { object: 'error', message: `Invalid model: ${model}`, type: 'invalid_model', param: null, code: '1500' });
  }
});

test('streams chunks in Mistral\'s shape and ends with [DONE]', async () => {
  fake.setStream({ chunks: 4, intervalMs: 1 });
  const s = await openStream(`${fake.url}/chat/completions`, { model: 'mistral-small-latest', stream: true, messages: [{ role: 'user', content: 'stream me please' }] }, AUTH);
  assert.equal(s.status, 200);
  assert.match(s.headers['content-type'], /^text\/event-stream/);
  const { events, ended } = await s.done;
  assert.ok(ended);
  assert.equal(events.length, 1 + 4 + 1 + 1);
  const first = JSON.parse(events[0].data);
  assert.deepEqual(first.choices[0].delta, { role: 'assistant', content: '' });
  const last = JSON.parse(events.at(-2).data);
  assert.equal(last.choices[0].finish_reason, 'stop');
  assert.ok(last.usage.total_tokens > 0);
  assert.equal(events.at(-1).data, '[DONE]');
  assert.equal(deltaText(events), 'echo: stream me please');
  fake.setStream({ chunks: 5, intervalMs: 0 });
});

test('holdBeforeLastChunk holds the final chunk until released', async () => {
  const gate = fake.holdBeforeLastChunk();
  const s = await openStream(`${fake.url}/chat/completions`, { model: 'mistral-small-latest', stream: true, messages: [{ role: 'user', content: 'held' }] }, AUTH);
  await withTimeout(gate.reachedHold, 2000, 'reachedHold');
  const before = await withTimeout(s.waitForEvents(6), 2000, 'events before the hold');
  assert.equal(before.length, 6);
  assert.ok(!before.some((e) => e.data === '[DONE]'));
  await gate.release();
  const { events } = await s.done;
  assert.equal(events.at(-1).data, '[DONE]');
});

test('nextAbort reports a client that goes away mid-stream', async () => {
  fake.injectFault({ kind: 'slow', intervalMs: 50, chunks: 40 });
  const aborted = fake.nextAbort();
  const s = await openStream(`${fake.url}/chat/completions`, { model: 'mistral-small-latest', stream: true, messages: [{ role: 'user', content: 'slow' }] }, AUTH);
  await s.waitForEvents(2);
  const t = Date.now();
  s.destroy();
  const event = await withTimeout(aborted, 1000, 'abort');
  assert.ok(event.at - t < 1000);
  assert.equal(event.path, '/v1/chat/completions');
});

test('status faults use Mistral\'s shapes and headers', async () => {
  fake.injectFault({ kind: 'status', status: 429, headers: { 'retry-after': '3' } });
  let res = await postJson(`${fake.url}/chat/completions`, {}, AUTH);
  assert.equal(res.status, 429);
  assert.equal(res.headers['retry-after'], '3');
  assert.equal(res.json.message, 'Requests rate limit exceeded');
  fake.injectFault({ kind: 'status', status: 503 });
  res = await postJson(`${fake.url}/chat/completions`, {}, AUTH);
  assert.equal(res.status, 503);
  assert.match(res.headers['content-type'], /^text\/plain/);
  assert.match(res.text, /upstream connect error/);
  fake.injectFault({ kind: 'status', status: 400, path: '/v1/embeddings' });
  res = await postJson(`${fake.url}/chat/completions`, { model: 'mistral-small-latest', messages: [{ role: 'user', content: 'x' }] }, AUTH);
  assert.equal(res.status, 200, 'a fault for another path is kept for later');
  res = await postJson(`${fake.url}/embeddings`, {}, AUTH);
  assert.equal(res.status, 400);
});

test('transport faults: hang, garbage, close_immediately, reset_after', async () => {
  const body = { model: 'mistral-small-latest', messages: [{ role: 'user', content: 'x' }] };
  fake.injectFault({ kind: 'garbage' });
  await assert.rejects(postJson(`${fake.url}/chat/completions`, body, AUTH), (e) => /parse|HPE_|socket hang up|ECONNRESET/i.test(`${e.code} ${e.message}`));

  fake.injectFault({ kind: 'close_immediately' });
  await assert.rejects(postJson(`${fake.url}/chat/completions`, body, AUTH), /socket hang up|ECONNRESET/);

  fake.injectFault({ kind: 'reset_after', chunks: 2 });
  const s = await openStream(`${fake.url}/chat/completions`, { ...body, stream: true }, AUTH);
  const { events, ended } = await s.done;
  assert.equal(ended, false);
  assert.equal(events.length, 2);

  fake.injectFault({ kind: 'hang' });
  const aborted = fake.nextAbort();
  const hung = request(`${fake.url}/chat/completions`, { method: 'POST', headers: AUTH, body, timeoutMs: 300 });
  await assert.rejects(hung, /timed out/);
  // The test's timeout left the socket open; the fake notices when it goes away.
  fake.injectFault({ kind: 'hang' });
  const sock = net.connect(fake.port, '127.0.0.1');
  const payload = JSON.stringify(body);
  sock.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: ${payload.length}\r\n\r\n${payload}`);
  await withTimeout(fake.nextRequest('/v1/chat/completions'), 2000, 'hung request recorded');
  sock.destroy();
  await withTimeout(aborted, 2000, 'abort of the hung request');
});

test('embeddings are deterministic float32-exact values', async () => {
  const res = await postJson(`${fake.url}/embeddings`, { model: 'mistral-embed', input: ['a', 'b'], output_dimension: 8 }, AUTH);
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.object, 'list');
  assert.deepEqual(res.json.data.map((d) => d.embedding), [embeddingFor('a', 8), embeddingFor('b', 8)]);
  for (const v of res.json.data[0].embedding) assert.equal(Math.fround(v), v);
  const full = await postJson(`${fake.url}/embeddings`, { model: 'mistral-embed', input: 'a' }, AUTH);
  assert.equal(full.json.data[0].embedding.length, 1024);
});

test('FIM is served by the codestral instance only', async () => {
  const body = { model: 'codestral-latest', prompt: 'def add(a, b):', suffix: 'return c' };
  const res = await postJson(`${codestral.url}/fim/completions`, body, AUTH);
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.choices[0].message.content, 'fim: def add(a, b):|return c');
  assert.equal((await postJson(`${fake.url}/fim/completions`, body, AUTH)).status, 404);
  const bad = await postJson(`${codestral.url}/fim/completions`, { ...body, echo: true }, AUTH);
  assert.equal(bad.status, 422);
});

test('passthrough reports byte count and sha256; echo-headers shows headers', async () => {
  const data = Buffer.alloc(300_000, 7);
  const res = await request(`${fake.url}/files`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/octet-stream' }, body: data });
  assert.equal(res.status, 200);
  assert.equal(res.json.bytes, data.length);
  assert.equal(res.json.sha256, createHash('sha256').update(data).digest('hex'));
  const echo = await request(`${fake.url}/echo-headers`, { headers: { ...AUTH, 'x-custom': 'v' } });
  assert.equal(echo.json.headers['x-custom'], 'v');
});

test('models list in Mistral\'s shape', async () => {
  const res = await request(`${fake.url}/models`, { headers: AUTH });
  assert.equal(res.json.object, 'list');
  const ids = res.json.data.map((m) => m.id);
  assert.ok(ids.includes('mistral-large-latest') && ids.includes('mistral-embed'));
  assert.equal(res.json.data[0].owned_by, 'mistralai');
});

test('the openai SDK talks to the fake directly (errors lack OpenAI\'s shape: that is what the proxy fixes)', async () => {
  const client = new OpenAI({ apiKey: KEY, baseURL: fake.url, maxRetries: 0 });
  const c = await client.chat.completions.create({ model: 'mistral-small-latest', messages: [{ role: 'user', content: 'sdk' }] });
  assert.equal(c.choices[0].message.content, 'echo: sdk');
  const stream = await client.chat.completions.create({ model: 'mistral-small-latest', messages: [{ role: 'user', content: 'sdk stream' }], stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  assert.equal(text, 'echo: sdk stream');
  const e = await client.embeddings.create({ model: 'mistral-embed', input: 'x', encoding_format: 'float' });
  assert.deepEqual(e.data[0].embedding, embeddingFor('x'));
  await assert.rejects(client.chat.completions.create({ model: 'mistral-tiny', messages: [{ role: 'user', content: 'x' }] }), (err) => err.status === 400);
});

test('serves https with a generated certificate; connections are counted', async () => {
  const pki = await makeTestCerts();
  const tlsFake = await startFakeMistral({ apiKey: KEY, tls: pki.tlsOptions(pki.server) });
  try {
    assert.match(tlsFake.url, /^https:\/\/localhost:\d+\/v1$/);
    const https = await import('node:https');
    const agent = new https.Agent({ keepAlive: true, ca: pki.read(pki.ca.cert), maxSockets: 1 });
    for (let i = 0; i < 2; i++) {
      const status = await new Promise((res, rej) => {
        https.get(`${tlsFake.url}/models`, { agent, headers: AUTH }, (r) => {
          r.resume();
          r.on('end', () => res(r.statusCode));
        }).on('error', rej);
      });
      assert.equal(status, 200);
    }
    agent.destroy();
    assert.equal(tlsFake.connections, 1);
  } finally {
    await tlsFake.close();
    await pki.cleanup();
  }
});

test('standalone: prints its port and serves', async () => {
  const child = spawn(process.execPath, [new URL('./fake-mistral.mjs', import.meta.url).pathname, '--port', '0', '--key', 'K', '--name', 'codestral'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await withTimeout(new Promise((res) => {
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
        const m = /fake-mistral listening on (\d+)/.exec(out);
        if (m) res(Number(m[1]));
      });
    }), 5000, 'standalone start');
    const res = await postJson(`http://127.0.0.1:${port}/v1/fim/completions`, { model: 'codestral-latest', prompt: 'p' }, { authorization: 'Bearer K' });
    assert.equal(res.status, 200);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.on('exit', r));
  }
});

test('mistral-schemas.json is what gen-schemas.mjs makes from the OpenAPI file (when it is around)', { skip: !existsSync(new URL('../../../shared/mistral-openapi.yaml', import.meta.url)) && 'no ../shared/mistral-openapi.yaml next to the checkout' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'gen-schemas-'));
  try {
    const out = join(dir, 'out.json');
    const child = spawn(process.execPath, [new URL('./gen-schemas.mjs', import.meta.url).pathname, new URL('../../../shared/mistral-openapi.yaml', import.meta.url).pathname, out], { stdio: 'inherit' });
    const code = await new Promise((r) => child.on('exit', r));
    assert.equal(code, 0);
    assert.equal(readFileSync(out, 'utf8'), readFileSync(new URL('./mistral-schemas.json', import.meta.url), 'utf8'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('400 for what Mistral refuses beyond the schema: tool call ids, role order, tools/images on models without them', async () => {
  const call = (id) => ({ role: 'assistant', content: '', tool_calls: [{ id, type: 'function', function: { name: 'f', arguments: '{}' } }] });
  const cases = [
    [{ model: 'mistral-small-latest', messages: [{ role: 'user', content: 'q' }, call('call_abc123'), { role: 'tool', content: 'r', tool_call_id: 'call_abc123' }] }, /Tool call id was call_abc123/],
    [{ model: 'mistral-small-latest', messages: [{ role: 'user', content: 'q' }, call('abcDEF123'), { role: 'tool', content: 'r', tool_call_id: 'abcDEF123' }, { role: 'user', content: 'more' }] }, /Unexpected role 'user' after role 'tool'/],
    [{ model: 'mistral-small-latest', messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'partial' }] }, /Expected last role User or Tool/],
    [{ model: 'open-mistral-nemo', messages: [{ role: 'user', content: 'q' }], tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] }, /does not support function calling/],
    [{ model: 'open-mistral-nemo', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: 'https://x/y.png' }] }] }, /does not support image/],
  ];
  for (const [body, message] of cases) {
    const res = await postJson(`${fake.url}/chat/completions`, body, AUTH);
    assert.equal(res.status, 400, res.text);
    assert.equal(res.json.object, 'error');
    assert.match(res.json.message, message);
  }
  const ok = await postJson(`${fake.url}/chat/completions`, { model: 'mistral-small-latest', messages: [{ role: 'user', content: 'q' }, call('abcDEF123'), { role: 'tool', content: 'r', tool_call_id: 'abcDEF123' }, { role: 'assistant', content: 'so', prefix: true }] }, AUTH);
  assert.equal(ok.status, 200, ok.text);
});

test('setFinishReason changes finish_reason of plain and streamed answers', async () => {
  fake.setFinishReason('model_length');
  try {
    const plain = await postJson(`${fake.url}/chat/completions`, { model: 'mistral-small-latest', messages: [{ role: 'user', content: 'q' }] }, AUTH);
    assert.equal(plain.json.choices[0].finish_reason, 'model_length');
    const s = await openStream(`${fake.url}/chat/completions`, { model: 'mistral-small-latest', stream: true, messages: [{ role: 'user', content: 'q' }] }, AUTH);
    const { events } = await s.done;
    assert.equal(JSON.parse(events.at(-2).data).choices[0].finish_reason, 'model_length');
  } finally {
    fake.setFinishReason('stop');
  }
});

test('tool calls: forced by tool_choice or asked with "call ...", in Mistral\'s shape; the result is echoed back', async () => {
  const tools = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: { text: { type: 'string' } } } } }];
  const res = await postJson(`${fake.url}/chat/completions`, { model: 'mistral-small-latest', messages: [{ role: 'user', content: 'find it' }], tools, tool_choice: 'any' }, AUTH);
  assert.equal(res.status, 200, res.text);
  const choice = res.json.choices[0];
  assert.equal(choice.finish_reason, 'tool_calls');
  const [call] = choice.message.tool_calls;
  assert.match(call.id, /^[a-zA-Z0-9]{9}$/);
  assert.deepEqual(call.function, { name: 'lookup', arguments: '{"text":"find it"}' });

  const s = await openStream(`${fake.url}/chat/completions`, { model: 'mistral-small-latest', stream: true, messages: [{ role: 'user', content: 'call lookup' }], tools }, AUTH);
  const { events } = await s.done;
  const toolChunk = JSON.parse(events[1].data);
  assert.equal(toolChunk.choices[0].finish_reason, 'tool_calls');
  assert.equal(toolChunk.choices[0].delta.tool_calls[0].function.name, 'lookup');

  const after = await postJson(`${fake.url}/chat/completions`, {
    model: 'mistral-small-latest',
    tools,
    messages: [{ role: 'user', content: 'find it' }, { role: 'assistant', content: '', tool_calls: [call] }, { role: 'tool', tool_call_id: call.id, name: 'lookup', content: '42' }],
  }, AUTH);
  assert.equal(after.status, 200, after.text);
  assert.equal(after.json.choices[0].message.content, 'tool result: 42');
});
