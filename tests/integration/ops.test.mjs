// Operations (README "Operations"): /metrics content, the JSON access log,
// SIGHUP reload, graceful stop on SIGTERM, and the non-loopback warning.
// Client keys right/wrong/missing are in keys.test.mjs; bad input in client-input.test.mjs.
import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeMistral } from '../fake-mistral/fake-mistral.mjs';
import { startStack, KEYS } from '../support/stack.mjs';
import { writeConfig, runCli, rulesFile } from '../support/proxy.mjs';
import { request, postJson, openStream, deltaText, chatBody, withTimeout, assertOpenAiError } from '../support/http.mjs';
import { waitUntil, serveConfig } from '../support/procfs.mjs';

const CLIENT_BEARER = 'client-bearer-secret-5d81c0';
const SECRETS = [KEYS.mistral, KEYS.codestral, CLIENT_BEARER];

function assertNoSecret(label, text) {
  for (const secret of SECRETS) assert.ok(!text.includes(secret), `${label} contains a key (${secret.slice(0, 12)}...): ${text.slice(0, 400)}`);
}

/** Connect attempt: resolves 'refused', or 'connected' (the socket is closed again). */
function tryConnect(port) {
  return new Promise((res) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('connect', () => {
      socket.destroy();
      res('connected');
    });
    socket.on('error', (error) => res(error.code === 'ECONNREFUSED' ? 'refused' : `error ${error.code}`));
  });
}

// ---------------------------------------------------------------------------
// Prometheus text

