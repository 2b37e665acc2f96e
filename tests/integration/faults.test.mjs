// Fault suite: every fault, upstream or client side, gets an OpenAI-shaped
// answer (or a clean close where no answer is possible), and leaves nothing behind: the
// proxy's open descriptors and RSS go back to their baseline. Then 1,000 concurrent
// streams with flat memory. One proxy process for the whole file, watched in /proc.
//
// What each fault's answer looks like in detail is in upstream-failures, client-input and
// streaming.test.mjs; here the point is repetition and the absence of leaks.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { startFakeMistral } from '../fake-mistral/fake-mistral.mjs';
import { startStack, KEYS } from '../support/stack.mjs';
import { makeTestCerts } from '../support/certs.mjs';
import { request, postJson, openStream, deltaText, parseRawResponse, assertOpenAiError, chatBody, withTimeout } from '../support/http.mjs';
import { fdCount, fdKinds, rssBytes, openFilesLimit, waitUntil } from '../support/procfs.mjs';

const REPEAT = 3; // each fault this many times, concurrently
const MB = 1024 * 1024;
const MAX_BODY = 1 * MB;
const STREAMS = 1000;

let pki;
let tlsFake; // codestral: a certificate from a CA the proxy does not trust, then closed (refused)
let stack;
let pid;
let baseline;

before(async () => {
  pki = await makeTestCerts();
  tlsFake = await startFakeMistral({ name: 'codestral', apiKey: KEYS.codestral, tls: pki.tlsOptions(pki.otherServer) });
  stack = await startStack({
    proxy: {
      upstreams: {
        // max_idle_connections 2: the pool may keep at most 2 idle upstream connections per
        // worker, which bounds the descriptors a leak check must tolerate.
        mistral: { read_timeout: '500ms', max_idle_connections: 2 },
        codestral: { base_url: tlsFake.url, ca_file: pki.ca.cert, max_idle_connections: 2 },
      },
      server: { header_timeout: '1s', body_timeout: '1s', max_header_bytes: 8192, max_body_bytes: MAX_BODY, threads: 2 },
    },
  });
  pid = stack.proxy.pid;
});

after(async () => {
  await stack?.stop();
  await tlsFake?.close();
  await pki?.cleanup();
});

const chatUrl = () => `${stack.proxy.baseURL}/chat/completions`;
const times = (n, fn) => Promise.all(Array.from({ length: n }, (_, i) => fn(i)));
const snapshot = () => ({ fds: fdCount(pid), rss: rssBytes(pid), kinds: fdKinds(pid) });

/** Raw client: writes `head`, then `trickle` one byte every `everyMs` until the server closes. */
function slowClient(port, head, trickle, everyMs = 100) {
  return new Promise((res) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    let i = 0;
    let timer;
    const t0 = Date.now();
    socket.on('data', (d) => (text += d.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearInterval(timer);
      res({ response: parseRawResponse(text), text, elapsed: Date.now() - t0 });
    });
    socket.on('connect', () => {
      socket.write(head);
      timer = setInterval(() => {
        if (socket.destroyed || socket.writableEnded) return;
        socket.write(trickle[i % trickle.length]);
        i += 1;
      }, everyMs);
    });
  });
}

function assertRawOpenAiError(result, status, label) {
  const { response, text } = result;
  assert.ok(response, `${label}: no HTTP answer before the close (got ${JSON.stringify(text.slice(0, 200))})`);
  assert.equal(response.status, status, `${label}: ${response.statusLine}`);
  assert.match(response.headers['content-type'] ?? '', /^application\/json/, `${label}: content-type`);
  assert.ok(response.json?.error?.message && typeof response.json.error.type === 'string', `${label}: not an OpenAI error: ${response.body}`);
}

/** The last SSE event of a stream that must end with an error event. */
function assertStreamEndsWithError(done, label) {
  assert.ok(done.ended, `${label}: the stream was cut instead of ending cleanly`);
  const last = done.events.at(-1);
  assert.ok(last, `${label}: no events`);
  let json;
  assert.doesNotThrow(() => (json = JSON.parse(last.data)), `${label}: last event not JSON: ${last.data}`);
  assert.ok(json.error?.message && typeof json.error.type === 'string', `${label}: last event not an error: ${last.data}`);
}

