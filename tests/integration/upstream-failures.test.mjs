// When the upstream fails: refused connections, hangs, garbage, TLS problems.
// Every failure reaches the client as an OpenAI-shaped error naming what failed.
import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { startFakeMistral } from '../fake-mistral/fake-mistral.mjs';
import { startProxy } from '../support/proxy.mjs';
import { startStack, KEYS } from '../support/stack.mjs';
import { makeTestCerts } from '../support/certs.mjs';
import { postJson, request, openStream, assertOpenAiError, assertProxyHeaders, chatBody, closedPort, withTimeout } from '../support/http.mjs';

const ENV = { MISTRAL_API_KEY: KEYS.mistral, CODESTRAL_API_KEY: KEYS.codestral };

test('connection refused: 502 naming the upstream and the failure', async () => {
  const port = await closedPort();
  const proxy = await startProxy({ upstreams: { mistral: { base_url: `http://127.0.0.1:${port}/v1` } }, env: ENV });
  try {
    const res = await postJson(`${proxy.baseURL}/chat/completions`, chatBody('x'));
    const error = assertOpenAiError(res, 502, { type: 'api_error' });
    assert.match(error.message, /mistral/i, `message names the upstream: ${error.message}`);
    assert.match(error.message, /connect|refused/i, `message says what failed: ${error.message}`);
    assertProxyHeaders(res, 'mistral');
    const stream = await postJson(`${proxy.baseURL}/chat/completions`, chatBody('x', { stream: true }));
    assertOpenAiError(stream, 502);
  } finally {
    await proxy.stop();
  }
});

test('connection refused on codestral names codestral', async () => {
  const port = await closedPort();
  const proxy = await startProxy({ upstreams: { codestral: { base_url: `http://127.0.0.1:${port}/v1` } }, env: ENV });
  try {
    const res = await postJson(`${proxy.baseURL}/fim/completions`, { model: 'codestral-latest', prompt: 'x' });
    const error = assertOpenAiError(res, 502);
    assert.match(error.message, /codestral/i, error.message);
  } finally {
    await proxy.stop();
  }
});

describe('faults of a live upstream', () => {
  let stack;
  before(async () => {
    stack = await startStack({ proxy: { upstreams: { mistral: { read_timeout: '500ms' } } } });
  });
  after(async () => {
    await stack?.stop();
  });
  beforeEach(() => stack.reset());

  test('upstream hangs before headers: 504 after read_timeout, and the upstream request is dropped', async () => {
    stack.fakes.mistral.injectFault({ kind: 'hang' });
    const aborted = stack.fakes.mistral.nextAbort();
    const t0 = Date.now();
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('hang'));
    const elapsed = Date.now() - t0;
    const error = assertOpenAiError(res, 504);
    assert.match(error.message, /mistral/i, error.message);
    assert.ok(elapsed >= 400 && elapsed < 5000, `504 after ${elapsed} ms with read_timeout 500ms`);
    await withTimeout(aborted, 2000, 'the proxy closed the hung upstream connection');
  });

  // The read timeout's timer lives with the upstream connection and is moved
  // lazily: armed by the first request for its own deadline, it must not end
  // a later request on the same kept-alive connection before that one's.
  // One worker thread, so that both requests share its pool.
  test('a hang on a kept-alive connection 300 ms after an answer on it: 504 a full read_timeout after this request', async () => {
    const own = await startStack({ proxy: { server: { threads: 1 }, upstreams: { mistral: { read_timeout: '500ms' } } } });
    try {
      const first = await postJson(`${own.proxy.baseURL}/chat/completions`, chatBody('answered'));
      assert.equal(first.status, 200);
      const accepted = own.fakes.mistral.connections;
      await new Promise((resolve) => setTimeout(resolve, 300));  // the scenario: the first deadline falls during the second request
      own.fakes.mistral.injectFault({ kind: 'hang' });
      const t0 = Date.now();
      const res = await postJson(`${own.proxy.baseURL}/chat/completions`, chatBody('hang'));
      const elapsed = Date.now() - t0;
      assertOpenAiError(res, 504);
      assert.ok(elapsed >= 450 && elapsed < 5000, `504 after ${elapsed} ms with read_timeout 500ms`);
      assert.equal(own.fakes.mistral.connections, accepted, 'the hung request went on the kept-alive connection');
    } finally {
      await own.stop();
    }
  });

  test('upstream hangs on a streamed request: 504 too', async () => {
    stack.fakes.mistral.injectFault({ kind: 'hang' });
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('hang', { stream: true }));
    assertOpenAiError(res, 504);
  });

  test('stream stalls after some events longer than read_timeout: error event, clean end', async () => {
    stack.fakes.mistral.injectFault({ kind: 'slow', intervalMs: 1500, chunks: 3 });
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('stall', { stream: true }), {}, { timeoutMs: 10_000 });
    assert.equal(res.status, 200);
    const events = res.text.split('\n\n').filter((b) => b.startsWith('data:'));
    const last = JSON.parse(events.at(-1).slice(5));
    assert.ok(last.error?.message, `last event should be an error: ${events.at(-1)}`);
  });

  test('upstream answers garbage: 502', async () => {
    stack.fakes.mistral.injectFault({ kind: 'garbage' });
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('garbage'));
    const error = assertOpenAiError(res, 502);
    assert.match(error.message, /mistral/i, error.message);
  });

  test('upstream closes the connection without answering: 502', async () => {
    // times: a proxy may legitimately retry once on a fresh connection; it must still end in a 502.
    stack.fakes.mistral.injectFault({ kind: 'close_immediately', times: 5 });
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('closed'));
    assertOpenAiError(res, 502);
    stack.fakes.mistral.clearFaults();
  });

  test('upstream cuts a non-streamed body halfway: 502', async () => {
    stack.fakes.mistral.injectFault({ kind: 'reset_after' });
    // Either a 502, or (if the proxy relays bodies as they come) a response that is visibly
    // cut for the client; never a complete-looking 200 holding half a JSON document.
    let res;
    try {
      res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('half'));
    } catch (error) {
      assert.match(`${error.code} ${error.message}`, /aborted|ECONNRESET|socket hang up/i);
      return;
    }
    if (res.status === 200) assert.fail(`a cut upstream body was answered as a complete 200: ${res.text}`);
    assertOpenAiError(res, 502);
  });

  test('the proxy keeps serving after all that', async () => {
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('still alive'));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.choices[0].message.content, 'echo: still alive');
  });
});

