// Keys (SPEC §3): what goes upstream as Authorization, who may call at all, and
// that no key ever shows up in an answer or a log line.
import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, KEYS } from '../support/stack.mjs';
import { request, postJson, assertOpenAiError, chatBody } from '../support/http.mjs';
import { waitUntil } from '../support/procfs.mjs';

const CLIENT_KEYS = ['client-key-one-93ab', 'client-key-two-1c7e'];
const fimBody = { model: 'codestral-latest', prompt: 'def f():' };

function assertNoLeak(texts, secrets) {
  for (const text of texts) {
    for (const secret of secrets) assert.ok(!text.includes(secret), `a key leaked: ${JSON.stringify(text.slice(0, 300))}`);
  }
}

describe('keys from the environment', () => {
  let stack;
  const answers = [];
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    if (stack) {
      const metrics = await request(`${stack.proxy.url}/metrics`);
      assertNoLeak([stack.proxy.logs(), metrics.text, ...answers], [KEYS.mistral, KEYS.codestral, 'client-sent-token']);
    }
    await stack?.stop();
  });
  beforeEach(() => stack.reset());

  test('the upstream gets Bearer <env key>; the client\'s Authorization is not forwarded', async () => {
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('k'), { authorization: 'Bearer client-sent-token' });
    answers.push(res.text, JSON.stringify(res.headers));
    assert.equal(res.status, 200, res.text);
    const [sent] = stack.fakes.mistral.requests;
    assert.equal(sent.headers.authorization, `Bearer ${KEYS.mistral}`);
    assert.ok(!JSON.stringify(sent.headers).includes('client-sent-token'), 'client token forwarded in some header');
  });

  test('codestral gets its own key', async () => {
    const res = await postJson(`${stack.proxy.baseURL}/fim/completions`, fimBody, { authorization: 'Bearer client-sent-token' });
    answers.push(res.text);
    assert.equal(res.status, 200, res.text);
    assert.equal(stack.fakes.codestral.requests[0].headers.authorization, `Bearer ${KEYS.codestral}`);
  });

  test('an upstream 401 (key rejected) is relayed without showing the key', async () => {
    stack.fakes.mistral.injectFault({ kind: 'status', status: 401 });
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('k'));
    answers.push(res.text);
    assertOpenAiError(res, 401, { messageIncludes: 'Unauthorized' });
  });
});

describe('no env keys, no client keys: the client\'s bearer is used for mistral only', () => {
  let stack;
  const answers = [];
  before(async () => {
    stack = await startStack({ withEnvKeys: false });
  });
  after(async () => {
    if (stack) assertNoLeak([stack.proxy.logs(), ...answers], [KEYS.mistral, KEYS.codestral]);
    await stack?.stop();
  });
  beforeEach(() => stack.reset());

  test('the client\'s bearer goes to mistral', async () => {
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('mine'), { authorization: `Bearer ${KEYS.mistral}` });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.choices[0].message.content, 'echo: mine');
    assert.equal(stack.fakes.mistral.requests[0].headers.authorization, `Bearer ${KEYS.mistral}`);
  });

  test('codestral never gets the client\'s bearer: 401 naming CODESTRAL_API_KEY, nothing sent', async () => {
    for (const [path, body] of [['/fim/completions', fimBody], ['/chat/completions', chatBody('x', { model: 'codestral-latest' })]]) {
      const res = await postJson(`${stack.proxy.baseURL}${path}`, body, { authorization: `Bearer ${KEYS.codestral}` });
      answers.push(res.text);
      assertOpenAiError(res, 401, { messageIncludes: 'CODESTRAL_API_KEY' });
    }
    assert.deepEqual(stack.allRequests(), []);
  });

  test('no bearer and no MISTRAL_API_KEY: 401 naming MISTRAL_API_KEY, nothing sent', async () => {
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('x'));
    assertOpenAiError(res, 401, { messageIncludes: 'MISTRAL_API_KEY' });
    assert.deepEqual(stack.allRequests(), []);
  });

  test('passthrough uses the client\'s bearer too', async () => {
    const res = await request(`${stack.proxy.baseURL}/echo-headers`, { headers: { authorization: `Bearer ${KEYS.mistral}` } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.headers.authorization, `Bearer ${KEYS.mistral}`);
  });
});

describe('client keys required (client_keys_env)', () => {
  let stack;
  const answers = [];
  before(async () => {
    stack = await startStack({ proxy: { client_keys_env: 'PROXY_CLIENT_KEYS', env: { PROXY_CLIENT_KEYS: CLIENT_KEYS.join(',') } } });
  });
  after(async () => {
    if (stack) assertNoLeak([stack.proxy.logs(), ...answers], [KEYS.mistral, KEYS.codestral, ...CLIENT_KEYS]);
    await stack?.stop();
  });
  beforeEach(() => stack.reset());

  test('absent, wrong or malformed client key: 401 and nothing sent', async () => {
    for (const authorization of [undefined, 'Bearer wrong-key', `Bearer ${CLIENT_KEYS[0]}x`, CLIENT_KEYS[0], `Basic ${CLIENT_KEYS[0]}`, `Bearer ${KEYS.mistral}`]) {
      const headers = authorization ? { authorization } : {};
      const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('x'), headers);
      answers.push(res.text);
      assertOpenAiError(res, 401);
      assert.ok(res.headers['x-request-id'], 'x-request-id on a refusal');
    }
    const passthrough = await request(`${stack.proxy.baseURL}/echo-headers`, { headers: { authorization: 'Bearer wrong-key' } });
    assertOpenAiError(passthrough, 401);
    assert.deepEqual(stack.allRequests(), []);
  });

  test('a listed key passes, and upstream gets the env key, not the client key', async () => {
    for (const key of CLIENT_KEYS) {
      const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('allowed'), { authorization: `Bearer ${key}` });
      answers.push(res.text);
      assert.equal(res.status, 200, res.text);
    }
    for (const sent of stack.fakes.mistral.requests) assert.equal(sent.headers.authorization, `Bearer ${KEYS.mistral}`);
  });

  test('/healthz needs no client key', async () => {
    const res = await request(`${stack.proxy.url}/healthz`);
    assert.equal(res.status, 200);
  });
});