/** Parses Prometheus text: {types: {family: type}, help: {family}, samples: [{name, labels, value, line}]}. */
function parseProm(text) {
  const types = {};
  const help = {};
  const samples = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m;
    if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      assert.ok(!(m[1] in types), `family ${m[1]} declared twice`);
      types[m[1]] = m[2];
      continue;
    }
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line))) {
      help[m[1]] = m[2];
      continue;
    }
    assert.ok(!line.startsWith('#'), `unexpected comment line: ${line}`);
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a Prometheus sample line: ${JSON.stringify(line)}`);
    const labels = {};
    if (m[2]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/g;
      let consumed = 0;
      let lm;
      while ((lm = re.exec(m[2]))) {
        labels[lm[1]] = lm[2];
        consumed = re.lastIndex;
      }
      assert.equal(consumed, m[2].length, `malformed labels in ${line}`);
    }
    const value = m[3] === '+Inf' ? Infinity : Number(m[3]);
    assert.ok(!Number.isNaN(value), `value of ${line}`);
    samples.push({ name: m[1], labels, value, line });
  }
  return { types, help, samples };
}

function familyOf(name, types) {
  if (name in types) return name;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix) && types[name.slice(0, -suffix.length)] === 'histogram') return name.slice(0, -suffix.length);
  }
  return null;
}

const sampleValue = (prom, name, labels = {}) =>
  prom.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);

describe('GET /metrics', () => {
  let stack;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await stack?.stop();
  });
  beforeEach(() => stack.reset());

  const scrape = async () => {
    const res = await request(`${stack.proxy.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'] ?? '', /^text\/plain/);
    return { text: res.text, prom: parseProm(res.text) };
  };

  test('counts a 200, an upstream 503 and a local 404 by endpoint/upstream/status; rules fired; well-formed families; no key', async () => {
    const before = (await scrape()).prom;
    const ok = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('metrics', { model: 'gpt-4o', user: 'u1' }), { authorization: `Bearer ${CLIENT_BEARER}` });
    assert.equal(ok.status, 200, ok.text);
    const fired = ok.headers['x-mistral-proxy-rules'].split(',').filter(Boolean);
    assert.ok(fired.includes('model_alias') && fired.includes('params'), `rules header: ${fired}`);
    stack.fakes.mistral.injectFault({ kind: 'status', status: 503 });
    const unavailable = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('down'), { authorization: `Bearer ${CLIENT_BEARER}` });
    assertOpenAiError(unavailable, 503);
    const missing = await request(`${stack.proxy.url}/v2/nowhere`);
    assertOpenAiError(missing, 404);

    const { text, prom } = await scrape();
    const delta = (name, labels) => sampleValue(prom, name, labels) - sampleValue(before, name, labels);
    const req = 'mistral_proxy_requests_total';
    assert.equal(delta(req, { upstream: 'mistral', status: '200' }), 1, `200 via mistral not counted once:\n${text}`);
    assert.equal(delta(req, { upstream: 'mistral', status: '503' }), 1, `upstream 503 not counted once:\n${text}`);
    assert.equal(delta(req, { upstream: 'none', status: '404' }), 1, `local 404 not counted with upstream="none":\n${text}`);
    const chat200 = prom.samples.find((s) => s.name === req && s.labels.status === '200' && s.labels.upstream === 'mistral');
    assert.ok(chat200.labels.endpoint && /chat/.test(chat200.labels.endpoint), `endpoint label of the chat request: ${chat200.line}`);
    for (const s of prom.samples.filter((x) => x.name === req)) {
      assert.deepEqual(Object.keys(s.labels).sort(), ['endpoint', 'status', 'upstream'], s.line);
    }
    for (const rule of fired) assert.equal(delta('mistral_proxy_rules_fired_total', { rule }), 1, `rule ${rule} not counted:\n${text}`);
    assert.equal(delta('mistral_proxy_rules_fired_total', { rule: 'tool_call_ids' }), 0, 'a rule that did not fire was counted');

    // Every family documented in the README is there with the right type.
    const expected = {
      mistral_proxy_requests_total: 'counter',
      mistral_proxy_rules_fired_total: 'counter',
      mistral_proxy_upstream_retries_total: 'counter',
      mistral_proxy_upstream_failures_total: 'counter',
      mistral_proxy_local_rate_limited_total: 'counter',
      mistral_proxy_queue_wait_seconds: 'histogram',
      mistral_proxy_upstream_latency_seconds: 'histogram',
      mistral_proxy_overhead_seconds: 'histogram',
      mistral_proxy_request_duration_seconds: 'histogram',
      mistral_proxy_open_connections: 'gauge',
      mistral_proxy_open_streams: 'gauge',
      mistral_proxy_request_body_bytes_total: 'counter',
      mistral_proxy_response_body_bytes_total: 'counter',
    };
    for (const [family, type] of Object.entries(expected)) assert.equal(prom.types[family], type, `# TYPE of ${family}`);

    // Conventions: every sample belongs to a declared family with HELP; counters end in
    // _total; time in _seconds; histograms have ordered cumulative buckets up to +Inf = _count.
    for (const s of prom.samples) {
      const family = familyOf(s.name, prom.types);
      assert.ok(family, `sample without a # TYPE: ${s.line}`);
      assert.ok(prom.help[family], `no # HELP for ${family}`);
      assert.ok(family.startsWith('mistral_proxy_'), `not namespaced: ${family}`);
      assert.ok(s.value >= 0, `negative value: ${s.line}`);
    }
    for (const [family, type] of Object.entries(prom.types)) {
      if (type === 'counter') assert.match(family, /_total$/, `counter ${family} lacks _total`);
      else assert.doesNotMatch(family, /_total$/, `${type} ${family} ends in _total`);
      if (/latency|duration|wait|overhead/.test(family)) assert.match(family, /_seconds$/, `time family ${family} not in seconds`);
      if (type !== 'histogram') continue;
      const buckets = prom.samples.filter((s) => s.name === `${family}_bucket`);
      assert.ok(buckets.length >= 2, `${family}: no buckets`);
      const les = buckets.map((b) => (b.labels.le === '+Inf' ? Infinity : Number(b.labels.le)));
      assert.equal(les.at(-1), Infinity, `${family}: last bucket is not le="+Inf"`);
      for (let i = 1; i < buckets.length; i++) {
        assert.ok(les[i] > les[i - 1], `${family}: le not increasing at ${buckets[i].line}`);
        assert.ok(buckets[i].value >= buckets[i - 1].value, `${family}: buckets not cumulative at ${buckets[i].line}`);
      }
      const count = prom.samples.find((s) => s.name === `${family}_count`);
      const sum = prom.samples.find((s) => s.name === `${family}_sum`);
      assert.ok(count && sum, `${family}: _count or _sum missing`);
      assert.equal(buckets.at(-1).value, count.value, `${family}: +Inf bucket != _count`);
    }
    assert.ok(delta('mistral_proxy_upstream_latency_seconds_count') >= 2, 'upstream latency observed for the two upstream calls');
    assert.ok(delta('mistral_proxy_request_duration_seconds_count') >= 3, 'request durations observed');
    assert.ok(delta('mistral_proxy_response_body_bytes_total') >= ok.text.length, 'response bytes counted');
    assertNoSecret('/metrics', text);
  });

  test('open_streams counts a stream while it is relayed, and drops back after', async () => {
    const gate = stack.fakes.mistral.holdBeforeLastChunk();
    const s = await openStream(`${stack.proxy.baseURL}/chat/completions`, chatBody('gauge', { stream: true }));
    try {
      await withTimeout(gate.reachedHold, 5000, 'fake reached the hold');
      const during = (await scrape()).prom;
      assert.ok(sampleValue(during, 'mistral_proxy_open_streams') >= 1, 'open_streams during a held stream');
      assert.ok(sampleValue(during, 'mistral_proxy_open_connections') >= 2, 'open_connections: the stream + the scrape');
    } finally {
      await gate.release();
    }
    const { ended } = await withTimeout(s.done, 5000, 'stream end');
    assert.ok(ended);
    await waitUntil(async () => sampleValue((await scrape()).prom, 'mistral_proxy_open_streams') === 0, { timeoutMs: 3000, label: 'open_streams back to 0' });
  });

  test('an upstream call without an HTTP answer (garbage) counts in upstream_failures_total', async () => {
    const before = (await scrape()).prom;
    stack.fakes.mistral.injectFault({ kind: 'garbage' });
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('garbage'));
    assertOpenAiError(res, 502);
    const now = (await scrape()).prom;
    const d = sampleValue(now, 'mistral_proxy_upstream_failures_total', { upstream: 'mistral' }) - sampleValue(before, 'mistral_proxy_upstream_failures_total', { upstream: 'mistral' });
    assert.equal(d, 1, 'garbage HTTP from upstream counted once as an upstream failure');
  });
});

