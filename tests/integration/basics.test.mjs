// The proxy in front of fake Mistral hosts: health, plain proxying, response
// headers (SPEC §9), keep-alive on both sides, passthrough of other /v1 paths.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { startStack, KEYS } from '../support/stack.mjs';
import { request, postJson, assertProxyHeaders, chatBody, withTimeout } from '../support/http.mjs';
import { embeddingFor } from '../fake-mistral/fake-mistral.mjs';

let stack;
let base;

before(async () => {
  // One worker: the upstream pool is per worker, and the reuse test wants one pool.
  stack = await startStack({ proxy: { server: { threads: 1 } } });
  base = stack.proxy.url;
});
after(async () => {
  await stack?.stop();
});
beforeEach(() => stack.reset());

test('GET /healthz answers 200 {"status":"ok"} without calling upstream', async () => {
  const res = await request(`${base}/healthz`);
  assert.equal(res.status, 200);
  assert.match(res.headers['content-type'] ?? '', /^application\/json/);
  assert.deepEqual(res.json, { status: 'ok' });
  assert.ok(res.headers['x-request-id'], 'x-request-id on /healthz');
  assert.equal(stack.allRequests().length, 0);
});

test('non-streamed chat completion goes to mistral with the env key and comes back intact', async () => {
  const res = await postJson(`${base}/v1/chat/completions`, chatBody('hello proxy'));
  assert.equal(res.status, 200, res.text);
  assertProxyHeaders(res, 'mistral');
  assert.match(res.headers['content-type'] ?? '', /^application\/json/);
  assert.equal(res.json.object, 'chat.completion');
  assert.equal(res.json.choices[0].message.content, 'echo: hello proxy');
  assert.equal(res.json.choices[0].finish_reason, 'stop');
  assert.ok(res.json.usage.total_tokens > 0);

  const [sent] = stack.fakes.mistral.requests;
  assert.ok(sent, 'mistral fake received the request');
  assert.equal(sent.method, 'POST');
  assert.equal(sent.path, '/v1/chat/completions');
  assert.equal(sent.headers.authorization, `Bearer ${KEYS.mistral}`);
  assert.deepEqual(JSON.parse(sent.body).messages, [{ role: 'user', content: 'hello proxy' }]);
});

test('x-request-id differs between requests', async () => {
  const a = await postJson(`${base}/v1/chat/completions`, chatBody('a'));
  const b = await postJson(`${base}/v1/chat/completions`, chatBody('b'));
  assert.ok(a.headers['x-request-id'] && b.headers['x-request-id']);
  assert.notEqual(a.headers['x-request-id'], b.headers['x-request-id']);
});

test('embeddings with encoding_format float come back as the fake\'s floats', async () => {
  const res = await postJson(`${base}/v1/embeddings`, { model: 'mistral-embed', input: ['one', 'two'], encoding_format: 'float' });
  assert.equal(res.status, 200, res.text);
  assertProxyHeaders(res, 'mistral');
  assert.deepEqual(res.json.data.map((d) => d.embedding), [embeddingFor('one'), embeddingFor('two')]);
  assert.deepEqual(res.json.data.map((d) => d.index), [0, 1]);
});

test('embeddings with encoding_format base64 are little-endian float32 of the same values (SPEC §4)', async () => {
  const res = await postJson(`${base}/v1/embeddings`, { model: 'mistral-embed', input: 'three', encoding_format: 'base64' });
  assert.equal(res.status, 200, res.text);
  const encoded = res.json.data[0].embedding;
  assert.equal(typeof encoded, 'string', `embedding should be a base64 string, got ${typeof encoded}`);
  const bytes = Buffer.from(encoded, 'base64');
  const floats = [];
  for (let i = 0; i < bytes.length; i += 4) floats.push(bytes.readFloatLE(i));
  assert.deepEqual(floats, embeddingFor('three'));
  // What reached Mistral must be valid for it: the fake would have answered 422 otherwise.
  assert.equal(stack.fakes.mistral.requests.length, 1);
});

test('GET /v1/models lists the upstream\'s models', async () => {
  const res = await request(`${base}/v1/models`);
  assert.equal(res.status, 200, res.text);
  assertProxyHeaders(res, 'mistral');
  assert.equal(res.json.object, 'list');
  const ids = res.json.data.map((m) => m.id);
  for (const id of ['mistral-large-latest', 'mistral-small-latest', 'mistral-embed']) assert.ok(ids.includes(id), `${id} in ${ids}`);
});