describe('TLS upstreams', () => {
  let pki;
  before(async () => {
    pki = await makeTestCerts();
  });
  after(async () => {
    await pki?.cleanup();
  });

  async function withTlsFake(leaf, upstream, fn) {
    const fake = await startFakeMistral({ name: 'mistral', apiKey: KEYS.mistral, tls: pki.tlsOptions(leaf) });
    const proxy = await startProxy({ upstreams: { mistral: { base_url: fake.url, ...upstream } }, env: ENV });
    try {
      await fn(fake, proxy);
    } finally {
      await proxy.stop();
      await fake.close();
    }
  }

  test('https with the test CA as ca_file works, plain and streamed', async () => {
    await withTlsFake(pki.server, { ca_file: pki.ca.cert }, async (fake, proxy) => {
      const res = await postJson(`${proxy.baseURL}/chat/completions`, chatBody('over tls'));
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json.choices[0].message.content, 'echo: over tls');
      const streamed = await postJson(`${proxy.baseURL}/chat/completions`, chatBody('tls stream', { stream: true }));
      assert.equal(streamed.status, 200, streamed.text);
      assert.match(streamed.text, /data: \[DONE\]/);
      assert.equal(fake.requests.length, 2);
      assert.equal(fake.requests[0].headers.authorization, `Bearer ${KEYS.mistral}`);
    });
  });

  // One worker, so one pool: sequential requests, streamed or not, go on one
  // kept-alive TLS connection, and a second connection resumes its session.
  test('TLS connections are kept alive across requests and streams; a new one resumes the session', async () => {
    const fake = await startFakeMistral({ name: 'mistral', apiKey: KEYS.mistral, tls: pki.tlsOptions(pki.server) });
    const proxy = await startProxy({
      upstreams: { mistral: { base_url: fake.url, ca_file: pki.ca.cert } },
      server: { threads: 1 },
      env: ENV,
    });
    const counter = async (name) => {
      const text = (await request(`${proxy.url}/metrics`)).text;
      const line = text.split('\n').find((l) => l.startsWith(`${name} `));
      assert.ok(line, `${name} in /metrics`);
      return Number(line.split(' ')[1]);
    };
    try {
      for (let i = 0; i < 6; i++) {
        const stream = i % 2 === 1;
        const res = await postJson(`${proxy.baseURL}/chat/completions`, chatBody(`tls ${i}`, { stream }));
        assert.equal(res.status, 200, res.text);
        if (stream) assert.match(res.text, /echo: tls|data: \[DONE\]/);
        else assert.equal(res.json.choices[0].message.content, `echo: tls ${i}`);
      }
      assert.equal(fake.connections, 1, 'six requests, three of them streamed, on one upstream connection');
      assert.equal(await counter('mistral_proxy_upstream_tls_handshakes_total'), 1);
      assert.equal(await counter('mistral_proxy_upstream_tls_resumed_total'), 0);

      // The kept connection is busy with a paced stream: the next request opens another, resuming.
      fake.injectFault({ kind: 'slow', intervalMs: 150, chunks: 4 });
      const held = await openStream(`${proxy.baseURL}/chat/completions`, chatBody('held', { stream: true }));
      await held.waitForEvents(1);
      const res = await postJson(`${proxy.baseURL}/chat/completions`, chatBody('beside'));
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json.choices[0].message.content, 'echo: beside');
      const ended = await held.done;
      assert.ok(ended.ended && /\[DONE\]/.test(ended.rawText), 'the paced stream ended whole');
      assert.equal(fake.connections, 2);
      assert.equal(await counter('mistral_proxy_upstream_tls_handshakes_total'), 2);
      assert.equal(await counter('mistral_proxy_upstream_tls_resumed_total'), 1, 'the second handshake resumed the first session');
    } finally {
      await proxy.stop();
      await fake.close();
    }
  });

  test('a certificate from another CA: 502 saying TLS/certificate, nothing sent', async () => {
    await withTlsFake(pki.otherServer, { ca_file: pki.ca.cert }, async (fake, proxy) => {
      const res = await postJson(`${proxy.baseURL}/chat/completions`, chatBody('x'));
      const error = assertOpenAiError(res, 502);
      assert.match(error.message, /TLS|SSL|certificate|verif/i, error.message);
      assert.equal(fake.requests.length, 0);
    });
  });

  test('the system store does not trust the test CA: 502', async () => {
    await withTlsFake(pki.server, {}, async (fake, proxy) => {
      const res = await postJson(`${proxy.baseURL}/chat/completions`, chatBody('x'));
      const error = assertOpenAiError(res, 502);
      assert.match(error.message, /TLS|SSL|certificate|verif/i, error.message);
      assert.equal(fake.requests.length, 0);
    });
  });

  test('a certificate for another host name: 502, nothing sent', async () => {
    await withTlsFake(pki.wrongHost, { ca_file: pki.ca.cert }, async (fake, proxy) => {
      const res = await postJson(`${proxy.baseURL}/chat/completions`, chatBody('x'));
      const error = assertOpenAiError(res, 502);
      assert.match(error.message, /TLS|SSL|certificate|verif|host/i, error.message);
      assert.equal(fake.requests.length, 0);
    });
  });

  // TLS contexts are shared between upstreams that trust the same CA
  // certificates, and only between those: each upstream still verifies with its own.
  test('each upstream trusts its own ca_file: one shared context never widens trust', async () => {
    const fake = await startFakeMistral({ name: 'mistral', apiKey: KEYS.mistral, tls: pki.tlsOptions(pki.server) });
    const configs = [
      { mistral: pki.ca.cert, mistral_eu: pki.ca.cert, codestral: pki.otherCa.cert },
      { mistral: pki.otherCa.cert, mistral_eu: pki.otherCa.cert, codestral: pki.ca.cert },
      { mistral: pki.ca.cert, mistral_eu: pki.ca.cert, codestral: undefined },  // codestral: the system store
    ];
    try {
      for (const cas of configs) {
        const upstream = (ca) => ({ base_url: fake.url, ...(ca ? { ca_file: ca } : {}) });
        const proxy = await startProxy({
          upstreams: { mistral: upstream(cas.mistral), mistral_eu: upstream(cas.mistral_eu), codestral: upstream(cas.codestral) },
          env: { ...ENV, CODESTRAL_API_KEY: KEYS.mistral },  // the one fake checks the mistral key
        });
        try {
          fake.requests.length = 0;
          const chat = await postJson(`${proxy.baseURL}/chat/completions`, chatBody('x'));
          const fim = await postJson(`${proxy.baseURL}/fim/completions`, { model: 'codestral-latest', prompt: 'def f():' });
          for (const [res, ca, name] of [[chat, cas.mistral, 'mistral'], [fim, cas.codestral, 'codestral']]) {
            if (ca === pki.ca.cert) {
              // Reached the fake (which serves chat only, so the FIM call is its 404).
              assert.ok(res.status === 200 || res.status === 404, `${name} trusts the test CA: ${res.status} ${res.text}`);
            } else {
              const error = assertOpenAiError(res, 502);
              assert.match(error.message, /TLS|SSL|certificate|verif/i, `${name}: ${error.message}`);
            }
          }
          assert.equal(fake.requests.length, [cas.mistral, cas.codestral].filter((ca) => ca === pki.ca.cert).length);
        } finally {
          await proxy.stop();
        }
      }
    } finally {
      await fake.close();
    }
  });

  test('a TLS upstream that hangs: 504', async () => {
    await withTlsFake(pki.server, { ca_file: pki.ca.cert, read_timeout: '500ms' }, async (fake, proxy) => {
      fake.injectFault({ kind: 'hang' });
      const res = await postJson(`${proxy.baseURL}/chat/completions`, chatBody('x'));
      assertOpenAiError(res, 504);
    });
  });
});
