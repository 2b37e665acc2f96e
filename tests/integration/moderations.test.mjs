// POST /v1/moderations: OpenAI's moderation request goes to
// Mistral's moderation endpoint as {model, input} (OpenAI's model names through
// model_alias), and Mistral's answer comes back in OpenAI's shape with OpenAI's
// category names (rules/mistral.yaml `moderation_categories`). Raw HTTP and the
// official `openai` SDK; every answer is checked against OpenAI's
// CreateModerationResponse (tests/support/openai-validate.mjs) and every
// upstream body against Mistral's ClassificationRequest by the fake.
import { test, describe, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startStack } from '../support/stack.mjs';
import { request, postJson, assertOpenAiError, assertProxyHeaders } from '../support/http.mjs';
import { runCli } from '../support/proxy.mjs';
import { assertOpenAIShape, openaiCheckingFetch } from '../support/openai-validate.mjs';
import { validateBody } from '../fake-mistral/validate.mjs';
import { moderationFor } from '../fake-mistral/fake-mistral.mjs';

const OPENAI_CATEGORIES = [
  'hate', 'hate/threatening', 'harassment', 'harassment/threatening', 'illicit', 'illicit/violent', 'self-harm',
  'self-harm/intent', 'self-harm/instructions', 'sexual', 'sexual/minors', 'violence', 'violence/graphic',
];
// The shipped table (rules/mistral.yaml), for the categories the fake scores.
const SHIPPED = {
  hate: ['hate_and_discrimination'],
  illicit: ['dangerous_and_criminal_content'],
  'self-harm': ['selfharm'],
  sexual: ['sexual'],
  violence: ['violence_and_threats'],
};

// What the proxy must answer for one text the fake classifies.
function expectedResult(text) {
  const mistral = moderationFor(text);
  const categories = {};
  const scores = {};
  for (const name of OPENAI_CATEGORIES) {
    const from = SHIPPED[name] ?? [];
    categories[name] = from.some((m) => mistral.categories[m] === true);
    scores[name] = from.length === 0 ? 0 : Math.max(...from.map((m) => mistral.category_scores[m]));
  }
  const applied = Object.fromEntries(OPENAI_CATEGORIES.map((name) => [name, ['text']]));
  return { flagged: Object.values(categories).some(Boolean), categories, category_scores: scores, category_applied_input_types: applied };
}

// The one upstream request, checked against Mistral's schema.
function sentBody(fake) {
  assert.equal(fake.requests.length, 1, `upstream requests: ${fake.requests.map((r) => r.path).join(', ')}`);
  const [sent] = fake.requests;
  assert.equal(sent.method, 'POST');
  assert.equal(sent.path, '/v1/moderations');
  const body = JSON.parse(sent.body);
  assert.equal(validateBody('ClassificationRequest', body), null, `Mistral would refuse ${sent.body}`);
  return body;
}

let stack;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});
beforeEach(() => stack.reset());

