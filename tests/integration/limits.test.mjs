// Local rate limits (SPEC §8): requests wait for their bucket up to
// max_queue_wait, else get a local 429 that never reaches Mistral.
import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { startStack } from '../support/stack.mjs';
import { postJson, assertOpenAiError, chatBody, withTimeout } from '../support/http.mjs';

describe('request bucket, short queue wait', () => {
  let stack;
  before(async () => {
    stack = await startStack({ proxy: { limits: { buckets: { mistral: { requests_per_second: 1 } }, max_queue_wait: '100ms' } } });
  });
  after(async () => {
    await stack?.stop();
  });
  beforeEach(() => stack.reset());

  test('over the bucket: local 429 rate_limit_error with Retry-After and retry-after-ms, not sent', async () => {
    const results = await withTimeout(
      Promise.all(Array.from({ length: 5 }, (_, i) => postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody(`r${i}`)))),
      15_000,
      '5 requests',
    );
    const ok = results.filter((r) => r.status === 200);
    const limited = results.filter((r) => r.status === 429);
    assert.ok(ok.length >= 1, `statuses ${results.map((r) => r.status)}`);
    assert.ok(limited.length >= 1, `no local 429 with 5 requests at 1/s and max_queue_wait 100ms: ${results.map((r) => r.status)}`);
    assert.equal(ok.length + limited.length, 5, `statuses ${results.map((r) => r.status)}`);
    for (const r of limited) {
      assertOpenAiError(r, 429, { type: 'rate_limit_error' });
      assert.ok(Number(r.headers['retry-after']) >= 0, `Retry-After: ${r.headers['retry-after']}`);
      assert.ok(Number(r.headers['retry-after-ms']) > 0, `retry-after-ms: ${r.headers['retry-after-ms']}`);
    }
    assert.equal(stack.fakes.mistral.requests.length, ok.length, 'locally limited requests are not sent');
  });

  test('codestral has its own bucket (none here): not limited by mistral\'s', async () => {
    const results = await Promise.all(Array.from({ length: 3 }, () => postJson(`${stack.proxy.baseURL}/fim/completions`, { model: 'codestral-latest', prompt: 'x' })));
    assert.deepEqual(results.map((r) => r.status), [200, 200, 200]);
  });
});

describe('request bucket, long enough queue wait', () => {
  let stack;
  before(async () => {
    stack = await startStack({ proxy: { limits: { buckets: { mistral: { requests_per_second: 5 } }, max_queue_wait: '10s' } } });
  });
  after(async () => {
    await stack?.stop();
  });

  test('requests over the rate wait their turn and all succeed', async () => {
    const t0 = Date.now();
    const results = await withTimeout(
      Promise.all(Array.from({ length: 12 }, (_, i) => postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody(`q${i}`)))),
      20_000,
      '12 requests at 5/s',
    );
    assert.deepEqual(results.map((r) => r.status), Array(12).fill(200));
    results.forEach((r, i) => assert.equal(r.json.choices[0].message.content, `echo: q${i}`));
    // With a burst of at most one second's worth (5), 12 requests at 5/s need >= 1.4 s.
    assert.ok(Date.now() - t0 >= 900, `12 requests at 5/s took ${Date.now() - t0} ms`);
  });
});