// ---------------------------------------------------------------------------
// Access log

describe('access log to a file', () => {
  let stack;
  let dir;
  let logFile;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mistral-proxy-access-'));
    logFile = join(dir, 'access.log');
    stack = await startStack({ proxy: { extraYaml: `log:\n  access: ${logFile}` } });
  });
  after(async () => {
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const readLines = async (file = logFile) => (existsSync(file) ? (await readFile(file, 'utf8')).split('\n').filter(Boolean) : []);
  const entryFor = async (requestId, file = logFile) => {
    const lines = await waitUntil(async () => {
      const all = await readLines(file);
      return all.some((l) => l.includes(requestId)) && all;
    }, { timeoutMs: 3000, label: `access log line for ${requestId} in ${file}` });
    const line = lines.find((l) => l.includes(requestId));
    let entry;
    assert.doesNotThrow(() => (entry = JSON.parse(line)), `not one JSON object: ${line}`);
    return entry;
  };

  test('one JSON line per request with the documented fields; no key, no body', async () => {
    const body = JSON.stringify(chatBody('access log please', { model: 'gpt-4o', user: 'u1', seed: 3 }));
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, body, { authorization: `Bearer ${CLIENT_BEARER}` });
    assert.equal(res.status, 200, res.text);
    const s = await openStream(`${stack.proxy.baseURL}/chat/completions`, chatBody('streamed entry', { stream: true }), { authorization: `Bearer ${CLIENT_BEARER}` });
    const streamed = await withTimeout(s.done, 5000, 'stream');
    assert.ok(streamed.ended);

    const plain = await entryFor(res.headers['x-request-id']);
    assert.equal(plain.request_id, res.headers['x-request-id']);
    assert.ok(!Number.isNaN(Date.parse(plain.time)) && /Z$/.test(plain.time), `time: ${plain.time}`);
    assert.equal(plain.method, 'POST');
    assert.equal(plain.path, '/v1/chat/completions');
    assert.equal(plain.model, 'gpt-4o');
    assert.equal(plain.model_sent, 'mistral-large-latest');
    assert.equal(plain.upstream, 'mistral');
    assert.equal(plain.status, 200);
    assert.equal(typeof plain.duration_ms, 'number');
    assert.ok(plain.duration_ms >= 0);
    assert.equal(plain.bytes_in, Buffer.byteLength(body), 'bytes_in = the request body');
    assert.equal(plain.bytes_out, Buffer.byteLength(res.text), 'bytes_out = the response body');
    assert.equal(plain.rules, res.headers['x-mistral-proxy-rules'], 'rules = the x-mistral-proxy-rules header');
    assert.equal(plain.retries, 0);
    assert.equal(plain.stream, false);
    assert.equal(plain.prompt_tokens, res.json.usage.prompt_tokens);
    assert.equal(plain.completion_tokens, res.json.usage.completion_tokens);

    const st = await entryFor(s.headers['x-request-id']);
    assert.equal(st.stream, true);
    assert.equal(st.status, 200);
    assert.equal(st.model_sent, 'mistral-small-latest');
    assert.ok(st.bytes_out > 0);
    assert.equal(st.upstream, 'mistral');

    const text = (await readLines()).join('\n');
    for (const line of await readLines()) assert.doesNotThrow(() => JSON.parse(line), `not JSON: ${line}`);
    assert.ok(!text.includes('access log please') && !text.includes('streamed entry'), `a body is in the access log: ${text}`);
    assertNoSecret('access log', text);
    assertNoSecret('proxy stderr/stdout', stack.proxy.logs());
    assert.ok(!stack.proxy.logs().includes('"request_id"'), 'access lines went to stderr although log.access is a file');
  });

  test('SIGHUP reopens the access log (rotation by rename)', async () => {
    const rotated = join(dir, 'access.log.1');
    await rename(logFile, rotated);
    const reloadsBefore = (stack.proxy.logs().match(/reloaded/g) ?? []).length;
    process.kill(stack.proxy.pid, 'SIGHUP');
    await waitUntil(() => (stack.proxy.logs().match(/reloaded/g) ?? []).length > reloadsBefore, { timeoutMs: 3000, label: '"reloaded" in the log', describe: () => stack.proxy.logs().slice(-500) });
    const res = await request(`${stack.proxy.url}/healthz`);
    assert.equal(res.status, 200);
    const entry = await entryFor(res.headers['x-request-id'], logFile);
    assert.equal(entry.path, '/healthz');
    assert.ok(!(await readLines(rotated)).some((l) => l.includes(res.headers['x-request-id'])), 'a line written to the renamed file after SIGHUP');
  });
});

