// Routing (SPEC §5): which fake host each call reaches, per region.
import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, KEYS } from '../support/stack.mjs';
import { request, postJson, assertProxyHeaders, assertOpenAiError, chatBody } from '../support/http.mjs';

const fimBody = { model: 'codestral-latest', prompt: 'def add(a, b):', suffix: '    return c' };

function only(stack, name) {
  for (const [n, fake] of Object.entries(stack.fakes)) {
    if (n === name) assert.ok(fake.requests.length > 0, `${n} received nothing`);
    else assert.equal(fake.requests.length, 0, `${n} received ${fake.requests.map((r) => r.path).join(', ')}`);
  }
}

describe('region global', () => {
  let stack;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await stack?.stop();
  });
  beforeEach(() => stack.reset());

  test('chat with a mistral model goes to mistral', async () => {
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('route me'));
    assert.equal(res.status, 200, res.text);
    assertProxyHeaders(res, 'mistral');
    only(stack, 'mistral');
  });

  test('/v1/fim/completions goes to codestral with the codestral key', async () => {
    const res = await postJson(`${stack.proxy.baseURL}/fim/completions`, fimBody);
    assert.equal(res.status, 200, res.text);
    assertProxyHeaders(res, 'codestral');
    assert.equal(res.json.choices[0].message.content, `fim: ${fimBody.prompt}|${fimBody.suffix}`);
    only(stack, 'codestral');
    const [sent] = stack.fakes.codestral.requests;
    assert.equal(sent.path, '/v1/fim/completions');
    assert.equal(sent.headers.authorization, `Bearer ${KEYS.codestral}`);
  });

  test('streamed FIM goes to codestral and is relayed', async () => {
    const res = await postJson(`${stack.proxy.baseURL}/fim/completions`, { ...fimBody, stream: true });
    assert.equal(res.status, 200, res.text);
    assertProxyHeaders(res, 'codestral');
    assert.match(res.headers['content-type'] ?? '', /^text\/event-stream/);
    assert.match(res.text, /data: \[DONE\]/);
    only(stack, 'codestral');
  });

  test('chat with a codestral-* model goes to codestral', async () => {
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('code please', { model: 'codestral-latest' }));
    assert.equal(res.status, 200, res.text);
    assertProxyHeaders(res, 'codestral');
    assert.equal(res.json.choices[0].message.content, 'echo: code please');
    only(stack, 'codestral');
    assert.equal(stack.fakes.codestral.requests[0].headers.authorization, `Bearer ${KEYS.codestral}`);
  });

  test('embeddings go to mistral', async () => {
    const res = await postJson(`${stack.proxy.baseURL}/embeddings`, { model: 'mistral-embed', input: 'x', encoding_format: 'float' });
    assert.equal(res.status, 200, res.text);
    assertProxyHeaders(res, 'mistral');
    only(stack, 'mistral');
  });
});

describe('region eu', () => {
  let stack;
  before(async () => {
    stack = await startStack({ proxy: { region: 'eu' } });
  });
  after(async () => {
    await stack?.stop();
  });
  beforeEach(() => stack.reset());

  test('chat goes to mistral_eu', async () => {
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('bonjour'));
    assert.equal(res.status, 200, res.text);
    assertProxyHeaders(res, 'mistral_eu');
    assert.equal(res.json.choices[0].message.content, 'echo: bonjour');
    only(stack, 'mistral_eu');
    assert.equal(stack.fakes.mistral_eu.requests[0].headers.authorization, `Bearer ${KEYS.mistral}`);
  });

  test('models and passthrough go to mistral_eu', async () => {
    const models = await request(`${stack.proxy.baseURL}/models`);
    assert.equal(models.status, 200, models.text);
    assertProxyHeaders(models, 'mistral_eu');
    const echo = await request(`${stack.proxy.baseURL}/echo-headers`);
    assert.equal(echo.status, 200, echo.text);
    assertProxyHeaders(echo, 'mistral_eu');
    only(stack, 'mistral_eu');
  });

  test('without eu_strict, FIM still goes to codestral', async () => {
    const res = await postJson(`${stack.proxy.baseURL}/fim/completions`, fimBody);
    assert.equal(res.status, 200, res.text);
    assertProxyHeaders(res, 'codestral');
    only(stack, 'codestral');
  });
});

describe('region eu with eu_strict', () => {
  let stack;
  before(async () => {
    stack = await startStack({ proxy: { region: 'eu', eu_strict: true } });
  });
  after(async () => {
    await stack?.stop();
  });
  beforeEach(() => stack.reset());

  test('FIM is refused with 403 eu_residency_required and nothing is sent', async () => {
    const res = await postJson(`${stack.proxy.baseURL}/fim/completions`, fimBody);
    assertOpenAiError(res, 403, { code: 'eu_residency_required' });
    assert.ok(res.headers['x-request-id'], 'x-request-id on a refusal');
    assert.deepEqual(stack.allRequests(), []);
  });

  test('chat with a codestral model is refused the same way, streamed or not', async () => {
    for (const stream of [false, true]) {
      const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('x', { model: 'codestral-latest', stream }));
      assertOpenAiError(res, 403, { code: 'eu_residency_required' });
    }
    assert.deepEqual(stack.allRequests(), []);
  });

  test('mistral models still work, in the EU', async () => {
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('ok'));
    assert.equal(res.status, 200, res.text);
    assertProxyHeaders(res, 'mistral_eu');
    only(stack, 'mistral_eu');
  });
});
