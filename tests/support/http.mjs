// HTTP helpers for the tests: plain requests, SSE streams read event by event,
// raw sockets for malformed HTTP, and bounded waits (failure guards, never sleeps).
//
// Every answer `request` and `openStream` get from a running proxy (startProxy
// registers it) is checked against OpenAI's own schema of that endpoint
// (openai-validate.mjs): a 2xx body whole, an SSE answer event by event, a 4xx/5xx
// body against ErrorResponse. A bad answer rejects the call (`request`,
// `waitForEvents`, `done`) with an AssertionError naming the fields. Paths that are
// not OpenAI endpoints (passthrough, /healthz, /metrics) are not checked;
// `{ openaiShape: false }` turns the check off for one call whose answer is
// deliberately not OpenAI's (say so next to it).
import http from 'node:http';
import net from 'node:net';
import assert from 'node:assert/strict';
import { checkProxyAnswer, isProxyUrl, openaiSchemaFor, validateOpenAISse } from './openai-validate.mjs';

function shapeError(errors, text) {
  return new assert.AssertionError({
    message: `the proxy's answer is not what OpenAI's clients read (tests/support/openai-schemas.json):\n  ${errors.join('\n  ')}\nbody: ${text.length > 2000 ? `${text.slice(0, 2000)}...` : text}`,
  });
}