describe('raw HTTP', () => {
  test('a string with the marker word: flagged, OpenAI\'s categories, model_alias named', async () => {
    const text = 'I want to kill them.';
    const res = await postJson(`${stack.proxy.baseURL}/moderations`, { model: 'omni-moderation-latest', input: text });
    assert.equal(res.status, 200, res.text);
    assertProxyHeaders(res, 'mistral');
    assert.equal(res.headers['x-mistral-proxy-rules'], 'model_alias');
    assert.match(res.headers['content-type'], /^application\/json/);
    assertOpenAIShape('CreateModerationResponse', res.json);
    assert.deepEqual(sentBody(stack.fakes.mistral), { model: 'mistral-moderation-latest', input: text });
    assert.equal(res.json.model, 'mistral-moderation-latest');
    assert.equal(typeof res.json.id, 'string');
    assert.equal(res.json.results.length, 1);
    const [result] = res.json.results;
    assert.deepEqual(result, expectedResult(text));
    assert.equal(result.flagged, true);
    assert.equal(result.categories.violence, true);
    assert.equal(result.categories.illicit, true);
    // No counterpart at Mistral: false and 0, never guessed.
    assert.equal(result.categories['violence/graphic'], false);
    assert.equal(result.category_scores['violence/graphic'], 0);
    assert.deepEqual(Object.keys(result.categories), OPENAI_CATEGORIES);
  });

  test('an array of strings: one result per input, in order, flagged and not', async () => {
    const input = ['a quiet afternoon with tea', 'we will kill the process and the people', 'nothing to see'];
    const res = await postJson(`${stack.proxy.baseURL}/moderations`, { model: 'text-moderation-latest', input });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(sentBody(stack.fakes.mistral), { model: 'mistral-moderation-latest', input });
    assert.deepEqual(res.json.results, input.map(expectedResult));
    assert.deepEqual(res.json.results.map((r) => r.flagged), [false, true, false]);
  });

  test('a category only Mistral has (pii) flags nothing in OpenAI\'s shape', async () => {
    const text = 'my ssn is 078-05-1120';
    assert.equal(moderationFor(text).categories.pii, true, 'the fake flags pii for this text');
    const res = await postJson(`${stack.proxy.baseURL}/moderations`, { input: text });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.results[0].flagged, false);
    assert.ok(Object.values(res.json.results[0].categories).every((v) => v === false));
    assert.ok(!res.text.includes('pii'), res.text);
  });

  test('multimodal text parts are sent as strings; no model is OpenAI\'s default, aliased', async () => {
    const res = await postJson(`${stack.proxy.baseURL}/moderations`, {
      input: [{ type: 'text', text: 'first part' }, { type: 'text', text: 'kill switch' }],
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['x-mistral-proxy-rules'], 'model_alias');
    assert.deepEqual(sentBody(stack.fakes.mistral), { model: 'mistral-moderation-latest', input: ['first part', 'kill switch'] });
    assert.deepEqual(res.json.results.map((r) => r.flagged), [false, true]);
  });

  test('Mistral\'s own model is sent as it is, no rule named', async () => {
    const res = await postJson(`${stack.proxy.baseURL}/moderations`, { model: 'mistral-moderation-2411', input: 'hello', user: 'u1' });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['x-mistral-proxy-rules'], '');
    assert.deepEqual(sentBody(stack.fakes.mistral), { model: 'mistral-moderation-2411', input: 'hello' });
  });

  test('an image part is a 400 naming the part; nothing is sent', async () => {
    const res = await postJson(`${stack.proxy.baseURL}/moderations`, {
      model: 'omni-moderation-latest',
      input: [{ type: 'text', text: 'look' }, { type: 'image_url', image_url: { url: 'https://example.com/a.png' } }],
    });
    assertOpenAiError(res, 400, { messageIncludes: ['input[1]', 'text only'], code: 'unsupported_content' });
    assert.equal(res.json.error.param, 'input[1]');
    assert.equal(stack.allRequests().length, 0);
  });

  test('bad input is a 400 from the proxy; Mistral\'s refusal is passed on in OpenAI\'s shape', async () => {
    for (const body of [{ model: 'omni-moderation-latest' }, { input: 5 }, { input: [] }, '{"input": "x"']) {
      const res = await postJson(`${stack.proxy.baseURL}/moderations`, body);
      assertOpenAiError(res, 400);
    }
    assert.equal(stack.allRequests().length, 0);
    // A model Mistral does not know: its 400, translated.
    const unknown = await postJson(`${stack.proxy.baseURL}/moderations`, { model: 'no-such-moderation', input: 'x' });
    assertOpenAiError(unknown, 400, { messageIncludes: 'no-such-moderation' });
  });

  test('an upstream answer that is not a moderation response is a 502', async () => {
    stack.fakes.mistral.injectFault({ kind: 'status', status: 200, body: { id: 'x', object: 'something else' } });
    const res = await postJson(`${stack.proxy.baseURL}/moderations`, { input: 'x' });
    assertOpenAiError(res, 502);
  });

  test('counted under endpoint="moderations" in /metrics', async () => {
    const res = await postJson(`${stack.proxy.baseURL}/moderations`, { input: 'count me' });
    assert.equal(res.status, 200, res.text);
    const metrics = await request(`${stack.proxy.url}/metrics`);
    assert.match(metrics.text, /mistral_proxy_requests_total\{endpoint="moderations",upstream="mistral",status="200"\} [1-9]/);
  });
});