// ---------------------------------------------------------------------------
// Reload

describe('SIGHUP reload', () => {
  let fake;
  let proxy;
  let cfg;
  let extraRules;
  const env = { MISTRAL_API_KEY: KEYS.mistral, CODESTRAL_API_KEY: KEYS.codestral };
  const chat = (model, extra = {}) => postJson(`${proxy.baseURL}/chat/completions`, chatBody('reload', { model, ...extra }));
  const reloadCount = () => (proxy.logs().match(/\breloaded\b/g) ?? []).length;
  const refusedCount = () => (proxy.logs().match(/reload refused/g) ?? []).length;
  async function hup(expect) {
    const [ok0, ref0] = [reloadCount(), refusedCount()];
    proxy.signal('SIGHUP');
    await waitUntil(() => (expect === 'reloaded' ? reloadCount() > ok0 : refusedCount() > ref0), {
      timeoutMs: 3000,
      label: `"${expect === 'reloaded' ? 'reloaded' : 'reload refused'}" in the log after SIGHUP`,
      describe: () => proxy.logs().slice(-800),
    });
  }

  before(async () => {
    fake = await startFakeMistral({ name: 'mistral', apiKey: KEYS.mistral });
    cfg = await writeConfig({ upstreams: { mistral: { base_url: fake.url } } });
    extraRules = join(cfg.dir, 'extra-rules.yaml');
    await writeFile(extraRules, 'model_alias:\n  "other-alias": ministral-8b-latest\n');
    // Same config as startProxy writes, but this one names the extra rule file and the
    // proxy runs without a --listen override (the listen test needs the file's value).
    cfg.text = cfg.text.replace(/^rules: .*$/m, `rules: [${rulesFile}, ${extraRules}]`);
    await writeFile(cfg.file, cfg.text);
    proxy = await serveConfig(cfg.file, { env });
  });
  after(async () => {
    if (proxy) await proxy.stop();
    await fake?.close();
    if (cfg) await rm(cfg.dir, { recursive: true, force: true });
  });
  beforeEach(() => fake.reset());

  test('a new alias in a rule file is applied after SIGHUP', async () => {
    const beforeReload = await chat('my-alias');
    assert.equal(beforeReload.status, 400, `my-alias should be unknown before the reload: ${beforeReload.text}`);
    await writeFile(extraRules, 'model_alias:\n  "my-alias": mistral-small-latest\n');
    await hup('reloaded');
    const res = await chat('my-alias');
    assert.equal(res.status, 200, res.text);
    assert.equal(fake.requests.at(-1).headers.authorization, `Bearer ${KEYS.mistral}`);
    assert.equal(JSON.parse(fake.requests.at(-1).body).model, 'mistral-small-latest');
    const models = await request(`${proxy.baseURL}/models`);
    assert.ok(models.json.data.some((m) => m.id === 'my-alias'), '/v1/models lists the new alias');
  });

  test('a broken rule file: reload refused with the reason, the previous set keeps serving', async () => {
    await writeFile(extraRules, 'model_alias: [unclosed\n');
    await hup('refused');
    const line = proxy.logs().split('\n').filter((l) => l.includes('reload refused')).at(-1);
    assert.match(line, /extra-rules\.yaml:\d+:\d+/, `the refusal names the file and position: ${line}`);
    const res = await chat('my-alias');
    assert.equal(res.status, 200, `the old rule set should still apply: ${res.text}`);
    assert.equal(JSON.parse(fake.requests.at(-1).body).model, 'mistral-small-latest');
    await writeFile(extraRules, 'model_alias:\n  "my-alias": mistral-small-latest\n');
    await hup('reloaded');
  });

  test('a stream in flight finishes on the rule set it started with', async () => {
    // The stream starts with finish_reason on (model_length -> length); the reload switches
    // it off and remaps my-alias; the held last chunk must still be translated.
    fake.setFinishReason('model_length');
    const gate = fake.holdBeforeLastChunk();
    const s = await openStream(`${proxy.baseURL}/chat/completions`, chatBody('in flight', { model: 'my-alias', stream: true }));
    assert.equal(s.status, 200);
    try {
      await withTimeout(gate.reachedHold, 5000, 'fake reached the hold');
      await writeFile(extraRules, 'switches:\n  finish_reason: false\nmodel_alias:\n  "my-alias": ministral-8b-latest\n');
      await hup('reloaded');
    } finally {
      await gate.release();
    }
    const { events, ended } = await withTimeout(s.done, 5000, 'held stream end');
    assert.ok(ended, 'the stream ended cleanly');
    assert.equal(events.at(-1).data, '[DONE]');
    assert.equal(deltaText(events), 'echo: in flight');
    const last = JSON.parse(events.at(-2).data);
    assert.equal(last.choices[0].finish_reason, 'length', 'the stream kept its starting rule set (finish_reason on)');
    // A new request sees the new set.
    fake.setFinishReason('model_length');
    const res = await chat('my-alias');
    assert.equal(res.status, 200, res.text);
    assert.equal(JSON.parse(fake.requests.at(-1).body).model, 'ministral-8b-latest');
    assert.equal(res.json.choices[0].finish_reason, 'model_length', 'finish_reason now off');
  });

  test('changing listen is refused with a message; the proxy keeps its address', async () => {
    const original = cfg.text;
    await writeFile(cfg.file, original.replace(/^listen: .*$/m, 'listen: 127.0.0.1:1'));
    try {
      await hup('refused');
      const line = proxy.logs().split('\n').filter((l) => l.includes('reload refused')).at(-1);
      assert.match(line, /listen/, line);
      const res = await request(`${proxy.url}/healthz`);
      assert.equal(res.status, 200);
    } finally {
      await writeFile(cfg.file, original);
    }
  });

  test('a refused reload changes nothing, not even the log level (runs last: it stops the proxy)', async () => {
    // The same file changes listen (refused) and log.level to error. Nothing of it may apply:
    // the info line of the stop that follows must still be printed.
    await writeFile(cfg.file, `${cfg.text.replace(/^listen: .*$/m, 'listen: 127.0.0.1:1')}log:\n  level: error\n`);
    await hup('refused');
    const marker = proxy.logs().length;
    proxy.signal('SIGTERM');
    const { code } = await withTimeout(proxy.exited, 10_000, 'exit after SIGTERM');
    assert.equal(code, 0);
    const tail = proxy.logs().slice(marker);
    assert.match(tail, /draining/, `after a refused reload the info lines are gone (log.level of the refused file applied?); output after the refusal: ${JSON.stringify(tail)}`);
  });
});

