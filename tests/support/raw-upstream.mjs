// A raw TCP upstream for wire-level tests: it records every byte each
// connection receives and answers with bytes the test writes itself, so that
// framing faults (a body terminated twice, bytes after an answer, a 100
// Continue) are seen exactly as they cross the wire. No HTTP library on this
// side: one would re-frame the bytes and hide the fault.
//
//   const up = await startRawUpstream((request, connection) => connection.write(ok(`{"id":"${request.query}"}`)));
//   up.url               -> "http://127.0.0.1:PORT/v1" (a base_url for the proxy)
//   up.accepts           -> connections accepted so far
//   up.connections[i].bytes() -> everything connection i received, as a latin1 string
//   up.requests          -> every request parsed so far: {method, target, headers, body, raw, connection}
//   await up.close()
import net from 'node:net';

/**
 * Strict HTTP/1.1 request framing, as an upstream server applies it: returns the
 * complete requests at the start of `text` and the bytes left after them
 * (`rest`). `error` is set when the bytes cannot be a request.
 */
export function parseRequests(text) {
  const requests = [];
  let rest = text;
  for (;;) {
    const headEnd = rest.indexOf('\r\n\r\n');
    if (headEnd < 0) return { requests, rest };
    const [requestLine, ...lines] = rest.slice(0, headEnd).split('\r\n');
    const m = /^([A-Z]+) (\S+) HTTP\/1\.1$/.exec(requestLine);
    if (!m) return { requests, rest, error: `not a request line: ${JSON.stringify(requestLine.slice(0, 80))}` };
    const headers = {};
    for (const line of lines) {
      const i = line.indexOf(':');
      if (i <= 0) return { requests, rest, error: `bad header line ${JSON.stringify(line)}` };
      const name = line.slice(0, i).trim().toLowerCase();
      headers[name] = headers[name] === undefined ? line.slice(i + 1).trim() : `${headers[name]}, ${line.slice(i + 1).trim()}`;
    }
    let at = headEnd + 4;
    let body = '';
    if (headers['transfer-encoding'] !== undefined) {
      if (headers['transfer-encoding'].toLowerCase() !== 'chunked') return { requests, rest, error: `transfer-encoding ${headers['transfer-encoding']}` };
      for (;;) {
        const lineEnd = rest.indexOf('\r\n', at);
        if (lineEnd < 0) return { requests, rest };
        const sizeText = rest.slice(at, lineEnd);
        if (!/^[0-9a-fA-F]+$/.test(sizeText)) return { requests, rest, error: `bad chunk size ${JSON.stringify(sizeText)}` };
        const size = parseInt(sizeText, 16);
        at = lineEnd + 2;
        if (size === 0) {
          if (rest.length < at + 2) return { requests, rest };
          if (rest.slice(at, at + 2) !== '\r\n') return { requests, rest, error: 'trailers are not expected' };
          at += 2;
          break;
        }
        if (rest.length < at + size + 2) return { requests, rest };
        body += rest.slice(at, at + size);
        if (rest.slice(at + size, at + size + 2) !== '\r\n') return { requests, rest, error: 'chunk not followed by CRLF' };
        at += size + 2;
      }
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (rest.length < at + n) return { requests, rest };
      body = rest.slice(at, at + n);
      at += n;
    }
    const target = m[2];
    const q = target.indexOf('?');
    requests.push({
      method: m[1],
      target,
      path: q < 0 ? target : target.slice(0, q),
      query: q < 0 ? '' : target.slice(q + 1),
      headers,
      body,
      raw: rest.slice(0, at),
    });
    rest = rest.slice(at);
  }
}

/** A whole answer: status line, Content-Length framing, JSON by default. */
export function answer(body, { status = 200, reason = 'OK', headers = {} } = {}) {
  const extra = Object.entries({ 'Content-Type': 'application/json', ...headers })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return `HTTP/1.1 ${status} ${reason}\r\n${extra}Content-Length: ${Buffer.byteLength(body, 'latin1')}\r\n\r\n${body}`;
}

/**
 * @param {(request: object, connection: {write(text: string): void, end(): void, index: number}) => void} onRequest
 *   called once per complete request, in order, on each connection
 */
export function startRawUpstream(onRequest) {
  const connections = [];
  const requests = [];
  const sockets = new Set();
  const waiters = [];
  const notify = () => {
    for (const w of waiters.splice(0)) w();
  };
  const server = net.createServer((socket) => {
    sockets.add(socket);
    const chunks = [];
    let unparsed = '';
    const connection = {
      index: connections.length,
      bytes: () => Buffer.concat(chunks).toString('latin1'),
      write: (text) => {
        if (!socket.destroyed) socket.write(Buffer.from(text, 'latin1'));
      },
      end: () => socket.end(),
      socket, // for a test that needs backpressure (write() returning false)
      errors: [],
      closed: false,
    };
    connections.push(connection);
    socket.on('data', (data) => {
      chunks.push(data);
      unparsed += data.toString('latin1');
      const parsed = parseRequests(unparsed);
      unparsed = parsed.rest;
      if (parsed.error) connection.errors.push(parsed.error);
      for (const request of parsed.requests) {
        request.connection = connection.index;
        requests.push(request);
        onRequest(request, connection);
      }
      notify();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      connection.closed = true;
      sockets.delete(socket);
      notify();
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({
        port,
        url: `http://127.0.0.1:${port}/v1`,
        connections,
        requests,
        get accepts() {
          return connections.length;
        },
        /** Resolves once `probe()` is true, re-checked whenever a byte arrives or a connection closes. */
        async until(probe, label = 'condition', timeoutMs = 5000) {
          const deadline = Date.now() + timeoutMs;
          while (!probe()) {
            if (Date.now() > deadline) throw new Error(`raw upstream: timed out waiting for ${label}`);
            await new Promise((r) => {
              waiters.push(r);
              setTimeout(r, Math.max(1, deadline - Date.now())).unref();
            });
          }
        },
        close() {
          for (const s of sockets) s.destroy();
          return new Promise((r) => server.close(() => r()));
        },
      });
    });
  });
}
