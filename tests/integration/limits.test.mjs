// Local rate limits (SPEC §8): requests wait for their bucket up to
// max_queue_wait, else get a local 429 that never reaches Mistral.
import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startStack, KEYS } from '../support/stack.mjs';
import { startFakeMistral } from '../fake-mistral/fake-mistral.mjs';
import { startProxy } from '../support/proxy.mjs';
import { postJson, assertOpenAiError, chatBody, withTimeout, openStream, request } from '../support/http.mjs';

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

// A client's max_tokens must not lock other clients out, nor
// the month. max_tokens 1e30 once made the estimate 2^64-1: while it was in
// flight every other request got "monthly token budget exhausted", and a stream
// the client cut short booked it, so the month read 18446744073709551615 until
// the next month, restarts included.
describe('max_tokens: 1e30 cannot lock others out, nor the month', () => {
  // Less than one request's completion cap (128k): the huge request's estimate
  // exceeds the whole month's budget.
  const MONTH = 100_000;
  const huge = (text) => chatBody(text, { stream: true, max_tokens: 1e30 });
  let fake;
  const dirs = [];

  before(async () => {
    fake = await startFakeMistral({ name: 'mistral', apiKey: KEYS.mistral });
  });
  after(async () => {
    await fake?.close();
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });
  beforeEach(() => fake.reset());

  const freshStateDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mistral-proxy-ledger-'));
    dirs.push(dir);
    return dir;
  };
  const start = (stateDir, buckets = {}) =>
    startProxy({
      upstreams: { mistral: { base_url: fake.url } },
      env: { MISTRAL_API_KEY: KEYS.mistral },
      limits: { buckets: { mistral: { tokens_per_month: MONTH, ...buckets } }, max_queue_wait: '10s' },
      state_dir: stateDir,
    });
  async function monthUsed(proxy) {
    const res = await request(`${proxy.url}/metrics`);
    assert.equal(res.status, 200);
    const match = /^mistral_proxy_month_tokens_used\{key="mistral"\} (\S+)$/m.exec(res.text);
    assert.ok(match, `no mistral month gauge in /metrics:\n${res.text}`);
    return Number(match[1]);
  }

  test('while a max_tokens: 1e30 stream is in flight, a concurrent normal request succeeds', async () => {
    // A minute bucket too: the huge estimate must not push it into a debt of hours either.
    const proxy = await start(await freshStateDir(), { tokens_per_minute: 60_000 });
    const gate = fake.holdBeforeLastChunk();
    try {
      const big = await openStream(`${proxy.baseURL}/chat/completions`, huge('a long one'));
      assert.equal(big.status, 200);
      // The fake holds the stream's last event: the huge request is in flight.
      await withTimeout(gate.reachedHold, 5000, 'the huge stream is in flight');
      const normal = await postJson(`${proxy.baseURL}/chat/completions`, chatBody('meanwhile'));
      assert.equal(normal.status, 200, normal.text);
      await gate.release();
      const done = await withTimeout(big.done, 5000, 'the huge stream ends');
      assert.ok(done.ended, 'the huge stream ends cleanly');
      // Both reported their usage: the month holds exactly that, nothing of the estimate.
      const used = await monthUsed(proxy);
      assert.ok(used > 0 && used < 1000, `month used after two small answers: ${used}`);
    } finally {
      await gate.release();
      await proxy.stop();
    }
  });

  test('a max_tokens: 1e30 stream the client cuts after one event books a bounded estimate, also after a restart', async () => {
    const stateDir = await freshStateDir();
    let proxy = await start(stateDir);
    const gate = fake.holdBeforeLastChunk();  // the stream stays open: the client ends it, not the fake
    try {
      const aborted = fake.nextAbort();
      const cut = await openStream(`${proxy.baseURL}/chat/completions`, huge('cut me short'));
      assert.equal(cut.status, 200);
      await withTimeout(cut.waitForEvents(1), 5000, 'the first event');
      cut.destroy();
      // The proxy saw the client go and dropped the upstream request: no usage will come.
      await withTimeout(aborted, 5000, 'the upstream request is dropped');
      const next = await postJson(`${proxy.baseURL}/chat/completions`, chatBody('next one'));
      assert.equal(next.status, 200, next.text);
    } finally {
      await gate.release();
      await proxy.stop();  // drains: every usage is in the ledger once it exits
    }

    proxy = await start(stateDir);
    try {
      const used = await monthUsed(proxy);
      // The cut request booked its prompt estimate plus a bounded completion (the
      // default 512), not its max_tokens; the next one its reported usage.
      assert.ok(used > 512, `the cut stream was not booked at all: ${used}`);
      assert.ok(used < 2000, `month used after a cut stream and a small answer: ${used}`);
      const res = await postJson(`${proxy.baseURL}/chat/completions`, chatBody('after the restart'));
      assert.equal(res.status, 200, res.text);
    } finally {
      await proxy.stop();
    }
  });

  test('a ledger poisoned by an older version (a 2^64-1 record) is replayed without it', async () => {
    const stateDir = await freshStateDir();
    const month = new Date().toISOString().slice(0, 7).split('-').map(Number);
    await writeFile(join(stateDir, 'month-ledger.log'), ledgerBytes([
      { key: 'mistral', year: month[0], month: month[1], tokens: 1234n },
      { key: 'mistral', year: month[0], month: month[1], tokens: 2n ** 64n - 1n },
      { key: 'mistral', year: month[0], month: month[1], tokens: 100n },
    ]));
    const proxy = await start(stateDir);
    try {
      assert.match(proxy.logs(), /month ledger: .*out of range/);
      assert.equal(await monthUsed(proxy), 1334);
      const res = await postJson(`${proxy.baseURL}/chat/completions`, chatBody('still open'));
      assert.equal(res.status, 200, res.text);
    } finally {
      await proxy.stop();
    }
  });
});

// The month ledger's file format (proxy/limits/ledger.hpp), to forge one.
function crc32(bytes) {
  let c = 0xffffffff;
  for (const byte of bytes) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

function ledgerBytes(records) {
  const head = Buffer.alloc(16);
  head.write('MPLEDGER', 0, 'latin1');
  head.writeUInt32LE(1, 8);
  head.writeUInt32LE(crc32(head.subarray(0, 12)), 12);
  const parts = [head];
  for (const r of records) {
    const key = Buffer.from(r.key, 'latin1');
    const payload = Buffer.alloc(5 + key.length + 8);
    payload.writeUInt8(1, 0);
    payload.writeUInt16LE(r.year, 1);
    payload.writeUInt8(r.month, 3);
    payload.writeUInt8(key.length, 4);
    key.copy(payload, 5);
    payload.writeBigUInt64LE(r.tokens, 5 + key.length);
    const recordHead = Buffer.alloc(8);
    recordHead.writeUInt32LE(payload.length, 0);
    recordHead.writeUInt32LE(crc32(payload), 4);
    parts.push(recordHead, payload);
  }
  return Buffer.concat(parts);
}
