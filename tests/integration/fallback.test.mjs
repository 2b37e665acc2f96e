// Model fallbacks (SPEC §6 `fallback`): the rule file's `fallbacks:` chain is
// followed when the upstream fails before any byte reached the client. The
// answer names the model that served it (`model`, x-mistral-proxy-fallback,
// the `fallback` rule id, the rules-fired metric); a client opts out with
// `x-mistral-proxy-fallback: off`; a fallback never leaves the EU host and
// never goes to a model whose rules refuse the request.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { startStack, KEYS } from '../support/stack.mjs';
import { postJson, request, openStream, parseSse } from '../support/http.mjs';
import { readFile } from 'node:fs/promises';
import { rulesFile } from '../support/proxy.mjs';
import { waitUntil } from '../support/procfs.mjs';

// Mistral's answer when a model's service tier is out of capacity.
const CAPACITY_429 = {
  kind: 'status',
  status: 429,
  body: { object: 'error', message: 'Service tier capacity exceeded for this model.', type: 'service_tier_capacity_exceeded', param: null, code: '3505' },
};

const FALLBACKS = `
fallbacks:
  "mistral-large-*": [mistral-medium-latest, mistral-small-latest]
  "magistral-*": [codestral-latest, mistral-small-latest]
  "mistral-small-*": [open-mistral-nemo, ministral-8b-latest]
`;

let dir;
let fallbackRules;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mistral-proxy-fallback-'));
  fallbackRules = join(dir, 'fallbacks.yaml');
  await writeFile(fallbackRules, FALLBACKS);
});
after(() => rm(dir, { recursive: true, force: true }));

const startFallbackStack = (proxy = {}) => startStack({ proxy: { rules: [rulesFile, fallbackRules], ...proxy } });
const chatModels = (fake) => fake.requests.filter((r) => r.path.endsWith('/chat/completions')).map((r) => JSON.parse(r.body).model);
const body = (extra = {}) => ({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }], ...extra });

