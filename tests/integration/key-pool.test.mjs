// Key pools (SPEC §2: `api_key_env` as a list): each key has its own buckets,
// a request takes the key with room (least waiting, then round-robin), so two
// workspaces' keys serve twice the rate; a key Mistral answers 401 for leaves
// the rotation (log line, metric) and the request goes again on another key
// before any byte reaches the client; calls on Mistral-side state (files)
// keep to the first key in rotation. The official SDK sees plain successes.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startStack, KEYS } from '../support/stack.mjs';
import { request, assertOpenAiError } from '../support/http.mjs';
import { waitUntil } from '../support/procfs.mjs';

const KEY_A = 'test-key-pool-a-3c9e1f';
const KEY_B = 'test-key-pool-b-8d20aa';
const KEY_REVOKED = 'test-key-pool-revoked-5e77b0';
const KEY_GONE = 'test-key-pool-gone-0f41c2';

const bearerOf = (r) => r.headers.authorization;
const chatRequests = (fake) => fake.requests.filter((r) => r.path === '/v1/chat/completions');

async function metric(proxy, name, keyEnv) {
  const text = (await request(`${proxy.url}/metrics`)).text;
  const line = text.split('\n').find((l) => l.startsWith(`${name}{pool="mistral",key_env="${keyEnv}"}`));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

function startPoolStack(keyEnvs, env, proxy = {}) {
  return startStack({
    fake: { extraKeys: [KEY_A, KEY_B] },
    proxy: {
      upstreams: { mistral: { api_key_env: keyEnvs }, mistral_eu: { api_key_env: keyEnvs } },
      env: { CODESTRAL_API_KEY: KEYS.codestral, ...env },
      ...proxy,
    },
    withEnvKeys: false,
  });
}

describe('key pools', () => {
  test('two keys share the load: each paced by its own bucket, together at twice the rate', async () => {
    const rate = 5; // requests per second per key: one every 200 ms
    const stack = await startPoolStack(['POOL_A', 'POOL_B'], { POOL_A: KEY_A, POOL_B: KEY_B }, {
      limits: { buckets: { mistral: { requests_per_second: rate } } },
    });
    try {
      const client = new OpenAI({ apiKey: 'sk-client', baseURL: stack.proxy.baseURL, maxRetries: 0 });
      const n = 16;
      const started = Date.now();
      const answers = await Promise.all(Array.from({ length: n }, (_, i) =>
        client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `request ${i}` }] })));
      for (const [i, answer] of answers.entries()) assert.equal(answer.choices[0].message.content, `echo: request ${i}`);

      const sent = chatRequests(stack.fakes.mistral);
      assert.equal(sent.length, n);
      const byKey = new Map();
      for (const r of sent) byKey.set(bearerOf(r), [...(byKey.get(bearerOf(r)) ?? []), r]);
      assert.deepEqual([...byKey.keys()].sort(), [`Bearer ${KEY_A}`, `Bearer ${KEY_B}`].sort());
      for (const [key, requests] of byKey) {
        assert.equal(requests.length, n / 2, `${key}: half of the requests`);
        // Each key's bucket holds: its j-th request left no earlier than j intervals after the start.
        const arrivals = requests.map((r) => r.at).sort((a, b) => a - b);
        for (const [j, at] of arrivals.entries()) {
          assert.ok(at >= started + (j * 1000) / rate - 5, `${key}: request ${j} at +${at - started} ms, before its turn`);
        }
      }
      // One key would have needed (n - 1) intervals; two keys need (n / 2 - 1).
      const last = Math.max(...sent.map((r) => r.at));
      assert.ok(last - started < ((n - 1) * 1000) / rate,
        `the last request left at +${last - started} ms: no faster than a single key`);
      assert.equal(await metric(stack.proxy, 'mistral_proxy_pool_key_requests_total', 'POOL_A'), n / 2);
      assert.equal(await metric(stack.proxy, 'mistral_proxy_pool_key_requests_total', 'POOL_B'), n / 2);
      // Each key has its own month ledger entry.
      const text = (await request(`${stack.proxy.url}/metrics`)).text;
      assert.match(text, /mistral_proxy_month_tokens_used\{key="mistral\/POOL_A"\} \d+/);
    } finally {
      await stack.stop();
    }
  });

  describe('a key Mistral refuses', () => {
    let stack;
    before(async () => {
      stack = await startPoolStack(['POOL_REVOKED', 'POOL_A'], { POOL_REVOKED: KEY_REVOKED, POOL_A: KEY_A });
    });
    after(() => stack?.stop());

    test('is tried once, leaves the rotation, and the requests are answered on the other key', async () => {
      const client = new OpenAI({ apiKey: 'sk-client', baseURL: stack.proxy.baseURL, maxRetries: 0 });
      for (let i = 0; i < 4; ++i) {
        const answer = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `q${i}` }] });
        assert.equal(answer.choices[0].message.content, `echo: q${i}`);
      }
      // Streamed: the 401 comes before any byte, so a stream switches keys too.
      const stream = await client.chat.completions.create({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'streamed' }] });
      let text = '';
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
      assert.equal(text, 'echo: streamed');

      const bearers = chatRequests(stack.fakes.mistral).map(bearerOf);
      assert.equal(bearers.filter((b) => b === `Bearer ${KEY_REVOKED}`).length, 1, 'the refused key was tried once');
      assert.equal(bearers.filter((b) => b === `Bearer ${KEY_A}`).length, 5);
      assert.equal(await metric(stack.proxy, 'mistral_proxy_pool_key_revocations_total', 'POOL_REVOKED'), 1);
      assert.equal(await metric(stack.proxy, 'mistral_proxy_pool_key_in_rotation', 'POOL_REVOKED'), 0);
      assert.equal(await metric(stack.proxy, 'mistral_proxy_pool_key_in_rotation', 'POOL_A'), 1);
      const logs = await waitUntil(() => {
        const all = stack.proxy.logs();
        return all.includes('Mistral refused the key in POOL_REVOKED (401)') ? all : undefined;
      }, { label: 'the log line naming the env var' });
      assert.ok(!logs.includes(KEY_REVOKED) && !logs.includes(KEY_A), 'no key in the log');
    });

    test('files (Mistral-side state) keep to the first key in rotation', async () => {
      stack.reset();
      for (let i = 0; i < 3; ++i) {
        const res = await request(`${stack.proxy.baseURL}/files`);
        assert.equal(res.status, 200, res.text);
      }
      assert.deepEqual(stack.fakes.mistral.requests.map(bearerOf), Array(3).fill(`Bearer ${KEY_A}`));
    });
  });

  test('every key refused: Mistral\'s 401 once, then the proxy answers 401 naming the pool, sending nothing', async () => {
    const stack = await startPoolStack(['POOL_REVOKED', 'POOL_GONE'], { POOL_REVOKED: KEY_REVOKED, POOL_GONE: KEY_GONE });
    try {
      const body = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
      const post = () => request(`${stack.proxy.baseURL}/chat/completions`,
        { method: 'POST', body, headers: { 'content-type': 'application/json' } });
      const first = await post();
      assertOpenAiError(first, 401);
      assert.equal(chatRequests(stack.fakes.mistral).length, 2, 'both keys tried');
      const second = await post();
      assertOpenAiError(second, 401, { messageIncludes: "every key of upstream mistral's key pool was refused by Mistral" });
      assert.equal(chatRequests(stack.fakes.mistral).length, 2, 'nothing sent');
      for (const key of [KEY_REVOKED, KEY_GONE]) assert.ok(!first.text.includes(key) && !second.text.includes(key));
    } finally {
      await stack.stop();
    }
  });
});
