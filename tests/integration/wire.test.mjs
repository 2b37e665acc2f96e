// Wire-level hardening: framing, pooling and path faults a reverse proxy must
// never have. Raw sockets on both sides: the client writes exact bytes, and the
// upstream (support/raw-upstream.mjs) records every byte it receives and
// answers with exact bytes. An HTTP library on either side would re-frame the
// traffic and hide the faults.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { startRawUpstream, answer, parseRequests } from '../support/raw-upstream.mjs';
import { startProxy, writeConfig, proxyBinary, runCli } from '../support/proxy.mjs';
import { rawExchange as rawExchangeClosing, parseRawResponse, withTimeout } from '../support/http.mjs';
import { openFilesLimit } from '../support/procfs.mjs';

const KEY = 'wire-test-key-4d1e';

// One request on a fresh connection, our side left open: a client that half-closes
// is taken as gone (and its request abandoned), so only the proxy ends these.
const rawExchange = (port, text, options = {}) => rawExchangeClosing(port, text, { keepWriting: true, ...options });

/**
 * A raw client connection that keeps its socket open: `send` writes bytes,
 * `response()` resolves with the next complete answer (exact text included).
 */
function rawClient(port) {
  const socket = net.connect(port, '127.0.0.1');
  let buffered = '';
  let closed = false;
  const waiters = [];
  const wake = () => {
    for (const w of waiters.splice(0)) w();
  };
  socket.on('data', (d) => {
    buffered += d.toString('latin1');
    wake();
  });
  socket.on('close', () => {
    closed = true;
    wake();
  });
  socket.on('error', () => {});
  // Rejects when the connection fails (the proxy is gone), so no test waits forever.
  const connected = new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  connected.catch(() => {});
  return {
    socket,
    get closed() {
      return closed;
    },
    text: () => buffered,
    async send(text) {
      await connected;
      socket.write(Buffer.from(text, 'latin1'));
    },
    /** The next whole answer on this connection: {response, raw}; rejects if the connection closes first. */
    response(timeoutMs = 10_000) {
      return withTimeout(
        (async () => {
          for (;;) {
            const response = parseRawResponse(buffered);
            if (response) {
              const raw = consumed(buffered, response);
              buffered = buffered.slice(raw.length);
              return { ...response, raw };
            }
            if (closed) throw new Error(`connection closed without a whole answer; got ${JSON.stringify(buffered.slice(0, 300))}`);
            await new Promise((r) => waiters.push(r));
          }
        })(),
        timeoutMs,
        'raw client answer',
      );
    },
    /** Resolves once the proxy has closed the connection. */
    closedPromise(timeoutMs = 10_000) {
      return withTimeout(
        (async () => {
          while (!closed) await new Promise((r) => waiters.push(r));
        })(),
        timeoutMs,
        'proxy closing the connection',
      );
    },
    close() {
      socket.destroy();
    },
  };
}

/** The exact text of the first answer in `text` (head + framed body). */
function consumed(text, response) {
  const headEnd = text.indexOf('\r\n\r\n') + 4;
  if (response.headers['content-length'] !== undefined) return text.slice(0, headEnd + Number(response.headers['content-length']));
  if (/chunked/i.test(response.headers['transfer-encoding'] ?? '')) {
    const end = text.indexOf('\r\n0\r\n\r\n', headEnd - 2);
    return text.slice(0, end + 7);
  }
  return text;
}

const chat = (model = 'gpt-4o', extra = '') =>
  `{"model":"${model}","messages":[{"role":"user","content":"hi"}]${extra}}`;