// ---------------------------------------------------------------------------
// Graceful stop

describe('graceful stop', () => {
  test('SIGTERM: the stream in flight completes, idle connections close, new connections are refused, exit 0', async () => {
    const stack = await startStack();
    const { proxy } = stack;
    let gone;
    try {
      // An idle keep-alive connection, already answered once.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const idle = await request(`${proxy.url}/healthz`, { agent });
      assert.equal(idle.status, 200);
      const idleClosed = new Promise((r) => idle.socket.once('close', r));

      const gate = stack.fakes.mistral.holdBeforeLastChunk();
      const s = await openStream(`${proxy.baseURL}/chat/completions`, chatBody('finish me', { stream: true }));
      await withTimeout(gate.reachedHold, 5000, 'fake reached the hold');
      gone = proxy.kill('SIGTERM');
      await waitUntil(() => /draining/.test(proxy.logs()), { timeoutMs: 3000, label: '"draining" logged after SIGTERM', describe: () => proxy.logs() });
      await withTimeout(idleClosed, 3000, 'the idle keep-alive connection is closed on SIGTERM');
      agent.destroy();
      assert.equal(await tryConnect(proxy.port), 'refused', 'a new connection after SIGTERM');
      assert.equal(proxy.exitCode, null, 'the proxy must wait for the stream');
      await gate.release();
      const { events, ended } = await withTimeout(s.done, 5000, 'the held stream ends after release');
      assert.ok(ended, 'stream cut during the drain');
      assert.equal(events.at(-1).data, '[DONE]');
      assert.equal(deltaText(events), 'echo: finish me');
      const { code, signal } = await withTimeout(gone, 5000, 'exit once the stream is done');
      assert.equal(signal, null);
      assert.equal(code, 0);
      // stderr may still be in the pipe when 'exit' fires: poll it, bounded.
      await waitUntil(() => /stopped/.test(proxy.logs()), { timeoutMs: 2000, label: '"stopped" logged', describe: () => proxy.logs() });
    } finally {
      await (gone ?? proxy.kill('SIGKILL'));
      await stack.stop();
    }
  });

  test('drain_timeout: a stream that never ends is cut and the process exits 0 in time', async () => {
    const stack = await startStack({ proxy: { server: { drain_timeout: '500ms' } } });
    const { proxy } = stack;
    let gone;
    try {
      const gate = stack.fakes.mistral.holdBeforeLastChunk(); // never released: fake.close() ends it
      const s = await openStream(`${proxy.baseURL}/chat/completions`, chatBody('never ends', { stream: true }));
      await withTimeout(gate.reachedHold, 5000, 'fake reached the hold');
      const t0 = Date.now();
      gone = proxy.kill('SIGTERM');
      const { code, signal } = await withTimeout(gone, 5000, 'exit after drain_timeout 500ms');
      const elapsed = Date.now() - t0;
      assert.equal(signal, null);
      assert.equal(code, 0);
      assert.ok(elapsed >= 400, `exited after ${elapsed} ms, before drain_timeout`);
      assert.ok(elapsed < 3000, `exited ${elapsed} ms after SIGTERM with drain_timeout 500ms`);
      const { events, ended } = await withTimeout(s.done, 3000, 'client sees the end of the cut stream');
      assert.ok(!ended || events.at(-1)?.data !== '[DONE]', 'a cut stream must not look complete');
      await waitUntil(() => /drain_timeout/.test(proxy.logs()), { timeoutMs: 2000, label: 'drain_timeout logged', describe: () => proxy.logs() });
    } finally {
      await (gone ?? proxy.kill('SIGKILL'));
      await stack.stop();
    }
  });
});