async function rulesFired(proxy, rule) {
  const text = (await request(`${proxy.url}/metrics`)).text;
  const line = text.split('\n').find((l) => l.startsWith(`mistral_proxy_rules_fired_total{rule="${rule}"}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('model fallbacks', () => {
  let stack;
  let accessLog;
  before(async () => {
    accessLog = join(dir, 'access.log');
    stack = await startFallbackStack({ extraYaml: `log:\n  access: ${accessLog}` });
  });
  after(() => stack?.stop());

  test('a capacity 429 on the first model: answered once by the second, with header, rule id and metric', async () => {
    stack.reset();
    const fake = stack.fakes.mistral;
    fake.injectFault(CAPACITY_429);
    const before = await rulesFired(stack.proxy, 'fallback');
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, body());
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.model, 'mistral-medium-latest');
    assert.equal(res.json.choices[0].message.content, 'echo: hello');
    assert.equal(res.headers['x-mistral-proxy-fallback'], 'mistral-large-latest->mistral-medium-latest');
    assert.deepEqual(res.headers['x-mistral-proxy-rules'].split(','), ['model_alias', 'fallback']);
    assert.deepEqual(chatModels(fake), ['mistral-large-latest', 'mistral-medium-latest']);
    // Counted once the request is finished, which the client may see first.
    await waitUntil(async () => (await rulesFired(stack.proxy, 'fallback')) === before + 1, { label: 'the fallback counted' });
    const id = res.headers['x-request-id'];
    const line = await waitUntil(async () => (await readFile(accessLog, 'utf8')).split('\n').find((l) => l.includes(`"${id}"`)),
      { label: 'the access log line' });
    const entry = JSON.parse(line);
    assert.equal(entry.fallback, 'mistral-large-latest->mistral-medium-latest');
    assert.equal(entry.model_sent, 'mistral-medium-latest');
    assert.equal(entry.model, 'gpt-4o');
  });

  test('5xx on two models: the third serves it', async () => {
    stack.reset();
    const fake = stack.fakes.mistral;
    fake.injectFault({ kind: 'status', status: 503, times: 1 });
    fake.injectFault({ kind: 'status', status: 500, times: 1 });
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, body());
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.model, 'mistral-small-latest');
    assert.equal(res.headers['x-mistral-proxy-fallback'], 'mistral-large-latest->mistral-small-latest');
    assert.deepEqual(chatModels(fake), ['mistral-large-latest', 'mistral-medium-latest', 'mistral-small-latest']);
  });

  test('every model of the chain fails: the last failure reaches the client in OpenAI shape', async () => {
    stack.reset();
    const fake = stack.fakes.mistral;
    fake.injectFault({ ...CAPACITY_429, times: 5 });
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, body());
    assert.equal(res.status, 429, res.text);
    assert.match(res.json.error.message, /capacity exceeded/);
    // Chains are followed breadth first: large's models, then small's.
    assert.deepEqual(chatModels(fake), ['mistral-large-latest', 'mistral-medium-latest', 'mistral-small-latest', 'open-mistral-nemo', 'ministral-8b-latest']);
  });

  test('x-mistral-proxy-fallback: off keeps the request on its model', async () => {
    stack.reset();
    const fake = stack.fakes.mistral;
    fake.injectFault(CAPACITY_429);
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, body(), { 'x-mistral-proxy-fallback': 'off' });
    assert.equal(res.status, 429, res.text);
    assert.equal(res.headers['x-mistral-proxy-fallback'], undefined);
    assert.deepEqual(chatModels(fake), ['mistral-large-latest']);
    assert.equal(fake.requests[0].headers['x-mistral-proxy-fallback'], undefined, 'the proxy header is not sent upstream');
  });

  test('a 400 is the client\'s fault: no fallback', async () => {
    stack.reset();
    const fake = stack.fakes.mistral;
    fake.injectFault({ kind: 'status', status: 400 });
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, body());
    assert.equal(res.status, 400, res.text);
    assert.deepEqual(chatModels(fake), ['mistral-large-latest']);
  });

  test('a model whose rules refuse the request is skipped (tools to a model without tools)', async () => {
    stack.reset();
    stack.fakes.mistral.injectFault(CAPACITY_429);
    const tools = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: {} } } }];
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, body({ model: 'mistral-small-latest', tools }));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['x-mistral-proxy-fallback'], 'mistral-small-latest->ministral-8b-latest');
    assert.deepEqual(chatModels(stack.fakes.mistral), ['mistral-small-latest', 'ministral-8b-latest']);
  });

  test('a fallback is routed by its own model (to the codestral host)', async () => {
    stack.reset();
    const fake = stack.fakes.mistral;
    fake.injectFault(CAPACITY_429);
    // magistral-* falls back to codestral-latest (host codestral) then mistral-small-latest.
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, body({ model: 'magistral-medium-latest' }));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['x-mistral-proxy-fallback'], 'magistral-medium-latest->codestral-latest');
    assert.equal(res.headers['x-mistral-proxy-upstream'], 'codestral', 'the fallback is routed by its own model');
    assert.deepEqual(chatModels(stack.fakes.codestral), ['codestral-latest']);
  });

  test('a stream that fails before its first byte falls back; one that fails after does not', async () => {
    stack.reset();
    const fake = stack.fakes.mistral;
    fake.injectFault({ kind: 'status', status: 503 });
    const ok = await openStream(`${stack.proxy.baseURL}/chat/completions`, body({ stream: true }));
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['x-mistral-proxy-fallback'], 'mistral-large-latest->mistral-medium-latest');
    const { rawText: text } = await ok.done;
    assert.ok(parseSse(text).some((e) => e.data.includes('"model":"mistral-medium-latest"')), text);
    assert.match(text, /data: \[DONE\]/);

    stack.reset();
    fake.injectFault({ kind: 'reset_after', chunks: 2 });
    const cut = await openStream(`${stack.proxy.baseURL}/chat/completions`, body({ stream: true }));
    assert.equal(cut.status, 200);
    const { rawText: cutText } = await cut.done;
    assert.match(cutText, /"error"/, 'the cut stream ends with an error event');
    assert.deepEqual(chatModels(fake), ['mistral-large-latest'], 'no second model once bytes reached the client');
  });

  test('the official openai SDK sees one successful answer', async () => {
    stack.reset();
    stack.fakes.mistral.injectFault(CAPACITY_429);
    const client = new OpenAI({ apiKey: 'sk-test', baseURL: stack.proxy.baseURL, maxRetries: 0 });
    const { data, response } = await client.chat.completions
      .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'from the sdk' }] })
      .withResponse();
    assert.equal(data.choices[0].message.content, 'echo: from the sdk');
    assert.equal(data.model, 'mistral-medium-latest');
    assert.equal(response.headers.get('x-mistral-proxy-fallback'), 'mistral-large-latest->mistral-medium-latest');
  });

  test('explain shows the chain', async () => {
    const { runCli } = await import('../support/proxy.mjs');
    const r = await runCli(['explain', '--config', stack.proxy.configFile, '-'], { input: JSON.stringify(body()) });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).fallbacks, ['mistral-medium-latest', 'mistral-small-latest', 'open-mistral-nemo', 'ministral-8b-latest']);
  });
});

test('region eu: a fallback never leaves the EU host', async () => {
  const stack = await startFallbackStack({ region: 'eu' });
  try {
    stack.fakes.mistral_eu.injectFault(CAPACITY_429);
    // magistral-* -> codestral-latest (no EU host: skipped) -> mistral-small-latest.
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, body({ model: 'magistral-medium-latest' }));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['x-mistral-proxy-upstream'], 'mistral_eu');
    assert.equal(res.headers['x-mistral-proxy-fallback'], 'magistral-medium-latest->mistral-small-latest');
    assert.equal(stack.fakes.codestral.requests.length, 0);
    assert.deepEqual(chatModels(stack.fakes.mistral_eu), ['magistral-medium-latest', 'mistral-small-latest']);
  } finally {
    await stack.stop();
  }
});

test('fallback_statuses in a rule file decides which statuses fall back', async () => {
  const only503 = join(dir, 'only-503.yaml');
  await writeFile(only503, 'fallback_statuses: [503]\n');
  const stack = await startFallbackStack({ rules: [rulesFile, fallbackRules, only503] });
  try {
    const fake = stack.fakes.mistral;
    fake.injectFault(CAPACITY_429);
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, body());
    assert.equal(res.status, 429, '429 is no longer in the list');
    fake.injectFault({ kind: 'status', status: 503 });
    const next = await postJson(`${stack.proxy.baseURL}/chat/completions`, body());
    assert.equal(next.status, 200, next.text);
    assert.equal(next.json.model, 'mistral-medium-latest');
  } finally {
    await stack.stop();
  }
});

void KEYS;
