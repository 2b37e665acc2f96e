// Local rate limits (SPEC §8): requests wait for their bucket up to
// max_queue_wait, else get a local 429 that never reaches Mistral.
import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startStack, KEYS } from '../support/stack.mjs';
import { startFakeMistral } from '../fake-mistral/fake-mistral.mjs';
import { startProxy } from '../support/proxy.mjs';
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

describe('monthly token budget kept in state_dir', () => {
  // The fake bills ~ body bytes / 4 prompt tokens plus the echoed text: each request
  // below costs well over 100 tokens, so a 300-token month is spent after a few.
  const MONTH = 300;
  const question = () => chatBody(`tell me about ${'the weather '.repeat(20)}`);
  let fake;
  let stateDir;

  before(async () => {
    fake = await startFakeMistral({ name: 'mistral', apiKey: KEYS.mistral });
    stateDir = await mkdtemp(join(tmpdir(), 'mistral-proxy-ledger-'));
  });
  after(async () => {
    await fake?.close();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  const start = (dir) =>
    startProxy({
      upstreams: { mistral: { base_url: fake.url } },
      env: { MISTRAL_API_KEY: KEYS.mistral },
      limits: { buckets: { mistral: { tokens_per_month: MONTH } }, max_queue_wait: '200ms' },
      state_dir: dir,
    });

  async function spend(proxy) {
    const statuses = [];
    for (let i = 0; i < 8; i++) {
      const res = await postJson(`${proxy.baseURL}/chat/completions`, question());
      statuses.push(res.status);
      if (res.status === 429) {
        assertOpenAiError(res, 429, { type: 'rate_limit_error' });
        break;
      }
      assert.equal(res.status, 200, res.text);
    }
    return statuses;
  }

  test('the month runs out, and stays spent after a restart (SIGTERM) and after a crash (SIGKILL)', async () => {
    let proxy = await start(stateDir);
    let statuses;
    try {
      statuses = await spend(proxy);
    } finally {
      await proxy.stop();
    }
    assert.equal(statuses.at(-1), 429, `the month budget never ran out: ${statuses}`);
    assert.ok(statuses.length >= 2, `the first request was refused: ${statuses}`);
    const sentBefore = fake.requests.length;

    proxy = await start(stateDir);
    try {
      const res = await postJson(`${proxy.baseURL}/chat/completions`, question());
      assertOpenAiError(res, 429, { type: 'rate_limit_error' });
      assert.equal(fake.requests.length, sentBefore, 'a request went out on a spent month after a restart');
    } finally {
      await proxy.kill('SIGKILL');
      await proxy.stop();
    }

    proxy = await start(stateDir);
    try {
      const res = await postJson(`${proxy.baseURL}/chat/completions`, question());
      assertOpenAiError(res, 429, { type: 'rate_limit_error' });
      assert.equal(fake.requests.length, sentBefore);
    } finally {
      await proxy.stop();
    }
  });

  test('a fresh state_dir starts a fresh month', async () => {
    const fresh = await mkdtemp(join(tmpdir(), 'mistral-proxy-ledger-'));
    const proxy = await start(fresh);
    try {
      const res = await postJson(`${proxy.baseURL}/chat/completions`, question());
      assert.equal(res.status, 200, res.text);
    } finally {
      await proxy.stop();
      await rm(fresh, { recursive: true, force: true });
    }
  });

  test('usage of a request answered just before a crash is not forgotten', async () => {
    const baselineDir = await mkdtemp(join(tmpdir(), 'mistral-proxy-ledger-'));
    const crashDir = await mkdtemp(join(tmpdir(), 'mistral-proxy-ledger-'));
    try {
      // How many requests one uninterrupted run allows.
      const baseline = await start(baselineDir);
      let allowed;
      try {
        const statuses = await spend(baseline);
        assert.equal(statuses.at(-1), 429, `the month budget never ran out: ${statuses}`);
        allowed = statuses.filter((s) => s === 200).length;
      } finally {
        await baseline.stop();
      }
      // The same with a crash right after the first answer.
      let proxy = await start(crashDir);
      const first = await postJson(`${proxy.baseURL}/chat/completions`, question());
      assert.equal(first.status, 200, first.text);
      await proxy.kill('SIGKILL');
      await proxy.stop();
      proxy = await start(crashDir);
      try {
        const after = (await spend(proxy)).filter((s) => s === 200).length;
        assert.equal(1 + after, allowed, `a crash after the first answer allowed ${1 + after} requests, one run allows ${allowed}`);
      } finally {
        await proxy.stop();
      }
    } finally {
      await rm(baselineDir, { recursive: true, force: true });
      await rm(crashDir, { recursive: true, force: true });
    }
  });
});