// ---------------------------------------------------------------------------
// Non-loopback listen without client keys

describe('non-loopback listen', () => {
  // 192.0.2.1 (TEST-NET-1) is not an address of this host: the bind fails, so nothing is
  // ever exposed, but the warning is printed before binding.
  let cfg;
  before(async () => {
    cfg = await writeConfig({});
  });
  after(async () => {
    if (cfg) await rm(cfg.dir, { recursive: true, force: true });
  });

  test('without client keys: a warning naming client_keys_env', async () => {
    const { stderr } = await runCli(['serve', '--config', cfg.file, '--listen', '192.0.2.1:0']);
    assert.match(stderr, /warn.*192\.0\.2\.1.*client_keys_env/, stderr);
  });

  test('with client keys, or on loopback: no warning', async () => {
    const keyed = await writeConfig({ client_keys_env: 'PROXY_CLIENT_KEYS' });
    try {
      const { stderr } = await runCli(['serve', '--config', keyed.file, '--listen', '192.0.2.1:0'], { env: { PROXY_CLIENT_KEYS: 'k1' } });
      assert.doesNotMatch(stderr, /client_keys_env/, stderr);
    } finally {
      await rm(keyed.dir, { recursive: true, force: true });
    }
    const proxy = await serveConfig(cfg.file, { args: ['--listen', '127.0.0.2:0'] });
    try {
      assert.doesNotMatch(proxy.logs(), /client_keys_env/, proxy.logs());
    } finally {
      await proxy.stop();
    }
  });
});