describe('explain', () => {
  test('prints the Mistral moderation body and URL', async () => {
    const r = await runCli(['explain', '--config', stack.proxy.configFile, '--endpoint', '/v1/moderations', '-'], {
      input: JSON.stringify({ model: 'omni-moderation-latest', input: [{ type: 'text', text: 'hi' }] }),
    });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.upstream, 'mistral');
    assert.equal(out.url, `${stack.fakes.mistral.url}/moderations`);
    assert.deepEqual(out.rules, ['model_alias']);
    assert.deepEqual(out.body, { model: 'mistral-moderation-latest', input: ['hi'] });
  });
});

describe('region eu', () => {
  let eu;
  before(async () => {
    eu = await startStack({ proxy: { region: 'eu', eu_strict: true } });
  });
  after(async () => {
    await eu?.stop();
  });

  test('goes to the EU host', async () => {
    const res = await postJson(`${eu.proxy.baseURL}/moderations`, { input: 'bonjour' });
    assert.equal(res.status, 200, res.text);
    assertProxyHeaders(res, 'mistral_eu');
    assert.deepEqual(sentBody(eu.fakes.mistral_eu), { model: 'mistral-moderation-latest', input: 'bonjour' });
    assert.equal(eu.fakes.mistral.requests.length, 0);
  });
});

describe('the official openai SDK', () => {
  let client;
  const checkedFetch = openaiCheckingFetch();
  before(() => {
    client = new OpenAI({ apiKey: 'sk-client-side-anything', baseURL: stack.proxy.baseURL, maxRetries: 0, timeout: 20_000, fetch: checkedFetch });
  });
  afterEach(() => checkedFetch.assertClean());

  test('moderations.create with a string: flagged', async () => {
    const { data, response } = await client.moderations
      .create({ model: 'omni-moderation-latest', input: 'I will kill you' })
      .withResponse();
    assert.equal(response.headers.get('x-mistral-proxy-rules'), 'model_alias');
    assert.equal(data.results.length, 1);
    assert.equal(data.results[0].flagged, true);
    assert.equal(data.results[0].categories.violence, true);
    assert.deepEqual(data.results[0], expectedResult('I will kill you'));
    assert.deepEqual(sentBody(stack.fakes.mistral), { model: 'mistral-moderation-latest', input: 'I will kill you' });
  });

  test('moderations.create with a string: not flagged', async () => {
    const data = await client.moderations.create({ input: 'What a lovely day.' });
    assert.equal(data.results[0].flagged, false);
    assert.deepEqual(data.results[0].category_applied_input_types.sexual, ['text']);
  });

  test('moderations.create with an array', async () => {
    const input = ['kill the lights', 'good night'];
    const data = await client.moderations.create({ model: 'text-moderation-stable', input });
    assert.deepEqual(data.results.map((r) => r.flagged), [true, false]);
    assert.deepEqual(data.results, input.map(expectedResult));
    assert.deepEqual(sentBody(stack.fakes.mistral), { model: 'mistral-moderation-latest', input });
  });

  test('moderations.create with an image part: the SDK gets a BadRequestError', async () => {
    await assert.rejects(
      client.moderations.create({ model: 'omni-moderation-latest', input: [{ type: 'image_url', image_url: { url: 'https://example.com/a.png' } }] }),
      (error) => error instanceof OpenAI.BadRequestError && error.code === 'unsupported_content' && /text only/.test(error.message),
    );
  });
});