test('warm-up and baseline', async () => {
  assert.ok(openFilesLimit(pid) >= 2 * STREAMS + 200, `the proxy may open only ${openFilesLimit(pid)} files; ${STREAMS} streams need ~${2 * STREAMS + 100} (raise ulimit -n)`);
  // Touch every path once (both workers, pools, TLS context, streaming) so that what stays
  // allocated afterwards is steady state, not growth.
  for (let i = 0; i < 6; i++) {
    assert.equal((await postJson(chatUrl(), chatBody(`warm ${i}`))).status, 200);
    const s = await openStream(chatUrl(), chatBody(`warm stream ${i}`, { stream: true }));
    assert.ok((await s.done).ended);
    assertOpenAiError(await postJson(`${stack.proxy.baseURL}/fim/completions`, { model: 'codestral-latest', prompt: 'x' }), 502);
    assert.equal((await request(`${stack.proxy.url}/metrics`)).status, 200);
  }
  baseline = snapshot();
  process.stdout.write(`# baseline: ${baseline.fds} fds ${JSON.stringify(baseline.kinds)}, RSS ${(baseline.rss / MB).toFixed(1)} MB\n`);
});

test('upstream hangs before headers: 504 each time', async () => {
  stack.fakes.mistral.injectFault({ kind: 'hang', times: REPEAT });
  await times(REPEAT, async () => assertOpenAiError(await postJson(chatUrl(), chatBody('hang')), 504));
  stack.fakes.mistral.injectFault({ kind: 'hang', times: REPEAT });
  await times(REPEAT, async () => assertOpenAiError(await postJson(chatUrl(), chatBody('hang', { stream: true })), 504));
});

test('upstream hangs mid-stream (longer than read_timeout): error event, clean end', async () => {
  stack.fakes.mistral.injectFault({ kind: 'slow', intervalMs: 2000, chunks: 3, times: REPEAT });
  await times(REPEAT, async (i) => {
    const s = await openStream(chatUrl(), chatBody(`stall ${i}`, { stream: true }));
    assert.equal(s.status, 200);
    assertStreamEndsWithError(await withTimeout(s.done, 5000, 'stalled stream end'), 'stall');
  });
});

test('upstream resets mid-stream: error event, clean end', async () => {
  stack.fakes.mistral.injectFault({ kind: 'reset_after', chunks: 2, rst: true, times: REPEAT });
  await times(REPEAT, async (i) => {
    const s = await openStream(chatUrl(), chatBody(`reset ${i}`, { stream: true }));
    assertStreamEndsWithError(await withTimeout(s.done, 5000, 'reset stream end'), 'reset');
  });
});

test('upstream sends garbage HTTP: 502', async () => {
  stack.fakes.mistral.injectFault({ kind: 'garbage', times: REPEAT });
  await times(REPEAT, async () => assertOpenAiError(await postJson(chatUrl(), chatBody('garbage')), 502));
});

test('upstream presents a certificate of an unknown CA: 502 upstream_tls_error', async () => {
  await times(REPEAT, async () => {
    const error = assertOpenAiError(await postJson(`${stack.proxy.baseURL}/fim/completions`, { model: 'codestral-latest', prompt: 'x' }), 502);
    assert.match(error.message, /TLS|certificate|verif/i, error.message);
  });
  assert.equal(tlsFake.requests.length, 0);
});

test('upstream refuses connections: 502', async () => {
  await tlsFake.close(); // nothing listens on the codestral port any more
  await times(REPEAT, async () => {
    const error = assertOpenAiError(await postJson(`${stack.proxy.baseURL}/fim/completions`, { model: 'codestral-latest', prompt: 'x' }), 502);
    assert.match(error.message, /connect|refused/i, error.message);
  });
});

// A client too slow with its request is disconnected when its timeout expires,
// as nginx does (README, server.header_timeout/body_timeout): no answer is owed
// to a client that never finished asking; the access log records a 408.
function assertDropped(result, label) {
  assert.equal(result.text, '', `${label}: the proxy answered ${JSON.stringify(result.text.slice(0, 200))}`);
  assert.ok(result.elapsed < 3000, `${label}: dropped ${result.elapsed} ms after the first byte with a 1s timeout`);
}

test('client sends its headers slowly (slowloris): dropped after header_timeout', async () => {
  const results = await times(REPEAT, () =>
    withTimeout(slowClient(stack.proxy.port, 'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n', ['X-a: b\r\n'], 100), 5000, 'slowloris dropped'),
  );
  for (const r of results) assertDropped(r, 'slowloris');
});

test('client sends its body slowly: dropped after body_timeout, nothing sent upstream', async () => {
  const before = stack.fakes.mistral.requests.length;
  const head = 'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"model":';
  const results = await times(REPEAT, () => withTimeout(slowClient(stack.proxy.port, head, [' '], 100), 5000, 'slow body dropped'));
  for (const r of results) assertDropped(r, 'slow body');
  assert.equal(stack.fakes.mistral.requests.length, before);
});

