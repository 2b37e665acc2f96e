// Error translation end to end (SPEC §7): every shape Mistral answers errors in
// reaches the client as {"error":{message,type,param,code}}, status and text kept.
// Also SPEC §8's retry of upstream 429/503 before any byte reached the client.
import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { startStack } from '../support/stack.mjs';
import { postJson, openStream, assertOpenAiError, assertProxyHeaders, chatBody, withTimeout } from '../support/http.mjs';

const SHAPES = [
  {
    name: '422 FastAPI detail array',
    fault: { status: 422, body: { detail: [{ type: 'extra_forbidden', loc: ['body', 'user'], msg: 'Extra inputs are not permitted', input: 'u-1' }] } },
    status: 422,
    includes: 'Extra inputs are not permitted',
    type: 'invalid_request_error',
  },
  {
    name: '400 object:error with a message string',
    fault: { status: 400, body: { object: 'error', message: 'Invalid model: mistral-tiny', type: 'invalid_model', param: null, code: '1500' } },
    status: 400,
    includes: 'Invalid model: mistral-tiny',
    type: 'invalid_request_error',
  },
  {
    name: '400 object:error whose message is an object holding detail',
    fault: {
      status: 400,
      body: { object: 'error', message: { detail: [{ type: 'missing', loc: ['body', 'messages'], msg: 'Field required', input: {} }] }, type: 'invalid_request_error', param: null, code: null },
    },
    status: 400,
    includes: 'Field required',
    type: 'invalid_request_error',
  },
  {
    name: '401 {"message":"Unauthorized"}',
    fault: { status: 401, body: { message: 'Unauthorized', request_id: '0123456789abcdef0123456789abcdef' } },
    status: 401,
    includes: 'Unauthorized',
    type: 'authentication_error',
  },
  {
    name: '404 {"detail":"Not Found"}',
    fault: { status: 404, body: { detail: 'Not Found' } },
    status: 404,
    includes: 'Not Found',
  },
  {
    name: '503 plain text',
    fault: { status: 503, body: 'upstream connect error or disconnect/reset before headers. reset reason: overflow', contentType: 'text/plain' },
    status: 503,
    includes: 'upstream connect error',
    type: 'api_error',
  },
  {
    name: '500 object:error',
    fault: { status: 500, body: { object: 'error', message: 'Internal server error', type: 'internal_server_error', param: null, code: '1000' } },
    status: 500,
    includes: 'Internal server error',
    type: 'api_error',
  },
  {
    name: '429 {"message":"Requests rate limit exceeded"}',
    fault: { status: 429, body: { message: 'Requests rate limit exceeded', request_id: 'abc' }, headers: { 'retry-after': '2' } },
    status: 429,
    includes: 'Requests rate limit exceeded',
    type: 'rate_limit_error',
  },
];

describe('Mistral error shapes, translated', () => {
  let stack;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await stack?.stop();
  });
  beforeEach(() => stack.reset());

  for (const shape of SHAPES) {
    test(`${shape.name} -> OpenAI shape, status and text kept`, async () => {
      stack.fakes.mistral.injectFault({ kind: 'status', ...shape.fault });
      const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('err'));
      assertOpenAiError(res, shape.status, { messageIncludes: shape.includes, type: shape.type });
      assertProxyHeaders(res, 'mistral');
      assert.equal(stack.fakes.mistral.requests.length, 1, 'retry is off in these tests (max_retries: 0)');
    });
  }

  test('the same shapes on a streamed request come back as a JSON error (nothing was streamed yet)', async () => {
    stack.fakes.mistral.injectFault({ kind: 'status', ...SHAPES[1].fault });
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('err', { stream: true }));
    assertOpenAiError(res, 400, { messageIncludes: 'Invalid model: mistral-tiny' });
  });

  test('a 429 keeps a Retry-After no longer than max_retry_after', async () => {
    stack.fakes.mistral.injectFault({ kind: 'status', status: 429, headers: { 'retry-after': '7' } });
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('slow down'));
    assertOpenAiError(res, 429, { type: 'rate_limit_error' });
    const retryAfter = Number(res.headers['retry-after']);
    assert.ok(Number.isFinite(retryAfter) && retryAfter >= 0 && retryAfter <= 30, `Retry-After: ${res.headers['retry-after']}`);
  });

  test('Mistral\'s own answer to an unknown model, end to end', async () => {
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('x', { model: 'mistral-no-such-model-3000' }));
    assertOpenAiError(res, 400, { messageIncludes: 'Invalid model: mistral-no-such-model-3000' });
  });

  test('errors on embeddings and passthrough are translated too', async () => {
    stack.fakes.mistral.injectFault({ kind: 'status', ...SHAPES[0].fault, path: '/v1/embeddings' });
    const emb = await postJson(`${stack.proxy.baseURL}/embeddings`, { model: 'mistral-embed', input: 'x', encoding_format: 'float' });
    assertOpenAiError(emb, 422, { messageIncludes: 'Extra inputs are not permitted' });
    stack.fakes.mistral.injectFault({ kind: 'status', status: 404, body: { detail: 'File not found' }, path: /^\/v1\/files/ });
    const files = await postJson(`${stack.proxy.baseURL}/files/abc`, {});
    assertOpenAiError(files, 404, { messageIncludes: 'File not found' });
  });
});

describe('retries (SPEC §8)', () => {
  let stack;
  before(async () => {
    stack = await startStack({ proxy: { retry: { max_retries: 2, backoff: ['50ms', '50ms'], max_retry_after: '1s' } } });
  });
  after(async () => {
    await stack?.stop();
  });
  beforeEach(() => stack.reset());

  test('an upstream 429 is retried and the client gets the success', async () => {
    stack.fakes.mistral.injectFault({ kind: 'status', status: 429 });
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('again'));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.choices[0].message.content, 'echo: again');
    assert.equal(stack.fakes.mistral.requests.length, 2);
  });

  test('an upstream 503 before any byte is retried, streamed requests too', async () => {
    stack.fakes.mistral.injectFault({ kind: 'status', status: 503 });
    const s = await openStream(`${stack.proxy.baseURL}/chat/completions`, chatBody('stream again', { stream: true }));
    assert.equal(s.status, 200);
    const { events } = await withTimeout(s.done, 10_000, 'stream');
    assert.equal(events.at(-1).data, '[DONE]');
    assert.equal(stack.fakes.mistral.requests.length, 2);
  });

  test('after the last try the client gets the 429 in OpenAI shape with a bounded Retry-After', async () => {
    stack.fakes.mistral.injectFault({ kind: 'status', status: 429, times: 3, headers: { 'retry-after': '60' } });
    const t0 = Date.now();
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('no luck'), {}, { timeoutMs: 20_000 });
    assertOpenAiError(res, 429, { messageIncludes: 'Requests rate limit exceeded', type: 'rate_limit_error' });
    assert.equal(stack.fakes.mistral.requests.length, 3, '1 try + max_retries 2');
    const retryAfter = Number(res.headers['retry-after']);
    assert.ok(retryAfter <= 1, `Retry-After ${res.headers['retry-after']} exceeds max_retry_after 1s`);
    assert.ok(Date.now() - t0 < 10_000);
  });

  test('a 4xx other than 429 is not retried', async () => {
    stack.fakes.mistral.injectFault({ kind: 'status', status: 400 });
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('bad'));
    assertOpenAiError(res, 400);
    assert.equal(stack.fakes.mistral.requests.length, 1);
  });
});