test('keep-alive: two requests on one client connection, one upstream connection', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const connectionsBefore = stack.fakes.mistral.connections;
    const first = await postJson(`${base}/v1/chat/completions`, chatBody('first'), {}, { agent });
    const second = await postJson(`${base}/v1/chat/completions`, chatBody('second'), {}, { agent });
    assert.equal(first.status, 200, first.text);
    assert.equal(second.status, 200, second.text);
    assert.equal(first.json.choices[0].message.content, 'echo: first');
    assert.equal(second.json.choices[0].message.content, 'echo: second');
    assert.equal(first.socket, second.socket, 'the client connection was kept alive');
    assert.equal(second.reusedSocket, true);
    const newUpstreamConnections = stack.fakes.mistral.connections - connectionsBefore;
    assert.ok(newUpstreamConnections <= 1, `upstream connection reused: ${newUpstreamConnections} new connections for 2 requests`);
    assert.equal(stack.fakes.mistral.requests.length, 2);
  } finally {
    agent.destroy();
  }
});

test('keep-alive: a streamed answer then a plain one on the same client connection', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const streamed = await postJson(`${base}/v1/chat/completions`, chatBody('s', { stream: true }), {}, { agent });
    assert.equal(streamed.status, 200);
    assert.match(streamed.text, /data: \[DONE\]/);
    const plain = await postJson(`${base}/v1/chat/completions`, chatBody('p'), {}, { agent });
    assert.equal(plain.status, 200, plain.text);
    assert.equal(plain.json.choices[0].message.content, 'echo: p');
    assert.equal(plain.reusedSocket, true);
  } finally {
    agent.destroy();
  }
});

function multipart(boundary, fileBytes) {
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="train.jsonl"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  return Buffer.concat([head, fileBytes, tail]);
}

test('passthrough: a 5 MB multipart upload to /v1/files arrives byte for byte, with the upstream key', async () => {
  const boundary = `----mistralproxytest${randomBytes(8).toString('hex')}`;
  const body = multipart(boundary, randomBytes(5 * 1024 * 1024));
  const res = await request(`${base}/v1/files`, {
    method: 'POST',
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, authorization: 'Bearer client-side-token' },
    body,
    timeoutMs: 30_000,
  });
  assert.equal(res.status, 200, res.text);
  assertProxyHeaders(res, 'mistral');
  assert.equal(res.json.bytes, body.length);
  assert.equal(res.json.sha256, createHash('sha256').update(body).digest('hex'));
  const [sent] = stack.fakes.mistral.requests;
  assert.equal(sent.headers.authorization, `Bearer ${KEYS.mistral}`);
  assert.equal(sent.headers['content-type'], `multipart/form-data; boundary=${boundary}`);
});

test('passthrough: the request body is streamed upstream, not buffered whole first', async () => {
  const total = 4 * 1024 * 1024;
  const firstPart = randomBytes(512 * 1024);
  const rest = randomBytes(total - firstPart.length);
  const started = stack.fakes.mistral.nextRequestStart('/v1/files');
  const response = new Promise((res, rej) => {
    const req = http.request(`${base}/v1/files`, { method: 'POST', agent: false, headers: { 'content-type': 'application/octet-stream', 'content-length': String(total) } }, (r) => {
      let text = '';
      r.setEncoding('utf8');
      r.on('data', (c) => (text += c));
      r.on('end', () => res({ status: r.statusCode, json: JSON.parse(text) }));
    });
    req.on('error', rej);
    req.write(firstPart);
    // Only once the fake has seen the request start does the client send the rest.
    withTimeout(started, 5000, 'upstream request started before the client finished its body')
      .then(() => req.end(rest))
      .catch((error) => {
        req.destroy();
        rej(error);
      });
  });
  const res = await withTimeout(response, 30_000, 'passthrough answer');
  assert.equal(res.status, 200);
  assert.equal(res.json.bytes, total);
  assert.equal(res.json.sha256, createHash('sha256').update(firstPart).update(rest).digest('hex'));
});

test('passthrough: GET with a query string and custom headers, the client\'s Authorization replaced', async () => {
  const res = await request(`${base}/v1/echo-headers?limit=3&after=x`, { headers: { 'x-custom-header': 'kept', authorization: 'Bearer client-side-token' } });
  assert.equal(res.status, 200, res.text);
  assertProxyHeaders(res, 'mistral');
  assert.equal(res.json.path, '/v1/echo-headers?limit=3&after=x');
  assert.equal(res.json.headers['x-custom-header'], 'kept');
  assert.equal(res.json.headers.authorization, `Bearer ${KEYS.mistral}`);
  assert.ok(!JSON.stringify(res.json.headers).includes('client-side-token'), 'client token forwarded somewhere');
});

test('SIGTERM stops the proxy with exit code 0', async () => {
  const { startProxy } = await import('../support/proxy.mjs');
  const proxy = await startProxy({ env: {} });
  const { code, signal } = await withTimeout(proxy.stop(10_000), 15_000, 'proxy stop');
  assert.notEqual(signal, 'SIGKILL', 'it did not stop within 10 s of SIGTERM (the test had to SIGKILL it)');
  assert.equal(signal, null, `it died of ${signal} instead of handling it and exiting 0`);
  assert.equal(code, 0);
});