test('oversized headers: 431', async () => {
  await times(REPEAT, async () => {
    const res = await request(`${stack.proxy.baseURL}/models`, { headers: { 'x-padding': 'p'.repeat(64 * 1024) } });
    assertOpenAiError(res, 431);
  });
});

test('a huge body (64 MB announced, 8 MB pushed): 413 without reading it', async () => {
  await times(REPEAT, async () => {
    // Bounded: an answer lost to a reset must fail the test, not hang the suite.
    const res = await withTimeout(new Promise((resolve, reject) => {
      const req = http.request(chatUrl(), { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': String(64 * MB) } });
      req.on('response', (r) => {
        const parts = [];
        r.on('data', (c) => parts.push(c));
        r.on('end', () => {
          const text = Buffer.concat(parts).toString();
          resolve({ status: r.statusCode, headers: r.headers, text, json: JSON.parse(text) });
          req.destroy();
        });
      });
      req.on('error', (error) => (error.code === 'EPIPE' || error.code === 'ECONNRESET' ? undefined : reject(error)));
      const chunk = Buffer.alloc(MB, 0x20);
      let sent = 0;
      const push = () => {
        while (sent < 8 && !req.destroyed) {
          sent += 1;
          if (!req.write(chunk)) return req.once('drain', push);
        }
      };
      push();
    }), 15_000, 'the 413 answer');
    assertOpenAiError(res, 413);
  });
});

test('client aborts mid-upload (JSON body and streamed passthrough): connection freed, upstream upload aborted', async () => {
  // JSON endpoint: the proxy reads the whole body first, so nothing goes upstream.
  const before = stack.fakes.mistral.requests.length;
  await times(REPEAT, async () => {
    const socket = net.connect(stack.proxy.port, '127.0.0.1');
    socket.on('error', () => {});
    const closed = new Promise((r) => socket.on('close', r));
    await new Promise((r) => socket.on('connect', r));
    socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"model":"mistral-small-latest","messages":[${' '.repeat(30_000)}`);
    socket.destroy();
    await closed;
  });
  // None of them reached the upstream: the next request is the only one it sees.
  const after = await postJson(chatUrl(), chatBody('after the aborted uploads'));
  assert.equal(after.status, 200, after.text);
  const sent = stack.fakes.mistral.requests.slice(before);
  assert.equal(sent.length, 1, `only the request after the aborts went upstream: ${JSON.stringify(sent.map((r) => r.path))}`);
  // Passthrough: the body is streamed upstream; the upstream must see the upload cut.
  for (let i = 0; i < REPEAT; i++) {
    const started = stack.fakes.mistral.nextRequestStart('/v1/files');
    const aborted = stack.fakes.mistral.nextAbort();
    // Announced size under max_body_bytes (a larger one gets 413 before anything is sent).
    const req = http.request(`${stack.proxy.baseURL}/files`, { method: 'POST', agent: false, headers: { 'content-type': 'application/octet-stream', 'content-length': String(MAX_BODY - 1024) } });
    req.on('error', () => {});
    req.write(Buffer.alloc(256 * 1024, 0x61));
    await withTimeout(started, 5000, 'upload reached the upstream');
    req.destroy();
    await withTimeout(aborted, 3000, 'the upstream saw the upload aborted');
  }
});

test('client aborts mid-stream: the upstream request is aborted', async () => {
  stack.fakes.mistral.injectFault({ kind: 'slow', intervalMs: 100, chunks: 50, times: REPEAT });
  for (let i = 0; i < REPEAT; i++) {
    const aborted = stack.fakes.mistral.nextAbort();
    const s = await openStream(chatUrl(), chatBody(`abort ${i}`, { stream: true }));
    await withTimeout(s.waitForEvents(2), 5000, 'first events');
    s.destroy();
    await withTimeout(aborted, 2000, 'upstream saw the client abort');
  }
});

test('after all faults: descriptors and RSS back to baseline, and the proxy still serves', async () => {
  assert.ok(baseline, 'no baseline (warm-up failed)');
  const res = await postJson(chatUrl(), chatBody('still here'));
  assert.equal(res.status, 200, res.text);
  // Pooled keep-alive upstream connections may differ by a few (max_idle_connections 2 per worker).
  const allowed = baseline.fds + 4;
  await waitUntil(() => fdCount(pid) <= allowed, {
    timeoutMs: 5000,
    label: `fd count <= baseline ${baseline.fds} + 4`,
    describe: () => `now ${fdCount(pid)} ${JSON.stringify(fdKinds(pid))}; baseline ${JSON.stringify(baseline.kinds)}`,
  });
  const rss = rssBytes(pid);
  process.stdout.write(`# after faults: ${fdCount(pid)} fds, RSS ${(rss / MB).toFixed(1)} MB\n`);
  assert.ok(rss < baseline.rss + 16 * MB, `RSS grew from ${(baseline.rss / MB).toFixed(1)} to ${(rss / MB).toFixed(1)} MB`);
});

// Its own proxy: the fault proxy's 500ms read_timeout would turn a slow first byte of the
// in-process fake under this load into 504s. Same fd/RSS rules, its own baseline.
test(`${STREAMS} concurrent paced streams: all complete, RSS stays under 64 MB and settles`, async () => {
  const load = await startStack({ proxy: { upstreams: { mistral: { max_idle_connections: 2 } }, server: { threads: 2 } } });
  try {
    const lpid = load.proxy.pid;
    const url = `${load.proxy.baseURL}/chat/completions`;
    assert.ok(openFilesLimit(lpid) >= 2 * STREAMS + 200, `the proxy may open only ${openFilesLimit(lpid)} files; ${STREAMS} streams need ~${2 * STREAMS + 100} (raise ulimit -n)`);
    for (let i = 0; i < 6; i++) {
      const s = await openStream(url, chatBody(`warm ${i}`, { stream: true }));
      assert.ok((await s.done).ended);
    }
    const base = { fds: fdCount(lpid), rss: rssBytes(lpid), kinds: fdKinds(lpid) };
    load.fakes.mistral.setStream({ chunks: 20, intervalMs: 50 }); // ~1 s per stream
    load.reset();
    let peak = base.rss;
    let peakFds = base.fds;
    const sampler = setInterval(() => {
      try {
        peak = Math.max(peak, rssBytes(lpid));
        peakFds = Math.max(peakFds, fdCount(lpid));
      } catch {
        // the process is gone: the assertions below say so
      }
    }, 50);
    const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
    const t0 = Date.now();
    try {
      const results = await withTimeout(
        times(STREAMS, async (i) => {
          const s = await openStream(url, chatBody(`stream ${i}`, { stream: true }), {}, { agent });
          const { events, ended } = await s.done;
          return { i, status: s.status, ended, text: deltaText(events), last: events.at(-1)?.data, n: events.length };
        }),
        40_000,
        `${STREAMS} streams`,
      );
      // 1 role chunk + 20 content chunks + the finish chunk + [DONE]
      const bad = results.filter((r) => r.status !== 200 || !r.ended || r.text !== `echo: stream ${r.i}` || r.last !== '[DONE]' || r.n !== 23);
      assert.deepEqual(bad.slice(0, 3), [], `${bad.length} of ${STREAMS} streams went wrong`);
    } finally {
      clearInterval(sampler);
      agent.destroy();
    }
    const elapsed = Date.now() - t0;
    process.stdout.write(`# ${STREAMS} streams in ${elapsed} ms; baseline RSS ${(base.rss / MB).toFixed(1)} MB, peak ${(peak / MB).toFixed(1)} MB; fds ${base.fds}, peak ${peakFds}\n`);
    assert.equal(load.fakes.mistral.requests.length, STREAMS);
    assert.ok(peakFds >= STREAMS, `the streams were not concurrent (peak ${peakFds} fds)`);
    assert.ok(peak < 64 * MB, `peak RSS ${(peak / MB).toFixed(1)} MB during ${STREAMS} streams`);
    await waitUntil(() => fdCount(lpid) <= base.fds + 4, {
      timeoutMs: 5000,
      label: `fd count back to baseline ${base.fds} + 4 after the streams`,
      describe: () => `now ${fdCount(lpid)} ${JSON.stringify(fdKinds(lpid))}; baseline ${JSON.stringify(base.kinds)}`,
    });
    // Freed memory goes back to the system once a worker has no connection
    // left, at most once a second (return_memory_when_idle): wait for that.
    let settled = rssBytes(lpid);
    await waitUntil(() => (settled = rssBytes(lpid)) < base.rss + 16 * MB, {
      timeoutMs: 5000,
      label: `RSS back within 16 MB of the baseline ${(base.rss / MB).toFixed(1)} MB after the streams`,
      describe: () => `now ${(settled / MB).toFixed(1)} MB`,
    });
    process.stdout.write(`# after streams: RSS ${(settled / MB).toFixed(1)} MB\n`);
  } finally {
    await load.stop();
  }
});