/** Rejects with `label` if `promise` does not settle within `ms` (a failure guard, not a delay). */
export function withTimeout(promise, ms, label) {
  let timer;
  const guard = new Promise((_, rej) => {
    timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${label}`)), ms);
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

/**
 * One HTTP request; resolves with {status, headers, text, json, socket}.
 * body: string | Buffer | object (sent as JSON).
 */
export function request(url, { method = 'GET', headers = {}, body, agent, timeoutMs = 15_000, openaiShape = true } = {}) {
  let payload = body;
  const h = { ...headers };
  if (body !== undefined && !(typeof body === 'string') && !Buffer.isBuffer(body)) {
    payload = JSON.stringify(body);
    h['content-type'] ??= 'application/json';
  }
  if (payload !== undefined) h['content-length'] ??= String(Buffer.byteLength(payload));
  const result = new Promise((res, rej) => {
    const req = http.request(url, { method, headers: h, agent: agent ?? false }, (response) => {
      const parts = [];
      response.on('data', (c) => parts.push(c));
      response.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        if (openaiShape && isProxyUrl(String(url))) {
          const errors = checkProxyAnswer({ method, url: String(url), status: response.statusCode, contentType: response.headers['content-type'], text, requestBody: payload });
          if (errors) return rej(shapeError(errors, text));
        }
        res({ status: response.statusCode, headers: response.headers, text, bytes: Buffer.concat(parts), json, socket: req.socket, reusedSocket: req.reusedSocket });
      });
      response.on('error', rej);
    });
    req.on('error', rej);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
  return withTimeout(result, timeoutMs, `${method} ${url}`);
}

export const postJson = (url, body, headers = {}, extra = {}) =>
  request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body), ...extra });

/** Splits SSE text into events; each event is {data, raw} (data lines joined with \n). */
export function parseSse(text) {
  const events = [];
  for (const block of text.replace(/\r\n/g, '\n').split('\n\n')) {
    if (block.trim() === '') continue;
    const data = block
      .split('\n')
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).replace(/^ /, ''))
      .join('\n');
    events.push({ data, raw: block });
  }
  return events;
}

/**
 * Opens a streaming POST and reads Server-Sent Events as they arrive.
 *   const s = await openStream(url, body, headers);
 *   s.status, s.headers
 *   await s.waitForEvents(n)   resolves once n events arrived
 *   await s.done               resolves {events, ended: true} when the response ends cleanly,
 *                              {events, ended: false, error} when it is cut
 *   s.destroy()                drops the client connection
 */
export function openStream(url, body, headers = {}, { agent, openaiShape = true } = {}) {
  const payload = typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolveOpen, rejectOpen) => {
    const req = http.request(url, {
      method: 'POST',
      agent: agent ?? false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), accept: 'text/event-stream', ...headers },
    });
    req.on('error', rejectOpen);
    req.on('response', (response) => {
      const events = [];
      const waiters = [];
      // OpenAI's schema of each event (2xx SSE), checked as it arrives; other answers when they end.
      const checking = openaiShape && isProxyUrl(String(url));
      const isSse = /^text\/event-stream/i.test(response.headers['content-type'] ?? '');
      const ok = response.statusCode >= 200 && response.statusCode < 300;
      const eventSchema = checking && isSse && ok ? openaiSchemaFor('POST', String(url), body)?.sse : undefined;
      let shapeFailure = null;
      const checkEvent = (event) => {
        if (!eventSchema || shapeFailure || !/^data:/m.test(event.raw)) return; // comments and data-less events carry no JSON
        const errors = validateOpenAISse(eventSchema, [event.data]);
        if (errors) shapeFailure = shapeError(errors, event.data);
      };
      let buffer = '';
      let rawText = '';
      const notify = () => {
        for (let i = waiters.length - 1; i >= 0; i--) {
          if (shapeFailure) {
            waiters[i].reject(shapeFailure);
            waiters.splice(i, 1);
          } else if (events.length >= waiters[i].n) {
            waiters[i].resolve(events.slice());
            waiters.splice(i, 1);
          }
        }
      };
      response.setEncoding('utf8');
      response.on('data', (chunk) => {
        rawText += chunk;
        buffer += chunk.replace(/\r\n/g, '\n');
        let idx;
        while ((idx = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, idx);
          buffer = buffer.slice(idx + 2);
          const parsed = parseSse(`${block}\n\n`);
          for (const event of parsed) {
            checkEvent(event);
            events.push({ ...event, at: Date.now() });
          }
        }
        notify();
      });
      const done = new Promise((res, rej) => {
        let settled = false;
        const finish = (value) => {
          if (settled) return;
          settled = true;
          if (checking && !eventSchema && !shapeFailure && value.ended) {
            // Not an OpenAI stream: an error (or a JSON answer) as a whole.
            const errors = checkProxyAnswer({ method: 'POST', url: String(url), status: response.statusCode, contentType: response.headers['content-type'], text: rawText, requestBody: payload });
            if (errors) shapeFailure = shapeError(errors, rawText);
          }
          for (const w of waiters) w.reject(shapeFailure ?? new Error(`stream ended after ${events.length} events, wanted ${w.n}`));
          waiters.length = 0;
          if (shapeFailure) rej(shapeFailure);
          else res({ events, rawText, leftover: buffer, ...value });
        };
        response.on('end', () => finish({ ended: true }));
        response.on('aborted', () => finish({ ended: false, error: new Error('aborted') }));
        response.on('error', (error) => finish({ ended: false, error }));
        response.on('close', () => finish({ ended: response.complete, error: response.complete ? undefined : new Error('closed before complete') }));
      });
      // A test awaits `done` or `waitForEvents`, which both carry a shape failure; no unhandled twin.
      done.catch(() => {});
      resolveOpen({
        status: response.statusCode,
        headers: response.headers,
        events,
        done,
        waitForEvents(n) {
          if (shapeFailure) return Promise.reject(shapeFailure);
          if (events.length >= n) return Promise.resolve(events.slice());
          return new Promise((res, rej) => waiters.push({ n, resolve: res, reject: rej }));
        },
        destroy() {
          req.destroy();
          response.destroy();
        },
      });
    });
    req.end(payload);
  });
}

/** Text of the chat deltas of an SSE event list (ignores [DONE] and errors). */
export function deltaText(events) {
  let text = '';
  for (const e of events) {
    if (e.data === '[DONE]') continue;
    let json;
    try {
      json = JSON.parse(e.data);
    } catch {
      continue;
    }
    for (const choice of json.choices ?? []) text += choice.delta?.content ?? choice.text ?? '';
  }
  return text;
}

/**
 * Writes raw bytes on a fresh TCP connection and collects everything until the
 * server closes it. With keepWriting our side stays open, so only the server can
 * end the exchange. Resolves {text, closed, response: parsed first response or null}.
 */
export function rawExchange(port, chunks, { timeoutMs = 10_000, keepWriting = false } = {}) {
  return withTimeout(
    new Promise((res, rej) => {
      const socket = net.connect(port, '127.0.0.1');
      const parts = [];
      let closed = false;
      socket.on('data', (d) => parts.push(d));
      socket.on('error', (error) => {
        // A reset after the answer is still an answer.
        if (parts.length === 0) rej(error);
      });
      socket.on('close', () => {
        closed = true;
        const text = Buffer.concat(parts).toString('latin1');
        res({ text, closed, response: parseRawResponse(text) });
      });
      socket.on('connect', () => {
        for (const c of Array.isArray(chunks) ? chunks : [chunks]) {
          if (socket.destroyed) break;
          socket.write(c);
        }
        if (!keepWriting) socket.end();
      });
    }),
    timeoutMs,
    `raw exchange on port ${port}`,
  );
}

/** Parses the first HTTP/1.1 response in `text` (content-length or chunked body). Null if incomplete. */
export function parseRawResponse(text) {
  const headEnd = text.indexOf('\r\n\r\n');
  if (headEnd < 0) return null;
  const [statusLine, ...headerLines] = text.slice(0, headEnd).split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (!m) return null;
  const headers = {};
  for (const line of headerLines) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  let rest = text.slice(headEnd + 4);
  let body;
  if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length']);
    if (Buffer.byteLength(rest, 'latin1') < n) return null;
    body = rest.slice(0, n);
  } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    body = '';
    for (;;) {
      const lineEnd = rest.indexOf('\r\n');
      if (lineEnd < 0) return null;
      const size = parseInt(rest.slice(0, lineEnd), 16);
      if (Number.isNaN(size)) return null;
      if (size === 0) break;
      body += rest.slice(lineEnd + 2, lineEnd + 2 + size);
      rest = rest.slice(lineEnd + 2 + size + 2);
    }
  } else {
    body = rest;
  }
  let json;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  return { status: Number(m[1]), statusLine, headers, body, json };
}

/**
 * Opens a raw connection, writes `head`, and resolves as soon as a complete response
 * arrives (without closing our side). Returns {response, socket, closed: Promise}.
 */
export function rawRequestUntilResponse(port, head, { timeoutMs = 10_000 } = {}) {
  return withTimeout(
    new Promise((res, rej) => {
      const socket = net.connect(port, '127.0.0.1');
      let text = '';
      let done = false;
      const closed = new Promise((r) => socket.on('close', () => r(true)));
      socket.on('error', (error) => {
        if (!done && text === '') rej(error);
      });
      socket.on('data', (d) => {
        text += d.toString('latin1');
        const response = parseRawResponse(text);
        if (response && !done) {
          done = true;
          res({ response, socket, closed, text: () => text });
        }
      });
      socket.on('close', () => {
        if (!done) {
          done = true;
          const response = parseRawResponse(text);
          if (response) res({ response, socket, closed, text: () => text });
          else rej(new Error(`connection closed without a complete response; got ${JSON.stringify(text.slice(0, 200))}`));
        }
      });
      socket.on('connect', () => socket.write(head));
    }),
    timeoutMs,
    `raw request on port ${port}`,
  );
}

// ---------------------------------------------------------------------------
// Assertions shared by the suites

/** Asserts SPEC §7's error shape; returns the error object. */
export function assertOpenAiError(res, status, { messageIncludes, code, type } = {}) {
  assert.equal(res.status, status, `status: want ${status}, got ${res.status}; body: ${res.text}`);
  assert.match(res.headers['content-type'] ?? '', /^application\/json/, `content-type of ${res.status}: ${res.headers['content-type']}`);
  assert.ok(res.json && typeof res.json === 'object', `body is not JSON: ${res.text}`);
  const error = res.json.error;
  assert.ok(error && typeof error === 'object', `no "error" object in ${res.text}`);
  assert.equal(typeof error.message, 'string', `error.message not a string in ${res.text}`);
  assert.ok(error.message.length > 0, `empty error.message in ${res.text}`);
  assert.equal(typeof error.type, 'string', `error.type not a string in ${res.text}`);
  assert.ok(error.param === null || typeof error.param === 'string', `error.param neither string nor null in ${res.text}`);
  assert.ok(error.code === null || typeof error.code === 'string', `error.code neither string nor null in ${res.text}`);
  for (const needle of [messageIncludes ?? []].flat()) {
    if (needle instanceof RegExp) assert.match(error.message, needle, `message ${JSON.stringify(error.message)}`);
    else assert.ok(error.message.includes(needle), `message ${JSON.stringify(error.message)} lacks ${JSON.stringify(needle)}`);
  }
  assert.ok(res.headers['x-request-id'], `no x-request-id on a ${res.status} (SPEC §9: every answer carries one)`);
  if (code !== undefined) assert.equal(error.code, code, `error.code in ${res.text}`);
  if (type !== undefined) assert.equal(error.type, type, `error.type in ${res.text}`);
  return error;
}

/** Asserts SPEC §9's headers on a proxied answer. */
export function assertProxyHeaders(res, upstream) {
  assert.ok(res.headers['x-request-id'], `no x-request-id header (headers: ${JSON.stringify(res.headers)})`);
  assert.ok('x-mistral-proxy-rules' in res.headers, `no x-mistral-proxy-rules header (headers: ${JSON.stringify(res.headers)})`);
  if (upstream !== undefined) assert.equal(res.headers['x-mistral-proxy-upstream'], upstream, 'x-mistral-proxy-upstream');
}

export const chatBody = (text, extra = {}) => ({ model: 'mistral-small-latest', messages: [{ role: 'user', content: text }], ...extra });

/**
 * A TCP port on 127.0.0.1 that refuses connections. Port 1 (tcpmux, unused in
 * practice) first: a privileged port is never handed out as an ephemeral one,
 * so nothing the tests start can take it. A port bound and then released (the
 * fallback, when something does listen on port 1) may be taken by a server of
 * a test file running in parallel, or become the proxy's own source port (a
 * TCP self-connect) before the test connects to it.
 */
export async function closedPort() {
  const refuses = (port) =>
    new Promise((res) => {
      const socket = net.connect({ port, host: '127.0.0.1' });
      socket.once('connect', () => { socket.destroy(); res(false); });
      socket.once('error', (err) => res(err.code === 'ECONNREFUSED'));
    });
  if (await refuses(1)) return 1;
  return new Promise((res, rej) => {
    const server = net.createServer();
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => res(port));
    });
  });
}

/**
 * POSTs a body written piece by piece with back-pressure (chunked, as a streaming
 * client sends a large upload): `produce(write)` awaits `write(chunk)` for each
 * piece. Resolves with {status, text} of the answer.
 */
export function postStreamed(url, headers, produce) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers, agent: false }, (res) => {
      const parts = [];
      res.on('data', (c) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    (async () => {
      const write = (chunk) => new Promise((r) => (req.write(chunk) ? r() : req.once('drain', r)));
      await produce(write);
      req.end();
    })().catch(reject);
  });
}