describe('client keys required and MISTRAL_API_KEY unset', () => {
  let stack;
  before(async () => {
    stack = await startStack({ withEnvKeys: false, proxy: { client_keys_env: 'PROXY_CLIENT_KEYS', env: { PROXY_CLIENT_KEYS: CLIENT_KEYS[0] } } });
  });
  after(async () => {
    await stack?.stop();
  });

  test('a valid client key is not passed upstream: 401 naming MISTRAL_API_KEY, nothing sent', async () => {
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('x'), { authorization: `Bearer ${CLIENT_KEYS[0]}` });
    assertOpenAiError(res, 401, { messageIncludes: 'MISTRAL_API_KEY' });
    assert.ok(!res.text.includes(CLIENT_KEYS[0]));
    assert.deepEqual(stack.allRequests(), []);
  });
});

// SPEC §3: keys never appear in errors or logs — not even when the upstream
// echoes the Authorization header it was sent (a hostile or buggy upstream).
describe('an upstream that echoes the key in its error answers', () => {
  const echoJson = (record) => ({ object: 'error', message: `invalid key: ${record.headers.authorization}`, type: 'invalid_request_error', param: null, code: record.headers.authorization });
  const echoText = (record) => `Authorization was "${record.headers.authorization}"`;
  const echoEvent = (record) => `data: {"object":"error","message":"stream refused for ${record.headers.authorization}"}\n\n`;

  // The client's answer and the proxy's access log line (stderr) of that request
  // both say [redacted], and neither holds `key`.
  async function expectRedacted(stack, res, key) {
    assert.ok(res.text.includes('[redacted]'), res.text);
    assert.ok(!res.text.includes(key), `the key reached the client: ${res.text}`);
    const id = res.headers['x-request-id'];
    const line = await waitUntil(() => stack.proxy.logs().split('\n').find((l) => l.includes(id)), { label: `access log line of ${id}`, describe: () => stack.proxy.logs() });
    assert.ok(line.includes('[redacted]'), line);
    assert.ok(!stack.proxy.logs().includes(key), 'the key reached the log');
  }

  describe('with MISTRAL_API_KEY', () => {
    let stack;
    before(async () => {
      stack = await startStack();
    });
    after(async () => {
      await stack?.stop();
    });
    beforeEach(() => stack.reset());

    test('a JSON error body (message and code) with the key', async () => {
      stack.fakes.mistral.injectFault({ kind: 'status', status: 401, body: echoJson });
      const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('k'));
      assertOpenAiError(res, 401, { messageIncludes: 'invalid key: Bearer [redacted]' });
      assert.equal(res.json.error.code, 'Bearer [redacted]');
      await expectRedacted(stack, res, KEYS.mistral);
    });

    test('a plain-text error body with the key, on a passthrough endpoint', async () => {
      stack.fakes.mistral.injectFault({ kind: 'status', status: 400, body: echoText });
      const res = await request(`${stack.proxy.baseURL}/files`);
      assertOpenAiError(res, 400, { messageIncludes: 'Authorization was "Bearer [redacted]"' });
      await expectRedacted(stack, res, KEYS.mistral);
    });

    test('an error event in a stream with the key', async () => {
      stack.fakes.mistral.injectFault({ kind: 'status', status: 200, contentType: 'text/event-stream', body: echoEvent });
      const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('k', { stream: true }));
      assert.equal(res.status, 200);
      assert.match(res.text, /stream refused for Bearer \[redacted\]/);
      assert.ok(!res.text.includes(KEYS.mistral), res.text);
      assert.ok(!res.text.includes('[DONE]'), res.text);
    });

    test('codestral\'s key too', async () => {
      stack.fakes.codestral.injectFault({ kind: 'status', status: 401, body: echoJson });
      const res = await postJson(`${stack.proxy.baseURL}/fim/completions`, fimBody);
      assertOpenAiError(res, 401, { messageIncludes: '[redacted]' });
      await expectRedacted(stack, res, KEYS.codestral);
    });
  });

  describe('without env keys: the client\'s own bearer, passed upstream', () => {
    let stack;
    before(async () => {
      stack = await startStack({ withEnvKeys: false });
    });
    after(async () => {
      await stack?.stop();
    });

    test('is redacted from the echo as well', async () => {
      stack.fakes.mistral.injectFault({ kind: 'status', status: 401, body: echoJson });
      const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('k'), { authorization: `Bearer ${KEYS.mistral}` });
      assertOpenAiError(res, 401, { messageIncludes: 'invalid key: Bearer [redacted]' });
      await expectRedacted(stack, res, KEYS.mistral);
    });
  });
});