const post = (path, body, headers = '') =>
  `POST ${path} HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n${headers}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

const chatAnswer = (id, model = 'mistral-large-latest') =>
  JSON.stringify({
    id,
    object: 'chat.completion',
    created: 1,
    model,
    choices: [{ index: 0, message: { role: 'assistant', content: `answer ${id}` }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
  });

/** Starts a raw upstream and a proxy in front of it (one worker thread: one shared pool). */
async function rawStack(onRequest, proxyOptions = {}) {
  const upstream = await startRawUpstream(onRequest);
  const proxy = await startProxy({
    upstreams: { mistral: { base_url: upstream.url, ...(proxyOptions.mistral ?? {}) } },
    env: { MISTRAL_API_KEY: KEY },
    server: { threads: 1, ...(proxyOptions.server ?? {}) },
    limits: proxyOptions.limits,
  });
  return {
    upstream,
    proxy,
    async stop() {
      await this.proxy.stop(); // the one running now: a test may have replaced it
      await upstream.close();
    },
  };
}

// ---------------------------------------------------------------------------
// 1. Chunked request bodies are terminated once.

describe('chunked request bodies', () => {
  let stack;
  before(async () => {
    stack = await rawStack((request, connection) => connection.write(answer(`{"got":${JSON.stringify(request.body)}}`)));
  });
  after(() => stack?.stop());

  test('a streamed chunked upload reaches the upstream with exactly one terminator', async () => {
    const client = rawClient(stack.proxy.port);
    await client.send(
      'POST /v1/files HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n' +
        '5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n',
    );
    const first = await client.response();
    assert.equal(first.status, 200, first.raw);
    assert.equal(first.body, '{"got":"hello world"}');
    // A second request on the same client connection reuses the upstream connection:
    // if the first body had a second terminator, it would sit between the two.
    await client.send('GET /v1/models/x HTTP/1.1\r\nHost: proxy\r\n\r\n');
    const second = await client.response();
    assert.equal(second.status, 200, second.raw);
    client.close();

    assert.equal(stack.upstream.accepts, 1, 'both requests on one upstream connection');
    const bytes = stack.upstream.connections[0].bytes();
    const parsed = parseRequests(bytes);
    assert.equal(parsed.error, undefined, `upstream framing error: ${parsed.error}; bytes: ${JSON.stringify(bytes)}`);
    assert.equal(parsed.requests.length, 2, `exactly two requests; bytes: ${JSON.stringify(bytes)}`);
    assert.equal(parsed.rest, '', 'nothing after the second request');
    const upload = parsed.requests[0].raw;
    assert.ok(upload.startsWith('POST /v1/files HTTP/1.1\r\n'), upload);
    assert.match(upload, /\r\nTransfer-Encoding: chunked\r\n/i);
    // The body bytes exactly: the client's two chunks, then one terminator.
    assert.ok(upload.endsWith('\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n'), `body bytes: ${JSON.stringify(upload.slice(upload.indexOf('\r\n\r\n')))}`);
    assert.equal(parsed.requests[1].raw.split('\r\n')[0], 'GET /v1/models/x HTTP/1.1');
  });
});

// ---------------------------------------------------------------------------
// 2. Pooled connections are reused only when clean; 1xx answers are read past.

describe('upstream connection reuse', () => {
  for (const [when, write] of [
    ['in the same write', (connection, own) => connection.write(own + answer('{"id":"intruder"}'))],
    ['a moment later', (connection, own) => {
      connection.write(own);
      setImmediate(() => connection.write(answer('{"id":"intruder"}')));
    }],
  ]) {
    test(`an upstream that writes an extra answer after each one (${when}): every client gets exactly its own`, async () => {
      const stack = await rawStack((request, connection) => write(connection, answer(`{"id":"${request.query.replace('id=', '')}"}`)));
      try {
        for (let i = 0; i < 8; i += 1) {
          const id = `req-${i}`;
          // Separate clients, one worker: they share the pool.
          const { response, text } = await rawExchange(stack.proxy.port, `GET /v1/files?id=${id} HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n`);
          assert.equal(response?.status, 200, text);
          assert.equal(response.body, `{"id":"${id}"}`, `client ${i} got ${JSON.stringify(text)}`);
          assert.ok(!text.includes('intruder'), `client ${i} got another answer's bytes: ${JSON.stringify(text)}`);
        }
        // Every upstream connection carried one request: none was reused with stray bytes in it.
        for (const connection of stack.upstream.connections) {
          const parsed = parseRequests(connection.bytes());
          assert.ok(parsed.requests.length <= 1, `a dirty connection was reused: ${JSON.stringify(connection.bytes())}`);
        }
      } finally {
        await stack.stop();
      }
    });
  }

  test('requests planned side by side on one worker each send their own rewritten body', async () => {
    // The rewritten body is built in the worker's scratch memory. Three clients
    // are planned one after the other while the first waits for its bucket (1
    // request a second): each upstream request must carry its own client's text.
    const stack = await rawStack((request, connection) => {
      const text = JSON.parse(request.body).messages.at(-1).content;
      connection.write(answer(chatAnswer(text)));
    }, { limits: { buckets: { mistral: { requests_per_second: 1 } }, max_queue_wait: '10s' } });
    try {
      const body = (text) => `{"model":"gpt-4o","user":"drop-me","messages":[{"role":"developer","content":"be brief"},{"role":"user","content":"${text}"}]}`;
      const warm = await rawExchange(stack.proxy.port, post('/v1/chat/completions', body('warm-up').replace('"role":"developer","content":"be brief"', '"role":"user","content":"warm-up"'), 'Connection: close\r\n'));
      assert.equal(warm.response?.status, 200, warm.text);
      const texts = ['client-a', 'client-b-with-a-longer-text', 'client-c'];
      const results = await Promise.all(texts.map((t) => rawExchange(stack.proxy.port, post('/v1/chat/completions', body(t), 'Connection: close\r\n'))));
      results.forEach((r, i) => {
        assert.equal(r.response?.status, 200, r.text);
        assert.equal(r.response.json.id, texts[i], `client ${i} got the answer to ${r.response.json.id}`);
      });
      const sent = stack.upstream.requests.slice(1).map((r) => JSON.parse(r.body));
      assert.deepEqual(sent.map((b) => b.messages[1].content).sort(), [...texts].sort());
      for (const b of sent) {
        assert.equal(b.model, 'mistral-large-latest');
        assert.equal(b.messages[0].role, 'system', 'the rules ran on each body');
      }
    } finally {
      await stack.stop();
    }
  });

  test('a late body byte past Content-Length is not handed to the next client', async () => {
    let n = 0;
    const stack = await rawStack((request, connection) => {
      n += 1;
      // Content-Length says 10, 11 bytes follow.
      connection.write(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{"n":"${String(n).padStart(2, '0')}"}X`);
    });
    try {
      const first = await rawExchange(stack.proxy.port, 'GET /v1/files HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n');
      assert.equal(first.response.body, '{"n":"01"}');
      const second = await rawExchange(stack.proxy.port, 'GET /v1/files HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n');
      assert.equal(second.response?.status, 200, second.text);
      assert.equal(second.response.body, '{"n":"02"}', second.text);
      assert.equal(stack.upstream.accepts, 2, 'the connection with a stray byte was not reused');
    } finally {
      await stack.stop();
    }
  });

  // While the upstream works, the proxy watches the client's socket (to end
  // the upstream request if the client hangs up). A client that pipelines its
  // next request meanwhile must lose none of its bytes: both are answered, in
  // order, and the upstream gets each body whole. Split at every offset of
  // the second request, so that the watch sees only part of it.
  test('a request pipelined while the upstream works is kept whole and answered after the first', async () => {
    let firstArrived = () => {};
    let releaseFirst = () => {};
    const stack = await rawStack((request, connection) => {
      const text = JSON.parse(request.body).messages.at(-1).content;
      if (!text.startsWith('first')) return connection.write(answer(chatAnswer(text)));
      releaseFirst = () => connection.write(answer(chatAnswer(text)));
      firstArrived();
    });
    try {
      const second = post('/v1/chat/completions', chat('gpt-4o').replace('"hi"', '"second"'));
      for (const split of [1, 20, second.indexOf('\r\n\r\n') + 2, second.length - 1, second.length]) {
        const client = rawClient(stack.proxy.port);
        client.socket.setNoDelay(true);
        const before = stack.upstream.requests.length;
        const arrived = new Promise((resolve) => (firstArrived = resolve));
        await client.send(post('/v1/chat/completions', chat('gpt-4o').replace('"hi"', `"first-${split}"`)));
        await arrived;
        // The first waits on the upstream: the next request arrives meanwhile, in two writes.
        await client.send(second.slice(0, split));
        if (split < second.length) await client.send(second.slice(split));
        releaseFirst();
        const a = await client.response();
        const b = await client.response();
        assert.equal(a.status, 200, a.raw);
        assert.equal(JSON.parse(a.body).id, `first-${split}`, a.raw);
        assert.equal(b.status, 200, b.raw);
        assert.equal(JSON.parse(b.body).id, 'second', b.raw);
        const sent = stack.upstream.requests.slice(before).map((r) => JSON.parse(r.body).messages.at(-1).content);
        assert.deepEqual(sent, [`first-${split}`, 'second']);
        client.close();
      }
    } finally {
      await stack.stop();
    }
  });

  test('100 Continue and 103 Early Hints before the answer: the client gets the final answer only', async () => {
    const stack = await rawStack((request, connection) => {
      const id = JSON.parse(request.body).messages[0].content;
      connection.write('HTTP/1.1 100 Continue\r\n\r\n');
      connection.write('HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n' + answer(chatAnswer(id)));
    });
    try {
      for (const id of ['first', 'second', 'third']) {
        const body = `{"model":"gpt-4o","messages":[{"role":"user","content":"${id}"}]}`;
        const { response, text } = await rawExchange(stack.proxy.port, post('/v1/chat/completions', body, 'Connection: close\r\n'));
        assert.ok(text.startsWith('HTTP/1.1 200 OK\r\n'), `the client's first bytes are the final answer: ${JSON.stringify(text.slice(0, 80))}`);
        assert.equal((text.match(/HTTP\/1\.1 /g) ?? []).length, 1, `exactly one status line: ${JSON.stringify(text)}`);
        assert.equal(response.json.id, id, text);
      }
      assert.equal(stack.upstream.accepts, 1, 'the connection stayed usable after interim answers');
      const parsed = parseRequests(stack.upstream.connections[0].bytes());
      assert.equal(parsed.requests.length, 3);
    } finally {
      await stack.stop();
    }
  });

  test('101 from an upstream that was never asked to switch protocols: 502, connection not reused', async () => {
    const stack = await rawStack((request, connection) => {
      connection.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    });
    try {
      const { response, text } = await rawExchange(stack.proxy.port, 'GET /v1/files HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n');
      assert.equal(response?.status, 502, text);
      assert.equal(typeof response.json?.error?.message, 'string');
    } finally {
      await stack.stop();
    }
  });

  test('streams give their upstream connection back when they end cleanly: N streams, one upstream connection', async () => {
    const events = (id) =>
      [
        { id, object: 'chat.completion.chunk', created: 1, model: 'mistral-small-latest', choices: [{ index: 0, delta: { role: 'assistant', content: 'a' }, finish_reason: null }] },
        { id, object: 'chat.completion.chunk', created: 1, model: 'mistral-small-latest', choices: [{ index: 0, delta: { content: 'b' }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } },
      ]
        .map((e) => `data: ${JSON.stringify(e)}\n\n`)
        .join('') + 'data: [DONE]\n\n';
    const chunked = (text) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;
    const stack = await rawStack((request, connection) => {
      const id = JSON.parse(request.body).messages[0].content;
      connection.write('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n' + chunked(events(id)));
      // The terminator a moment later, as a real server's last write.
      setImmediate(() => connection.write('0\r\n\r\n'));
    });
    try {
      const client = rawClient(stack.proxy.port);
      for (let i = 0; i < 5; i += 1) {
        await client.send(post('/v1/chat/completions', `{"model":"mistral-small-latest","stream":true,"messages":[{"role":"user","content":"s${i}"}]}`));
        const answer = await client.response();
        assert.equal(answer.status, 200, answer.raw);
        assert.ok(answer.body.includes(`"id":"s${i}"`), answer.body);
        assert.ok(answer.body.trimEnd().endsWith('data: [DONE]'), answer.body);
      }
      client.close();
      assert.equal(stack.upstream.accepts, 1, '5 sequential streams on one client connection use 1 upstream connection');
    } finally {
      await stack.stop();
    }
  });

  // How a relayed body ends when the upstream closes: a chunked stream cut
  // before its last chunk is an error, a body that runs to the close is whole.
  const streamEvent = (content, finish = null) =>
    `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'mistral-small-latest', choices: [{ index: 0, delta: { content }, finish_reason: finish }] })}\n\n`;
  const streamRequest = post('/v1/chat/completions', '{"model":"mistral-small-latest","stream":true,"messages":[{"role":"user","content":"hi"}]}');
  // One stream on a new client connection: its answer, with both events relayed.
  const streamOnce = async (stack) => {
    const client = rawClient(stack.proxy.port);
    await client.send(streamRequest);
    const answer = await client.response();
    client.close();
    assert.equal(answer.status, 200, answer.raw);
    assert.ok(answer.body.includes('"content":"one"') && answer.body.includes('"content":"two"'), answer.body);
    return answer;
  };

  test('a chunked stream the upstream closes before its last chunk: the events, an error event, a clean end, a new connection next', async () => {
    const stack = await rawStack((request, connection) => {
      const text = streamEvent('one') + streamEvent('two');
      connection.write(`HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`);
      setImmediate(() => connection.end());  // a FIN, no 0-size chunk
    });
    try {
      for (let i = 0; i < 2; i += 1) {
        const answer = await streamOnce(stack);
        assert.match(answer.body, /data: \{"error":/, `an error event ends the cut stream: ${answer.body}`);
        assert.ok(!answer.body.includes('[DONE]'), answer.body);
      }
      assert.equal(stack.upstream.accepts, 2, 'a cut connection is not pooled');
    } finally {
      await stack.stop();
    }
  });

  test('a stream whose body runs to the upstream closing (no length, not chunked, no [DONE]): every event, [DONE], no error', async () => {
    const stack = await rawStack((request, connection) => {
      connection.write('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n' + streamEvent('one'));
      setImmediate(() => {
        connection.write(streamEvent('two', 'stop'));  // no [DONE]: the close ends it
        setImmediate(() => connection.end());
      });
    });
    try {
      const answer = await streamOnce(stack);
      assert.ok(answer.body.trimEnd().endsWith('data: [DONE]'), answer.body);
      assert.ok(!answer.body.includes('"error"'), answer.body);
    } finally {
      await stack.stop();
    }
  });
});

// ---------------------------------------------------------------------------
// When a stream's head reaches the client. The proxy writes it with the first
// event when one read brought both (one write, the client woken once: not
// observable from the client's side, whose reads may merge two writes), and
// alone, at once, when the first event is not there yet (it may take seconds).

describe('stream heads', () => {
  const head = 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n';
  const event = (content, finish = null) =>
    `data: ${JSON.stringify({ id: 'h1', object: 'chat.completion.chunk', created: 1, model: 'mistral-small-latest', choices: [{ index: 0, delta: { content }, finish_reason: finish }] })}\n\n`;
  const chunk = (text) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;
  const request = post('/v1/chat/completions', '{"model":"mistral-small-latest","stream":true,"messages":[{"role":"user","content":"hi"}]}');
  // The client's bytes as they arrive, one entry per read.
  const reads = (client) => {
    const seen = [];
    const waiters = [];
    client.socket.on('data', (d) => {
      seen.push(d.toString('latin1'));
      for (const w of waiters.splice(0)) w();
    });
    return {
      seen,
      async until(predicate, what) {
        await withTimeout(
          (async () => {
            while (!predicate(seen.join(''))) await new Promise((r) => waiters.push(r));
          })(),
          5000,
          what,
        );
      },
    };
  };

  test('a head sent alone by the upstream reaches the client before the first event exists', async () => {
    let upstreamSide;
    const stack = await rawStack((_request, connection) => {
      upstreamSide = connection;
      connection.write(head);  // and nothing more until the client has the head
    });
    try {
      const client = rawClient(stack.proxy.port);
      const got = reads(client);
      await client.send(request);
      await got.until((text) => text.includes('\r\n\r\n'), 'the head before any event');
      assert.match(got.seen.join(''), /^HTTP\/1\.1 200 OK\r\n[\s\S]*text\/event-stream[\s\S]*\r\n\r\n$/);
      upstreamSide.write(chunk(event('one', 'stop') + 'data: [DONE]\n\n') + '0\r\n\r\n');
      const answer = await client.response();
      client.close();
      assert.equal(answer.status, 200, answer.raw);
      assert.ok(answer.body.includes('"content":"one"') && answer.body.trimEnd().endsWith('data: [DONE]'), answer.body);
    } finally {
      await stack.stop();
    }
  });
});

// ---------------------------------------------------------------------------
// 3, 4. One spelling per endpoint; dot segments and encoded separators refused.

describe('path policy', () => {
  let stack;
  before(async () => {
    stack = await rawStack((request, connection) => connection.write(answer(request.path.includes('chat') ? chatAnswer('x') : '{"ok":true}')), {
      limits: { buckets: { mistral: { requests_per_second: 1 } }, max_queue_wait: '0s' },
    });
  });
  after(() => stack?.stop());

  // Each case in its own second of the bucket: the limiter is part of what is tested.
  const fresh = async () => {
    await stack.proxy.stop();
    stack.proxy = await startProxy({
      upstreams: { mistral: { base_url: stack.upstream.url } },
      env: { MISTRAL_API_KEY: KEY },
      server: { threads: 1 },
      limits: { buckets: { mistral: { requests_per_second: 1 } }, max_queue_wait: '0s' },
    });
    stack.upstream.requests.length = 0;
  };

  for (const spelling of ['/v1/chat/completions/', '/v1//chat/completions', '/v1/chat//completions///', '/v1/chat/%63ompletions', '/v1/%63hat/completions']) {
    test(`${spelling}: normalized, routed and limited like /v1/chat/completions`, async () => {
      await fresh();
      const first = await rawExchange(stack.proxy.port, post(spelling, chat('gpt-4o', ',"user":"u1"'), 'Connection: close\r\n'));
      assert.equal(first.response?.status, 200, first.text);
      assert.match(first.response.headers['x-mistral-proxy-rules'], /model_alias/);
      const sent = stack.upstream.requests.at(-1);
      assert.equal(sent.path, '/v1/chat/completions', 'the canonical path goes upstream');
      assert.equal(JSON.parse(sent.body).model, 'mistral-large-latest');
      assert.equal(JSON.parse(sent.body).user, undefined, 'params fired');
      // The same second: the request bucket (1/s) is empty, and max_queue_wait 0 answers at once.
      const second = await rawExchange(stack.proxy.port, post(spelling, chat(), 'Connection: close\r\n'));
      assert.equal(second.response?.status, 429, second.text);
      assert.equal(second.response.json.error.code, 'requests_per_second');
      assert.equal(stack.upstream.requests.length, 1, 'the limited request never went upstream');
    });
  }

  test('passthrough requests take their request from the bucket too', async () => {
    await fresh();
    const first = await rawExchange(stack.proxy.port, 'GET /v1/files HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n');
    assert.equal(first.response?.status, 200, first.text);
    const second = await rawExchange(stack.proxy.port, 'GET /v1/files/abc/ HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n');
    assert.equal(second.response?.status, 429, second.text);
    assert.equal(second.response.json.error.code, 'requests_per_second');
    assert.equal(stack.upstream.requests.length, 1);
  });

  const refused = [
    '/v1/%2e%2e/admin',
    '/v1/%2E%2E/admin',
    '/v1/files/%2e/x',
    '/v1/../admin',
    '/v1/./models',
    '/v1/files/..',
    '/v1/files%2F..%2Fadmin',
    '/v1/files/a%2fb',
    '/v1/files/a%5Cb',
    '/v1/files/a%00b',
    '/v1/files/a\\b',
    '/v1/files/%zz',
    '/v1/files/%4',
  ];
  for (const path of refused) {
    test(`${path}: 400, nothing sent upstream`, async () => {
      const before = stack.upstream.requests.length;
      const { response, text } = await rawExchange(stack.proxy.port, `GET ${path} HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n`);
      assert.equal(response?.status, 400, text);
      assert.equal(response.json.error.code, 'invalid_path', text);
      assert.equal(stack.upstream.requests.length, before);
    });
  }
});

// ---------------------------------------------------------------------------
// 8. Transfer-Encoding other than "chunked", and malformed chunked framing.

describe('request framing', () => {
  let stack;
  before(async () => {
    stack = await rawStack((request, connection) => connection.write(answer(request.path.includes('chat') ? chatAnswer('x') : '{"ok":true}')));
  });
  after(() => stack?.stop());

  // A body that is itself a request: if the proxy took the first request as
  // bodiless, it would read this one next and send it with its own key.
  const smuggled = 'GET /v1/files?smuggled=1 HTTP/1.1\r\nHost: proxy\r\n\r\n';
  for (const encoding of ['xchunked', 'chunked, identity', 'identity', 'gzip, chunked', 'chunked\r\nTransfer-Encoding: chunked']) {
    for (const path of ['/v1/chat/completions', '/v1/files']) {
      test(`Transfer-Encoding: ${JSON.stringify(encoding)} on ${path}: 400, closed, nothing upstream`, async () => {
        const before = stack.upstream.requests.length;
        const { response, text, closed } = await rawExchange(
          stack.proxy.port,
          `POST ${path} HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\nTransfer-Encoding: ${encoding}\r\n\r\n${smuggled}`,
          { keepWriting: true },
        );
        assert.ok(closed, 'the proxy closed the connection');
        assert.equal(response?.status, 400, text);
        assert.equal(response.headers.connection, 'close');
        assert.equal(response.json.error.code, 'malformed_request');
        assert.equal((text.match(/HTTP\/1\.1 /g) ?? []).length, 1, `one answer only: ${JSON.stringify(text)}`);
        assert.equal(stack.upstream.requests.length, before, 'nothing reached the upstream');
      });
    }
  }

  test('Transfer-Encoding with Content-Length: 400, closed', async () => {
    const before = stack.upstream.requests.length;
    const { response, text } = await rawExchange(
      stack.proxy.port,
      `POST /v1/files HTTP/1.1\r\nHost: proxy\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
      { keepWriting: true },
    );
    assert.equal(response?.status, 400, text);
    assert.equal(response.headers.connection, 'close');
    assert.equal(stack.upstream.requests.length, before);
  });

  for (const [label, chunks] of [
    ['a chunk size "zz"', 'zz\r\nhello\r\n0\r\n\r\n'],
    ['an overflowing chunk size', 'fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n'],
    ['a chunk without its CRLF', '5\r\nhelloXX0\r\n\r\n'],
  ]) {
    for (const path of ['/v1/chat/completions', '/v1/files']) {
      test(`${label} on ${path}: 400 with Connection: close`, async () => {
        const before = stack.upstream.requests.length;
        const { response, text } = await rawExchange(
          stack.proxy.port,
          `POST ${path} HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}`,
          { keepWriting: true },
        );
        assert.equal(response?.status, 400, text);
        assert.equal(response.headers.connection, 'close');
        assert.match(response.json.error.message, /malformed HTTP request body/);
        // Nothing complete reached the upstream; a started upload was abandoned with its connection.
        assert.equal(stack.upstream.requests.length, before);
      });
    }
  }
});

// ---------------------------------------------------------------------------
// 5. Keys are header values.

describe('API keys from the environment', () => {
  for (const [label, value] of [
    ['CR LF', 'abc\r\nX-Injected: 1'],
    ['LF', 'abc\nX-Injected: 1'],
    ['a space inside', 'abc def'],
    ['a non-ASCII byte', 'abcé'],
    ['a NUL-free control byte', 'abc\u0007def'],
  ]) {
    test(`a key with ${label}: serve and check refuse to start, naming the variable, never the value`, async () => {
      const { dir, file } = await writeConfig({ upstreams: { mistral: { base_url: 'http://127.0.0.1:9/v1' } } });
      try {
        for (const command of ['check', 'serve']) {
          const result = await runCli([command, '--config', file], { env: { MISTRAL_API_KEY: value } });
          assert.equal(result.code, 1, `${command}: exit ${result.code}; ${result.stderr}`);
          assert.match(result.stderr, /MISTRAL_API_KEY/);
          assert.ok(!result.stderr.includes('X-Injected') && !result.stderr.includes('abc'), `${command} printed the value: ${result.stderr}`);
        }
      } finally {
        const { rm } = await import('node:fs/promises');
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});

// ---------------------------------------------------------------------------
// 7. Connection caps and descriptors.

describe('connection caps', () => {
  test('past server.max_connections a new connection gets a 503 in OpenAI shape; room again once one closes', async () => {
    const stack = await rawStack(() => {}, { server: { max_connections: 3 } });
    try {
      const held = [];
      for (let i = 0; i < 3; i += 1) {
        const client = rawClient(stack.proxy.port);
        await client.send('GET /healthz HTTP/1.1\r\nHost: proxy\r\n\r\n');
        assert.equal((await client.response()).status, 200); // a session serves it: it counts
        held.push(client);
      }
      const over = await rawExchange(stack.proxy.port, 'GET /healthz HTTP/1.1\r\nHost: proxy\r\n\r\n');
      assert.match(
        over.text,
        /^HTTP\/1\.1 503 Service Unavailable\r\nContent-Type: application\/json\r\nContent-Length: \d+\r\nRetry-After: 1\r\nx-request-id: [0-9a-f]{32}\r\nx-mistral-proxy-rules: \r\nConnection: close\r\n\r\n\{"error":\{"message":"the proxy has 3 client connections open, the most it takes \(server\.max_connections\); [^"]*","type":"[a-z_]+","param":null,"code":"too_many_connections"\}\}$/,
      );
      held.pop().close();
      // The closed one's session ends when the proxy reads its EOF: a new one is served then.
      let served = null;
      for (let attempt = 0; attempt < 200 && !served; attempt += 1) {
        const next = await rawExchange(stack.proxy.port, 'GET /healthz HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n');
        if (next.response?.status === 200) served = next;
      }
      assert.ok(served, 'a connection is served again once one of the three closed');
      for (const client of held) client.close();
    } finally {
      await stack.stop();
    }
  });

  test('the soft descriptor limit is raised to the hard one at start', async () => {
    const { dir, file } = await writeConfig({});
    const child = spawn('prlimit', ['--nofile=1024:8192', proxyBinary, 'serve', '--config', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      let log = '';
      await withTimeout(
        new Promise((resolve, reject) => {
          child.stderr.on('data', (d) => {
            log += d;
            if (/listening on/.test(log)) resolve();
          });
          child.on('exit', () => reject(new Error(`exited: ${log}`)));
        }),
        10_000,
        'proxy start',
      );
      assert.equal(openFilesLimit(child.pid), 8192);
    } finally {
      child.kill('SIGKILL');
      const { rm } = await import('node:fs/promises');
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('out of descriptors: connections are refused, the proxy keeps serving, and SIGTERM still drains and exits', async () => {
    const upstream = await startRawUpstream((request, connection) => connection.write(answer('{"ok":true}')));
    const { dir, file } = await writeConfig({
      upstreams: { mistral: { base_url: upstream.url } },
      server: { max_connections: 1000, drain_timeout: '1s', threads: 1 },
    });
    // 48 descriptors: after the process's own, room for a handful of connections;
    // 1000 configured is lowered with a warning.
    const child = spawn('prlimit', ['--nofile=48:48', proxyBinary, 'serve', '--config', file, '--listen', '127.0.0.1:0'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { PATH: process.env.PATH, MISTRAL_API_KEY: KEY },
    });
    const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
    const held = [];
    try {
      let log = '';
      const port = await withTimeout(
        new Promise((resolve, reject) => {
          child.stderr.on('data', (d) => {
            log += d;
            const m = /listening on \S+:(\d+)/.exec(log);
            if (m) resolve(Number(m[1]));
          });
          exited.then(() => reject(new Error(`exited: ${log}`)));
        }),
        10_000,
        'proxy start',
      );
      assert.match(log, /server\.max_connections 1000 lowered to \d+/);
      // Far more idle connections than descriptors: each is answered (503) or held, none hangs the proxy.
      const answered = [];
      for (let i = 0; i < 80; i += 1) {
        const client = rawClient(port);
        held.push(client);
        await client.send('GET /healthz HTTP/1.1\r\nHost: proxy\r\n\r\n');
        answered.push(client.response(5000).then((r) => r.status, () => 'none'));
      }
      const statuses = await Promise.all(answered);
      assert.ok(statuses.includes(503), `some connections were refused: ${statuses.join(',')}`);
      assert.ok(statuses.includes(200), `some were served: ${statuses.join(',')}`);
      assert.ok(!statuses.includes('none'), `every connection got an answer: ${statuses.join(',')}`);
      child.kill('SIGTERM');
      // drain_timeout 1s: the held keep-alive connections are idle, so the drain closes them at once.
      const result = await withTimeout(exited, 5000, 'exit after SIGTERM');
      assert.equal(result.code, 0, log);
      assert.ok((log.match(/accept failed/g) ?? []).length < 20, `no accept loop spinning: ${log.slice(-2000)}`);
    } finally {
      for (const c of held) c.close();
      child.kill('SIGKILL');
      await upstream.close();
      const { rm } = await import('node:fs/promises');
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------
// 9. Writes the client's socket cannot take at once. The proxy writes what the
// socket takes without an asynchronous operation and finishes the rest
// asynchronously: both parts, in order, nothing twice.

// Byte i of a test body: varies with the offset inside each 64 KB block and
// from block to block, so a piece written twice, dropped or out of order shows.
const patternByte = (i) => ((i >>> 16) * 7 + (i & 0xffff)) & 0xff;
function patternChunk(from, length) {
  const chunk = Buffer.allocUnsafe(length);
  for (let j = 0; j < length; j += 1) chunk[j] = patternByte(from + j);
  return chunk;
}

// Writes `total` pattern bytes (from `offset` in the pattern) as an answer
// body, as fast as the socket takes them; `onBlocked` once it stops taking.
function pumpPattern(socket, total, offset, onBlocked) {
  let sent = 0;
  const pump = () => {
    while (sent < total) {
      const length = Math.min(256 * 1024, total - sent);
      const more = socket.write(patternChunk(offset + sent, length));
      sent += length;
      if (!more) {
        // The proxy stopped reading: it waits for room on the client's side.
        onBlocked();
        socket.once('drain', pump);
        return;
      }
    }
  };
  pump();
}

// Resumes a paused client and reads its answer to the end: the head, the body
// bytes counted, and the first that is not the pattern from `offset`.
function readPatterned(client, offset, what) {
  let head = Buffer.alloc(0);
  let position = -1; // body bytes checked so far, once the head is read
  let mismatch = null;
  const ended = new Promise((resolve, reject) => {
    client.on('end', resolve);
    client.on('error', reject);
  });
  client.on('data', (data) => {
    let body = data;
    if (position < 0) {
      head = Buffer.concat([head, data]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      body = head.subarray(end + 4);
      head = head.subarray(0, end);
      position = 0;
    }
    for (let j = 0; j < body.length && mismatch === null; j += 1) {
      if (body[j] !== patternByte(offset + position + j)) mismatch = position + j;
    }
    position += body.length;
  });
  client.resume();
  return withTimeout(ended, 60_000, what).then(() => ({ head: head.toString('latin1'), position, mismatch }));
}

describe('answers larger than the client takes at once', () => {
  test('a relayed body the client reads late arrives whole and in order', async () => {
    // Bigger than every buffer between the upstream and the client can hold
    // (socket buffers grow to 32 MB for reading, 4 MB for writing).
    const total = 96 * 1024 * 1024;
    let reportBlocked;
    const upstreamBlocked = new Promise((resolve) => {
      reportBlocked = resolve;
    });
    const stack = await rawStack((request, connection) => {
      const { socket } = connection;
      socket.write(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${total}\r\n\r\n`);
      pumpPattern(socket, total, 0, reportBlocked);
    });
    try {
      const client = net.connect(stack.proxy.port, '127.0.0.1');
      client.pause(); // nothing read until the proxy is backed up all the way to the upstream
      await new Promise((resolve, reject) => {
        client.once('connect', resolve);
        client.once('error', reject);
      });
      client.write('GET /v1/libraries/big/content HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n');
      await withTimeout(upstreamBlocked, 20_000, 'the upstream meets backpressure');

      const { head, position, mismatch } = await readPatterned(client, 0, 'the whole body');
      assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(head, new RegExp(`\r\ncontent-length: ${total}(\r\n|$)`, 'i'));
      assert.equal(mismatch, null, `body byte ${mismatch} is not the upstream's`);
      assert.equal(position, total, 'the body is whole, nothing more');
    } finally {
      await stack.stop();
    }
  });

  test('two relayed bodies their clients read late, at once on one worker, each arrive whole', async () => {
    // The sessions of a worker relay through one shared buffer; what a slow
    // client has yet to take is copied out of it before the session waits.
    // Two such waits at once must not hand one client the other's bytes.
    const total = 24 * 1024 * 1024;
    const offsets = { a: 0, b: 0x5a5a5 };
    const blocked = { a: null, b: null };
    const upstreamBlocked = Object.fromEntries(
      Object.keys(offsets).map((name) => [name, new Promise((resolve) => { blocked[name] = resolve; })]),
    );
    const stack = await rawStack((request, connection) => {
      const name = request.path.includes('/a/') ? 'a' : 'b';
      const { socket } = connection;
      socket.write(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${total}\r\n\r\n`);
      pumpPattern(socket, total, offsets[name], blocked[name]);
    });
    try {
      const clients = {};
      for (const name of Object.keys(offsets)) {
        const client = net.connect(stack.proxy.port, '127.0.0.1');
        client.pause();
        await new Promise((resolve, reject) => {
          client.once('connect', resolve);
          client.once('error', reject);
        });
        client.write(`GET /v1/libraries/${name}/content HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n`);
        clients[name] = client;
      }
      await withTimeout(Promise.all(Object.values(upstreamBlocked)), 20_000, 'both upstreams meet backpressure');
      const results = await Promise.all(Object.entries(clients).map(async ([name, client]) =>
        ({ name, ...(await readPatterned(client, offsets[name], `the whole body of ${name}`)) })));
      for (const { name, position, mismatch } of results) {
        assert.equal(mismatch, null, `${name}: body byte ${mismatch} is not its upstream's`);
        assert.equal(position, total, `${name}: the body is whole, nothing more`);
      }
    } finally {
      await stack.stop();
    }
  });

  test('a request body larger than the upstream socket takes at once reaches the upstream whole', async () => {
    // 24 MB: more than a send buffer (4 MB at most) and a new connection's
    // receive window together, so most of the rewritten body goes asynchronously.
    const content = patternChunk(0, 24 * 1024 * 1024).toString('base64').slice(0, 24 * 1024 * 1024);
    const stack = await rawStack((request, connection) => {
      const sent = JSON.parse(request.body).messages[0].content;
      connection.write(answer(JSON.stringify({
        id: 'cmpl-echo', object: 'chat.completion', created: 1, model: 'mistral-large-latest',
        choices: [{ index: 0, message: { role: 'assistant', content: sent === content ? 'same' : `differs (${sent.length})` }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      })));
    });
    try {
      // "user" is dropped by the rules: the body sent is the proxy's rewrite, not the client's bytes.
      const body = `{"model":"gpt-4o","user":"drop-me","messages":[{"role":"user","content":"${content}"}]}`;
      const { response, text } = await rawExchange(
        stack.proxy.port,
        `POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
        { timeoutMs: 60_000 },
      );
      assert.equal(response?.status, 200, text.slice(0, 300));
      assert.equal(response.json.choices[0].message.content, 'same');
      const request = stack.upstream.requests[0];
      assert.equal(Number(request.headers['content-length']), Buffer.byteLength(request.body, 'latin1'));
      assert.ok(!request.body.includes('drop-me'), 'the rewritten body went upstream');
    } finally {
      await stack.stop();
    }
  });

  test('a rewritten answer larger than the socket takes at once arrives whole', async () => {
    // 48 MB of content: more than a send buffer (4 MB at most) and a new
    // connection's receive window together, so most of it goes asynchronously.
    const content = patternChunk(0, 48 * 1024 * 1024).toString('base64').slice(0, 48 * 1024 * 1024);
    const stack = await rawStack((request, connection) => {
      connection.write(answer(JSON.stringify({
        id: 'cmpl-big', object: 'chat.completion', created: 1, model: 'mistral-large-latest',
        choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      })));
    });
    try {
      const body = '{"model":"gpt-4o","messages":[{"role":"user","content":"all of it"}]}';
      const { response, text } = await rawExchange(
        stack.proxy.port,
        `POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
        { timeoutMs: 60_000 },
      );
      assert.equal(response?.status, 200, text.slice(0, 300));
      assert.equal(response.json.choices[0].message.content.length, content.length);
      assert.ok(response.json.choices[0].message.content === content, 'the content arrives as the upstream sent it');
    } finally {
      await stack.stop();
    }
  });
});
