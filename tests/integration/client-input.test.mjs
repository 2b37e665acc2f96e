// Bad input from clients is answered by the proxy itself (SPEC §7): malformed
// HTTP, oversized headers and bodies, bodies that are not one JSON object. Mistral
// is never called for them.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startStack } from '../support/stack.mjs';
import { setTimeout as delay } from 'node:timers/promises';
import { postJson, request, rawExchange, rawRequestUntilResponse, parseRawResponse, assertOpenAiError, chatBody, withTimeout } from '../support/http.mjs';

const MAX_BODY = 1024;
const MAX_HEADER = 4096;
let stack;
let port;

before(async () => {
  stack = await startStack({ proxy: { server: { max_body_bytes: MAX_BODY, max_header_bytes: MAX_HEADER, header_timeout: '2s', body_timeout: '2s', idle_timeout: '1s' } } });
  port = stack.proxy.port;
});
after(async () => {
  await stack?.stop();
});
beforeEach(() => stack.reset());

function assertRawOpenAiError(response, statuses) {
  assert.ok(response, 'no HTTP response');
  assert.ok([statuses].flat().includes(response.status), `status ${response.status} not in ${statuses}: ${response.statusLine}`);
  assert.match(response.headers['content-type'] ?? '', /^application\/json/, `content-type: ${response.headers['content-type']}`);
  assert.ok(response.json?.error?.message, `not an OpenAI error body: ${response.body}`);
}

test('a body over max_body_bytes (Content-Length) gets 413 before it is read, nothing sent', async () => {
  const total = 1024 * 1024;
  const head =
    'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
    `Content-Length: ${total}\r\n\r\n`;
  // Only the head and a first slice are sent: the answer must come without the rest.
  const { response, socket, closed } = await rawRequestUntilResponse(port, head + '{"model":"mistral-small-latest","messages":[' + ' '.repeat(16 * 1024));
  try {
    assertRawOpenAiError(response, 413);
    assert.equal(response.json.error.type, 'invalid_request_error');
  } finally {
    socket.destroy();
    await closed;
  }
  assert.deepEqual(stack.allRequests(), []);
});

test('a whole 1 MB body over the limit sent at once also gets 413 (client sees the answer)', async () => {
  const big = JSON.stringify(chatBody('x'.repeat(1024 * 1024)));
  let res;
  try {
    res = await postJson(`${stack.proxy.baseURL}/chat/completions`, big);
  } catch (error) {
    // The proxy may close once it has answered; Node reports EPIPE/ECONNRESET if it was still writing.
    assert.fail(`no 413 readable by the client: ${error.code} ${error.message}`);
  }
  assertOpenAiError(res, 413);
  assert.deepEqual(stack.allRequests(), []);
});

test('a chunked body growing over max_body_bytes gets 413, nothing sent', async () => {
  const piece = 'x'.repeat(512);
  const chunk = `${piece.length.toString(16)}\r\n${piece}\r\n`;
  const head = 'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n';
  const { response, socket, closed } = await rawRequestUntilResponse(port, head + chunk.repeat(8));
  socket.destroy();
  await closed;
  assertRawOpenAiError(response, 413);
  assert.deepEqual(stack.allRequests(), []);
});

test('a body just under the limit is fine', async () => {
  const body = JSON.stringify(chatBody('y'));
  assert.ok(body.length < MAX_BODY);
  const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, body);
  assert.equal(res.status, 200, res.text);
});

test('garbage instead of HTTP: 400 and the connection is closed', async () => {
  const { response, closed } = await rawExchange(port, 'GARBAGE\r\n\r\n', { keepWriting: true });
  assert.ok(closed);
  assert.ok(response, 'no HTTP response');
  assert.equal(response.status, 400, response.statusLine);
});

test('a malformed header line: 400, connection closed, nothing sent', async () => {
  const { response, closed } = await rawExchange(port, 'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nThis is not a header\r\nContent-Length: 2\r\n\r\n{}', { keepWriting: true });
  assert.ok(closed);
  assert.ok(response, 'no HTTP response');
  assert.equal(response.status, 400, response.statusLine);
  assert.deepEqual(stack.allRequests(), []);
});

test('an invalid Content-Length: 400', async () => {
  const { response } = await rawExchange(port, 'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: nope\r\n\r\n{}', { keepWriting: true });
  assert.ok(response, 'no HTTP response');
  assert.equal(response.status, 400, response.statusLine);
  assert.deepEqual(stack.allRequests(), []);
});

test('headers over max_header_bytes: 431 (or 400), nothing sent', async () => {
  const res = await request(`${stack.proxy.baseURL}/models`, { headers: { 'x-padding': 'p'.repeat(MAX_HEADER * 2) } }).catch((error) => ({ error }));
  if (res.error) assert.fail(`no answer to oversized headers: ${res.error.code} ${res.error.message}`);
  assert.ok([431, 400].includes(res.status), `status ${res.status}`);
  assert.deepEqual(stack.allRequests(), []);
});

