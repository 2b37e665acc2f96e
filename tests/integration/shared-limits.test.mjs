// Rate limits measured where they matter, at the upstream: a burst never
// arrives faster than the configured rate, with the embedded limiter and with
// two proxies sharing one key through a real redis-server (SPEC §2 limits.backend).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startFakeMistral } from '../fake-mistral/fake-mistral.mjs';
import { startProxy } from '../support/proxy.mjs';
import { KEYS } from '../support/stack.mjs';
import { postJson, chatBody, withTimeout } from '../support/http.mjs';
import { haveRedis, startRedis } from '../support/redis.mjs';

const RATE = 2; // requests per second
const SLACK_MS = 60; // timer and scheduling jitter tolerated on a busy machine

// Arrival times at the fake, in order; in any window of one second at most
// RATE requests (the bucket holds one request: spacing is 1/RATE).
function assertPaced(arrivals, rate) {
  const sorted = [...arrivals].sort((a, b) => a - b);
  const spacing = 1000 / rate;
  // Measured from the first arrival, not between neighbours: a request the
  // machine delays on its way makes the gap to the next one short without the
  // limiter having released anything early.
  for (let i = 1; i < sorted.length; i += 1) {
    const since = sorted[i] - sorted[0];
    assert.ok(since >= i * spacing - SLACK_MS, `arrival ${i} only ${since} ms after the first (rate ${rate}/s): ${sorted.map((t) => t - sorted[0])}`);
  }
}

describe('embedded limiter: a burst arrives upstream at the configured rate', () => {
  let fake;
  let proxy;
  before(async () => {
    fake = await startFakeMistral({ name: 'mistral', apiKey: KEYS.mistral });
    proxy = await startProxy({
      upstreams: { mistral: { base_url: fake.url } },
      env: { MISTRAL_API_KEY: KEYS.mistral },
      limits: { buckets: { mistral: { requests_per_second: RATE } }, max_queue_wait: '10s' },
    });
  });
  after(async () => {
    await proxy?.stop();
    await fake?.close();
  });

  test(`a burst of 6 at ${RATE}/s: all answered, never faster than the rate upstream`, async () => {
    const results = await withTimeout(
      Promise.all(Array.from({ length: 6 }, (_, i) => postJson(`${proxy.baseURL}/chat/completions`, chatBody(`b${i}`)))),
      20_000,
      'burst',
    );
    assert.deepEqual(results.map((r) => r.status), Array(6).fill(200));
    assertPaced(fake.requests.map((r) => r.at), RATE);
  });
});

describe('shared limits in Redis: two proxies, one key, one rate', { skip: haveRedis ? false : 'redis-server is not installed' }, () => {
  let fake;
  let redis;
  let proxies = [];
  before(async () => {
    fake = await startFakeMistral({ name: 'mistral', apiKey: KEYS.mistral });
    redis = await startRedis();
    const start = () =>
      startProxy({
        upstreams: { mistral: { base_url: fake.url } },
        env: { MISTRAL_API_KEY: KEYS.mistral },
        limits: { buckets: { mistral: { requests_per_second: RATE } }, max_queue_wait: '10s', backend: redis.url },
      });
    proxies = [await start(), await start()];
  });
  after(async () => {
    for (const proxy of proxies) await proxy.stop();
    await redis?.stop();
    await fake?.close();
  });

  test(`4 requests to each proxy at once: together never faster than ${RATE}/s upstream`, async () => {
    const calls = [];
    for (const [p, proxy] of proxies.entries()) {
      for (let i = 0; i < 4; i += 1) calls.push(postJson(`${proxy.baseURL}/chat/completions`, chatBody(`p${p}-${i}`)));
    }
    const results = await withTimeout(Promise.all(calls), 30_000, 'two proxies');
    assert.deepEqual(results.map((r) => r.status), Array(8).fill(200), results.map((r) => r.text).join('\n'));
    assert.equal(fake.requests.length, 8);
    assertPaced(fake.requests.map((r) => r.at), RATE);
  });

  test('Redis unreachable: a clear 503, fail closed, nothing sent', async () => {
    await redis.stop();
    const before = fake.requests.length;
    const res = await withTimeout(postJson(`${proxies[0].baseURL}/chat/completions`, chatBody('no redis')), 15_000, 'no redis');
    assert.equal(res.status, 503, res.text);
    assert.equal(res.json.error.code, 'limits_backend_unavailable');
    assert.match(res.json.error.message, /rate limit backend/);
    assert.equal(fake.requests.length, before);
  });
});
