// Circuit breaker per upstream and model (SPEC §2 `breaker:`, §4 /readyz): after
// N consecutive upstream failures the proxy answers 503 at once without calling
// the upstream, lets one probe through after the cooldown, and closes on success.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, KEYS } from '../support/stack.mjs';
import { postJson, request, assertOpenAiError, chatBody } from '../support/http.mjs';
import { waitUntil } from '../support/procfs.mjs';

const chatCalls = (fake) => fake.requests.filter((r) => r.path.endsWith('/chat/completions')).length;

async function breakerGauge(proxy, upstream) {
  const res = await request(`${proxy.url}/metrics`);
  const line = res.text.split('\n').find((l) => l.startsWith(`mistral_proxy_breakers_open{upstream="${upstream}"}`));
  assert.ok(line, `no breaker gauge for ${upstream} in /metrics`);
  return Number(line.split(' ').pop());
}

// Only the mistral key: codestral cannot be used, so /readyz follows mistral alone.
// One worker thread: breakers are per worker.
const startBreakerStack = (failures) =>
  startStack({
    withEnvKeys: false,
    proxy: { env: { MISTRAL_API_KEY: KEYS.mistral }, breaker: { failures, cooldown: '300ms' }, server: { threads: 1 } },
  });

// Polls with requests until one is not refused by the open breaker (the probe), and returns it.
const untilProbe = (proxy, label) =>
  waitUntil(async () => {
    const res = await postJson(`${proxy.baseURL}/chat/completions`, chatBody(label));
    return res.json?.error?.code === 'upstream_circuit_open' ? null : res;
  }, { timeoutMs: 5000, intervalMs: 20, label: `the breaker to let ${label} through` });

test('the breaker opens after N failures, answers fast without calling, half-opens and closes', async () => {
  const stack = await startBreakerStack(3);
  try {
    const { proxy } = stack;
    const fake = stack.fakes.mistral;
    assert.equal((await request(`${proxy.url}/readyz`)).status, 200);
    assert.deepEqual((await request(`${proxy.url}/readyz`)).json, { status: 'ready' });

    fake.injectFault({ kind: 'status', status: 503, times: 3 });
    for (let i = 0; i < 3; i += 1) {
      const res = await postJson(`${proxy.baseURL}/chat/completions`, chatBody(`fail ${i}`));
      assert.equal(res.status, 503, `try ${i}: the upstream's 503 is passed on: ${res.text}`);
      assert.notEqual(res.json?.error?.code, 'upstream_circuit_open', `try ${i} reached the upstream`);
    }
    assert.equal(chatCalls(fake), 3);

    // Open: a fast 503 naming upstream and model, with Retry-After, nothing sent.
    const refused = await postJson(`${proxy.baseURL}/chat/completions`, chatBody('refused'));
    const error = assertOpenAiError(refused, 503, { code: 'upstream_circuit_open' });
    assert.match(error.message, /mistral/);
    assert.match(error.message, /mistral-small-latest/);
    assert.match(error.message, /tried again/);
    assert.ok(Number(refused.headers['retry-after']) >= 1, `Retry-After: ${refused.headers['retry-after']}`);
    assert.equal(refused.headers['x-mistral-proxy-upstream'], 'mistral');
    assert.equal(chatCalls(fake), 3, 'nothing was sent while the breaker is open');

    // Another model on the same upstream has its own breaker.
    const other = await postJson(`${proxy.baseURL}/chat/completions`, chatBody('other', { model: 'mistral-large-latest' }));
    assert.equal(other.status, 200, other.text);
    assert.equal(chatCalls(fake), 4);

    assert.equal(await breakerGauge(proxy, 'mistral'), 1);
    assert.equal(await breakerGauge(proxy, 'codestral'), 0);
    // The other model's success says the upstream answers: still ready.
    assert.equal((await request(`${proxy.url}/readyz`)).status, 200);

    // After the cooldown one probe goes through and closes the breaker.
    const probe = await untilProbe(proxy, 'probe');
    assert.equal(probe.status, 200, probe.text);
    assert.equal(chatCalls(fake), 5, 'exactly one probe reached the upstream');
    assert.equal(await breakerGauge(proxy, 'mistral'), 0);
    const after = await postJson(`${proxy.baseURL}/chat/completions`, chatBody('closed'));
    assert.equal(after.status, 200, after.text);
  } finally {
    await stack.stop();
  }
});

test('a failed probe opens it again; /readyz is 503 while the only usable upstream is tripped', async () => {
  const stack = await startBreakerStack(2);
  try {
    const { proxy } = stack;
    const fake = stack.fakes.mistral;
    fake.injectFault({ kind: 'status', status: 500, times: 3 });
    for (let i = 0; i < 2; i += 1) {
      const res = await postJson(`${proxy.baseURL}/chat/completions`, chatBody(`fail ${i}`));
      assert.equal(res.status, 500, res.text);
    }
    const ready = await request(`${proxy.url}/readyz`);
    const error = assertOpenAiError(ready, 503);
    assert.match(error.message, /mistral has its circuit breaker open/);
    assert.match(error.message, /codestral has no key/);
    assert.equal((await request(`${proxy.url}/healthz`)).status, 200, 'liveness is not readiness');

    // The probe fails (third fault): open again, for another cooldown.
    const failedProbe = await untilProbe(proxy, 'probe 1');
    assert.equal(failedProbe.status, 500, failedProbe.text);
    assert.equal(chatCalls(fake), 3);
    const refused = await postJson(`${proxy.baseURL}/chat/completions`, chatBody('refused'));
    assertOpenAiError(refused, 503, { code: 'upstream_circuit_open' });
    assert.equal(chatCalls(fake), 3);
    assert.equal((await request(`${proxy.url}/readyz`)).status, 503);

    const goodProbe = await untilProbe(proxy, 'probe 2');
    assert.equal(goodProbe.status, 200, goodProbe.text);
    assert.equal(chatCalls(fake), 4);
    assert.deepEqual((await request(`${proxy.url}/readyz`)).json, { status: 'ready' });
  } finally {
    await stack.stop();
  }
});

test('passthrough requests have their own breaker per upstream: it opens, answers fast and closes', async () => {
  const stack = await startBreakerStack(2);
  try {
    const { proxy } = stack;
    const fake = stack.fakes.mistral;
    const fileCalls = () => fake.requests.filter((r) => r.path.startsWith('/v1/files')).length;
    fake.injectFault({ kind: 'status', status: 502, times: 2, path: /^\/v1\/files/ });
    for (let i = 0; i < 2; i += 1) {
      const res = await request(`${proxy.baseURL}/files`);
      assert.equal(res.status, 502, res.text);
    }
    const refused = await request(`${proxy.baseURL}/files`);
    const error = assertOpenAiError(refused, 503, { code: 'upstream_circuit_open' });
    assert.match(error.message, /passthrough requests/);
    assert.equal(fileCalls(), 2, 'nothing was sent while the breaker is open');
    // Chat on the same upstream is judged by its own breaker.
    const chat = await postJson(`${proxy.baseURL}/chat/completions`, chatBody('still fine'));
    assert.equal(chat.status, 200, chat.text);
    const probe = await waitUntil(async () => {
      const res = await request(`${proxy.baseURL}/files`);
      return res.json?.error?.code === 'upstream_circuit_open' ? null : res;
    }, { timeoutMs: 5000, intervalMs: 20, label: 'the passthrough probe' });
    assert.equal(probe.status, 200, probe.text);
    assert.equal(fileCalls(), 3, 'exactly one probe reached the upstream');
  } finally {
    await stack.stop();
  }
});