test('a client that stops sending mid-headers is dropped after header_timeout', async () => {
  const socket = net.connect(port, '127.0.0.1');
  const closed = new Promise((r) => socket.on('close', r));
  socket.on('error', () => {});
  socket.on('data', () => {});
  socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
  await withTimeout(closed, 6000, 'connection closed by header_timeout (2s)');
});

test('a client that stops sending mid-body is dropped after body_timeout, nothing sent', async () => {
  const socket = net.connect(port, '127.0.0.1');
  const closed = new Promise((r) => socket.on('close', r));
  socket.on('error', () => {});
  socket.on('data', () => {});
  socket.write('POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"model":');
  await withTimeout(closed, 6000, 'connection closed by body_timeout (2s)');
  assert.deepEqual(stack.allRequests(), []);
});

// The connection of an answered request closes after idle_timeout (1s), not before.
async function closesAfterIdleTimeout({ response, socket, closed }) {
  assert.equal(response.status, 200);
  const t0 = Date.now();
  try {
    await withTimeout(closed, 5000, 'idle connection closed (idle_timeout 1s)');
  } finally {
    socket.destroy();
  }
  assert.ok(Date.now() - t0 >= 500, `closed ${Date.now() - t0} ms after the answer: too early for idle_timeout 1s`);
}

test('an idle keep-alive connection is closed after idle_timeout', async () => {
  await closesAfterIdleTimeout(await rawRequestUntilResponse(port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
});

test('after a forwarded request too: the wait for the next request ends after idle_timeout', async () => {
  // A forwarded request leaves its client watch reading: that read is the wait
  // for the next request, and idle_timeout still bounds it.
  const body = JSON.stringify(chatBody('hello'));
  await closesAfterIdleTimeout(await rawRequestUntilResponse(
    port,
    `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  ));
});

test('each request on a kept-alive connection starts its idle wait anew: open past the last wait\'s deadline', async () => {
  // The wait is bounded by one timer for the connection, moved lazily: the
  // second request comes 700 ms after the first answer, so the first wait's
  // deadline (1 s after the first answer) falls 300 ms into the second wait,
  // and must not end it.
  const body = JSON.stringify(chatBody('hello'));
  const head = `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  const first = await rawRequestUntilResponse(port, head);
  assert.equal(first.response.status, 200);
  await delay(700);
  const secondAnswer = new Promise((resolve) => {
    first.socket.on('data', () => {
      const text = first.text();
      const start = text.indexOf('HTTP/1.1 ', 1);
      const response = start > 0 ? parseRawResponse(text.slice(start)) : null;
      if (response) resolve(response);
    });
  });
  first.socket.write(head);
  const response = await withTimeout(secondAnswer, 5000, 'the second answer on the kept-alive connection');
  await closesAfterIdleTimeout({ response, socket: first.socket, closed: first.closed });
});

const NOT_JSON = [
  ['plain text', 'hello, this is not json'],
  ['empty body', ''],
  ['truncated object', '{"model":"mistral-small-latest","messages":['],
  ['invalid literal inside an array', '{"model":"mistral-small-latest","messages":[tru]}'],
  ['trailing content', '{"model":"mistral-small-latest","messages":[]}}'],
  ['an array, not an object', '[{"model":"mistral-small-latest"}]'],
  ['a bare string', '"mistral-small-latest"'],
  ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0x6d, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d])],
];

for (const [name, body] of NOT_JSON) {
  test(`not a JSON object (${name}) on /v1/chat/completions: 400, nothing sent`, async () => {
    const res = await request(`${stack.proxy.baseURL}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    assertOpenAiError(res, 400, { type: 'invalid_request_error' });
    assert.ok(res.headers['x-request-id']);
    assert.deepEqual(stack.allRequests(), []);
  });
}

test('not JSON on /v1/embeddings and /v1/fim/completions: 400, nothing sent', async () => {
  for (const path of ['/embeddings', '/fim/completions']) {
    const res = await request(`${stack.proxy.baseURL}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{oops' });
    assertOpenAiError(res, 400);
  }
  assert.deepEqual(stack.allRequests(), []);
});

test('after bad input on a keep-alive connection, or a 413, the proxy still serves new connections', async () => {
  // Its own bad input first, so that the test holds whatever ran before it.
  const garbage = await rawExchange(port, 'NOT HTTP AT ALL\r\n\r\n', { keepWriting: true });
  assertRawOpenAiError(garbage.response, 400);
  const tooBig = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('x'.repeat(MAX_BODY * 2)));
  assertOpenAiError(tooBig, 413);
  const notJson = await request(`${stack.proxy.baseURL}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{oops' });
  assertOpenAiError(notJson, 400);
  const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('fine'));
  assert.equal(res.status, 200, res.text);
  assert.equal(stack.allRequests().length, 1, 'only the good request went upstream');
});
