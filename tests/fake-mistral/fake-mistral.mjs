// A fake Mistral API on loopback that answers the way the real one does: per-host
// keys, request bodies validated against Mistral's own OpenAPI schemas (422 for
// fields it does not allow), 400 for unknown or removed models, Mistral's error
// shapes, SSE streams with pacing, and faults on demand.
//
// In-process (tests):
//   const fake = await startFakeMistral({ name: 'mistral', apiKey: 'k-mistral' });
//   fake.url            -> "http://127.0.0.1:PORT/v1" ("https://localhost:PORT/v1" with tls)
//   fake.requests       -> [{method, path, headers, body, bytes, sha256, at, connection}]
//   fake.injectFault({kind: 'status', status: 503}) ... see injectFault below
//   await fake.close()
//
// Standalone (manual runs, benchmarks):
//   node tests/fake-mistral/fake-mistral.mjs --port 0 --key K [--name codestral]
//        [--host 127.0.0.1] [--tls-key F --tls-cert F] [--chunks N] [--interval-ms MS]
//   prints "fake-mistral listening on PORT" on stdout.
import http from 'node:http';
import https from 'node:https';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { schemaProperties, validateBody } from './validate.mjs';

// ---------------------------------------------------------------------------
// Models

const CHAT_MODELS = [
  'mistral-large-latest', 'mistral-large-2411', 'mistral-medium-latest', 'mistral-medium-2505',
  'mistral-small-latest', 'mistral-small-2503', 'open-mistral-nemo', 'open-mistral-nemo-2407',
  'ministral-8b-latest', 'ministral-3b-latest', 'pixtral-12b-2409', 'pixtral-large-latest',
  'magistral-medium-latest', 'magistral-small-latest',
];
const CODESTRAL_MODELS = ['codestral-latest', 'codestral-2501', 'codestral-2405'];
const EMBED_MODELS = ['mistral-embed', 'codestral-embed'];
const MODERATION_MODELS = ['mistral-moderation-latest', 'mistral-moderation-2411'];
const TRANSCRIPTION_MODELS = ['voxtral-mini-latest', 'voxtral-mini-2507', 'voxtral-small-latest'];
const SPEECH_MODELS = ['voxtral-mini-tts-2603'];
// Mistral's preset voices (Voxtral TTS): three speakers, each in several moods.
export const SPEECH_VOICES = [
  ...['neutral', 'happy', 'cheerful', 'excited', 'confident', 'sad', 'frustrated', 'angry'].map((m) => `en_paul_${m}`),
  ...['neutral', 'confident', 'curious', 'confused', 'sarcasm', 'sad', 'shameful', 'jealousy', 'frustrated'].map((m) => `gb_jane_${m}`),
  ...['neutral', 'cheerful', 'excited', 'confident', 'curious', 'sad', 'angry'].map((m) => `gb_oliver_${m}`),
];
const VISION_MODELS = new Set(['pixtral-12b-2409', 'pixtral-large-latest', 'mistral-small-latest', 'mistral-small-2503', 'mistral-medium-latest', 'mistral-medium-2505', 'mistral-large-latest']);
const NO_TOOL_MODELS = new Set(['open-mistral-nemo', 'open-mistral-nemo-2407']);

function modelsFor(name) {
  if (name === 'codestral') return { chat: CODESTRAL_MODELS, fim: CODESTRAL_MODELS, embed: EMBED_MODELS, moderation: [], transcription: [], speech: [] };
  return { chat: [...CHAT_MODELS, ...CODESTRAL_MODELS], fim: CODESTRAL_MODELS, embed: EMBED_MODELS, moderation: MODERATION_MODELS, transcription: TRANSCRIPTION_MODELS, speech: SPEECH_MODELS };
}

function modelCard(id, created) {
  const codestral = id.startsWith('codestral');
  const embed = id.includes('embed');
  const moderation = id.includes('moderation');
  return {
    id,
    object: 'model',
    created,
    owned_by: 'mistralai',
    capabilities: {
      completion_chat: !embed && !moderation,
      completion_fim: codestral && !embed,
      function_calling: !embed && !moderation && !NO_TOOL_MODELS.has(id),
      fine_tuning: false,
      vision: VISION_MODELS.has(id),
      classification: moderation,
    },
    name: id,
    description: '',
    max_context_length: embed || moderation ? 8192 : 131072,
    aliases: [],
    deprecation: null,
    default_model_temperature: embed || moderation ? null : 0.3,
    type: 'base',
  };
}

// ---------------------------------------------------------------------------
// Deterministic content

// "echo: <text of the last user message>" — what every chat answer says; after a
// tool result (last message role "tool"): "tool result: <its content>".
export function chatAnswerText(body) {
  const messages = Array.isArray(body?.messages) ? body.messages : [];
  const last = messages.at(-1);
  if (last?.role === 'tool') return `tool result: ${contentText(last.content)}`;
  const lastUser = [...messages].reverse().find((m) => m?.role === 'user');
  return `echo: ${contentText(lastUser?.content)}`;
}

// The tool call the fake makes, or null. It calls a tool when tool_choice is "any"
// (or "required") or names a function, or when tools are offered and the last user message starts
// with "call ". Arguments: {"text": <last user message>}; the id is 9 alphanumerics
// derived from name and arguments, as Mistral's ids look.
export function chatToolCall(body) {
  const tools = Array.isArray(body?.tools) ? body.tools.filter((t) => (t.type ?? 'function') === 'function') : [];
  if (tools.length === 0 || body.tool_choice === 'none') return null;
  const messages = Array.isArray(body.messages) ? body.messages : [];
  if (messages.at(-1)?.role === 'tool') return null;
  const lastUser = contentText([...messages].reverse().find((m) => m?.role === 'user')?.content);
  // Mistral's description of tool_choice: "`any` or `required` means the model must call one or more tools".
  const forced = body.tool_choice === 'any' || body.tool_choice === 'required' || (body.tool_choice && typeof body.tool_choice === 'object');
  if (!forced && !lastUser.startsWith('call ')) return null;
  const name = typeof body.tool_choice === 'object' ? body.tool_choice.function.name : tools[0].function.name;
  const args = JSON.stringify({ text: lastUser });
  const id = createHash('sha256').update(`${name}\u0000${args}`).digest('base64').replace(/[^a-zA-Z0-9]/g, '').slice(0, 9);
  return { id, type: 'function', function: { name, arguments: args }, index: 0 };
}

// What a FIM answer says.
export function fimAnswerText(body) {
  return `fim: ${body?.prompt ?? ''}|${body?.suffix ?? ''}`;
}

function contentText(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.filter((p) => p?.type === 'text').map((p) => p.text).join('');
  }
  return '';
}

// Embedding of one input: values are multiples of 1/256 in [-0.5, 0.5), so they are
// exact in float32 (a proxy that re-encodes them as base64 float32 loses nothing).
export function embeddingFor(input, dimensions = 1024) {
  const out = new Array(dimensions);
  let block = Buffer.alloc(0);
  for (let i = 0; i < dimensions; i++) {
    const offset = i % 32;
    if (offset === 0) block = createHash('sha256').update(`${input}\u0000${i / 32}`).digest();
    out[i] = (block[offset] - 128) / 256;
  }
  return out;
}

// Mistral's moderation categories (mistral-moderation-2411, as in the OpenAPI example).
export const MODERATION_CATEGORIES = [
  'sexual', 'hate_and_discrimination', 'violence_and_threats', 'dangerous_and_criminal_content', 'selfharm',
  'health', 'financial', 'law', 'pii',
];
// Marker words: a text containing one is flagged in these categories with a high score.
export const MODERATION_MARKERS = { kill: ['violence_and_threats', 'dangerous_and_criminal_content'], ssn: ['pii'] };

// The fake's moderation of one text, {categories, category_scores}: every
// category false with a small score derived from the text, except those of a
// marker word the text contains (case-insensitive): true, scored 0.9 + a bit.
export function moderationFor(text) {
  const flagged = new Set();
  for (const [marker, names] of Object.entries(MODERATION_MARKERS)) {
    if (String(text).toLowerCase().includes(marker)) for (const n of names) flagged.add(n);
  }
  const categories = {};
  const scores = {};
  for (const name of MODERATION_CATEGORIES) {
    const byte = createHash('sha256').update(`${text}\u0000${name}`).digest()[0];
    categories[name] = flagged.has(name);
    scores[name] = flagged.has(name) ? 0.9 + byte / 2560 : byte / 25600;
  }
  return { categories, category_scores: scores };
}

// Splits `text` into exactly `n` pieces (trailing pieces may be empty).
// The audio the fake speaks for a SpeechRequest: a tag naming the format, then
// sha256 blocks of (model, voice, format, input), one per 8 characters of input
// (at least one), so that the bytes are binary, differ per request and can be
// compared by a test.
export function speechAudioFor(body) {
  const format = body.response_format ?? 'mp3';
  const seed = `${body.model}\u0000${body.voice_id ?? body.ref_audio ?? ''}\u0000${format}\u0000${body.input}`;
  const blocks = [Buffer.from(`${format}:`)];
  for (let i = 0; i < Math.max(1, Math.ceil(String(body.input).length / 8)); i++) {
    blocks.push(createHash('sha256').update(`${seed}\u0000${i}`).digest());
  }
  return Buffer.concat(blocks);
}

export function splitIntoChunks(text, n) {
  const size = Math.max(1, Math.ceil(text.length / n));
  const pieces = [];
  for (let i = 0; i < n; i++) pieces.push(text.slice(i * size, (i + 1) * size));
  return pieces;
}

const estimateTokens = (text) => Math.max(1, Math.ceil(String(text).length / 4));
const hex = (bytes = 16) => randomBytes(bytes).toString('hex');
const nowSeconds = () => Math.floor(Date.now() / 1000);

// ---------------------------------------------------------------------------
// What Mistral refuses beyond its JSON schema (400 object:error). Texts as Mistral words them.

const TOOL_CALL_ID = /^[a-zA-Z0-9]{9}$/;

export function chatSemanticError(body) {
  const err = (message, type, code) => ({ object: 'error', message, type, param: null, code });
  const messages = body.messages ?? [];
  for (const m of messages) {
    const ids = [];
    if (m.role === 'assistant') for (const call of m.tool_calls ?? []) if (call.id !== undefined && call.id !== 'null') ids.push(call.id);
    if (m.role === 'tool' && typeof m.tool_call_id === 'string') ids.push(m.tool_call_id);
    for (const id of ids) {
      if (!TOOL_CALL_ID.test(id)) {
        return err(`Tool call id was ${id} but must be a-z, A-Z, 0-9, with a length of 9.`, 'invalid_request_message_tool_call_id', '3280');
      }
    }
  }
  for (let i = 1; i < messages.length; i++) {
    const prev = messages[i - 1].role ?? 'user';
    const role = messages[i].role ?? 'user';
    if (prev === 'tool' && (role === 'user' || role === 'system')) {
      return err(`Unexpected role '${role}' after role 'tool'`, 'invalid_request_message_order', '3230');
    }
  }
  const last = messages.at(-1);
  if (last && last.role === 'assistant' && last.prefix !== true) {
    return err('Expected last role User or Tool (or Assistant with prefix True) for serving but got assistant', 'invalid_request_message_order', '3230');
  }
  if (Array.isArray(body.tools) && body.tools.length > 0 && NO_TOOL_MODELS.has(body.model)) {
    return err(`Model ${body.model} does not support function calling`, 'invalid_request_error', '3051');
  }
  const hasImage = messages.some((m) => Array.isArray(m.content) && m.content.some((p) => p?.type === 'image_url'));
  if (hasImage && !VISION_MODELS.has(body.model)) {
    return err(`Model ${body.model} does not support image input`, 'invalid_request_error', '3051');
  }
  return null;
}

// ---------------------------------------------------------------------------
// Mistral's error shapes

export const mistralErrors = {
  unauthorized: () => ({ message: 'Unauthorized', request_id: hex() }),
  invalidModel: (model) => ({ object: 'error', message: `Invalid model: ${model}`, type: 'invalid_model', param: null, code: '1500' }),
  notFound: () => ({ detail: 'Not Found' }),
  methodNotAllowed: () => ({ detail: 'Method Not Allowed' }),
  jsonInvalid: (error) => ({ detail: [{ type: 'json_invalid', loc: ['body', 0], msg: 'JSON decode error', input: {}, ctx: { error: error.message } }] }),
  rateLimited: () => ({ message: 'Requests rate limit exceeded', request_id: hex() }),
  internal: () => ({ object: 'error', message: 'Internal server error', type: 'internal_server_error', param: null, code: '1000' }),
};

// Default body for an injected status fault, as Mistral (or the gateway before it) sends it.
function defaultFaultBody(status) {
  switch (status) {
    case 400: return { json: mistralErrors.invalidModel('mistral-tiny') };
    case 401: return { json: mistralErrors.unauthorized() };
    case 404: return { json: mistralErrors.notFound() };
    case 422: return { json: { detail: [{ type: 'missing', loc: ['body', 'messages'], msg: 'Field required', input: {} }] } };
    case 429: return { json: mistralErrors.rateLimited() };
    case 500: return { json: mistralErrors.internal() };
    case 502: return { text: '<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n', type: 'text/html' };
    case 503: return { text: 'upstream connect error or disconnect/reset before headers. reset reason: overflow', type: 'text/plain' };
    case 504: return { text: 'upstream request timeout', type: 'text/plain' };
    default: return { json: { object: 'error', message: http.STATUS_CODES[status] ?? 'Error', type: 'error', param: null, code: String(status) } };
  }
}

// ---------------------------------------------------------------------------

function deferred() {
  let resolveFn;
  let rejectFn;
  const promise = new Promise((res, rej) => {
    resolveFn = res;
    rejectFn = rej;
  });
  return { promise, resolve: resolveFn, reject: rejectFn };
}

function pathMatches(matcher, path) {
  if (matcher === undefined) return true;
  if (matcher instanceof RegExp) return matcher.test(path);
  return path === matcher || path.split('?')[0] === matcher;
}

/**
 * Starts a fake Mistral.
 * @param {object} options
 * @param {'mistral'|'mistral_eu'|'codestral'} [options.name]
 * @param {string} options.apiKey  the key accepted (`Authorization: Bearer <apiKey>`)
 * @param {string[]} [options.extraKeys]  more keys accepted (other workspaces: a proxy's key pool)
 * @param {{key: string|Buffer, cert: string|Buffer}} [options.tls]  serve https (PEM)
 * @param {string} [options.host]  default 127.0.0.1
 * @param {number} [options.port]  default 0 (any free port)
 * @param {{chunks?: number, intervalMs?: number}} [options.stream]  default 5 chunks, 0 ms apart
 */
export async function startFakeMistral(options = {}) {
  const name = options.name ?? 'mistral';
  const apiKey = options.apiKey;
  if (!apiKey) throw new Error('startFakeMistral: apiKey is required');
  const acceptedAuthorization = new Set([apiKey, ...(options.extraKeys ?? [])].map((key) => `Bearer ${key}`));
  const host = options.host ?? '127.0.0.1';
  const models = modelsFor(name);
  const streamSettings = { chunks: 5, intervalMs: 0, ...(options.stream ?? {}) };
  const answerSettings = { finishReason: 'stop', bareToolCalls: false };

  const requests = [];
  const faults = [];
  const aborts = [];
  const abortWaiters = [];
  const requestWaiters = [];
  const startWaiters = [];
  const openSockets = new Set();
  let gate = null;
  let connectionCount = 0;
  let closing = false;

  const handler = (req, res) => {
    handle(req, res).catch((error) => {
      process.stderr.write(`fake-mistral(${name}): handler error: ${error.stack}\n`);
      if (!res.headersSent) sendJson(res, 500, mistralErrors.internal());
      else res.destroy();
    });
  };
  const server = options.tls ? https.createServer({ key: options.tls.key, cert: options.tls.cert }, handler) : http.createServer(handler);
  server.keepAliveTimeout = 60_000;
  server.headersTimeout = 65_000;
  server.requestTimeout = 0;
  server.on('connection', (socket) => {
    openSockets.add(socket);
    socket.on('close', () => openSockets.delete(socket));
  });
  // Counted on the socket requests arrive on (the TLS socket when serving https).
  server.on(options.tls ? 'secureConnection' : 'connection', (socket) => {
    connectionCount += 1;
    socket.fakeConnectionId = connectionCount;
  });
  // Garbage/disconnects from the proxy are part of the tests; they must not crash the fake.
  server.on('clientError', (error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  server.on('tlsClientError', () => {});

  await new Promise((res, rej) => {
    server.once('error', rej);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', rej);
      res();
    });
  });
  const port = server.address().port;
  const urlHost = options.tls ? 'localhost' : host;

  function takeFault(path) {
    const index = faults.findIndex((f) => pathMatches(f.path, path));
    if (index < 0) return null;
    const fault = faults[index];
    fault.remaining -= 1;
    if (fault.remaining <= 0) faults.splice(index, 1);
    return fault;
  }

  function recordAbort(record) {
    const event = { at: Date.now(), method: record.method, path: record.path, request: record };
    aborts.push(event);
    for (const waiter of abortWaiters.splice(0)) waiter.resolve(event);
  }

  async function handle(req, res) {
    const socket = req.socket;
    const record = {
      method: req.method,
      path: req.url,
      headers: { ...req.headers },
      body: '',
      bytes: 0,
      sha256: null,
      at: Date.now(),
      connection: socket.fakeConnectionId,
      completed: false,
      aborted: false,
    };
    // "Aborted" = the peer went away before our answer was complete (not a
    // connection the fake itself cut for a fault, nor its own shutdown).
    res.on('close', () => {
      if (!res.writableFinished && !socket.closedByFake && !closing) {
        record.aborted = true;
        recordAbort(record);
      }
    });

    notifyWaiters(startWaiters, record);
    const fault = takeFault(req.url);
    if (fault?.kind === 'close_immediately') {
      requests.push(record);
      notifyRequest(record);
      socket.closedByFake = true;
      socket.destroy();
      return;
    }

    // Read the whole body, hashing as it comes (passthrough uploads can be large).
    // A form is kept whole (transcriptions parse it), other bodies up to 64 MiB.
    const form = String(req.headers['content-type'] ?? '').startsWith('multipart/');
    const hash = createHash('sha256');
    const parts = [];
    let bytes = 0;
    try {
      for await (const chunk of req) {
        hash.update(chunk);
        bytes += chunk.length;
        if (form || bytes <= 64 * 1024 * 1024) parts.push(chunk);
      }
    } catch {
      record.aborted = true;
      requests.push(record);
      return;
    }
    record.bytes = bytes;
    record.sha256 = hash.digest('hex');
    const raw = Buffer.concat(parts);
    record.body = raw.subarray(0, 64 * 1024 * 1024).toString('utf8');
    // A form's bytes are kept as they came: its file parts are binary.
    if (form) record.raw = raw;
    record.completed = true;
    requests.push(record);
    notifyRequest(record);

    if (fault) {
      if (await applyFault(fault, req, res, record)) return;
    }
    await route(req, res, record, fault);
  }

  function notifyRequest(record) {
    notifyWaiters(requestWaiters, record);
  }

  function notifyWaiters(waiters, record) {
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i];
      if (pathMatches(w.path, record.path)) {
        waiters.splice(i, 1);
        w.resolve(record);
      }
    }
  }

  // Returns true when the fault fully handled the request.
  async function applyFault(fault, req, res, record) {
    switch (fault.kind) {
      case 'status': {
        const status = fault.status ?? 500;
        const headers = { ...(fault.headers ?? {}) };
        let body;
        let type;
        // A function makes the body from the request (e.g. an upstream that echoes its Authorization header).
        const given = typeof fault.body === 'function' ? fault.body(record) : fault.body;
        if (given === undefined) {
          const def = defaultFaultBody(status);
          body = def.json !== undefined ? JSON.stringify(def.json) : def.text;
          type = def.json !== undefined ? 'application/json' : def.type;
        } else if (typeof given === 'string') {
          body = given;
          type = fault.contentType ?? 'text/plain';
        } else {
          body = JSON.stringify(given);
          type = 'application/json';
        }
        send(res, status, body, { 'content-type': fault.contentType ?? type, ...headers });
        return true;
      }
      case 'hang':
        // Request read; never answer. close() or the peer ends it.
        return true;
      case 'garbage': {
        const socket = req.socket;
        socket.closedByFake = true;
        socket.write(fault.bytes ?? 'SPDY/9 ?? not-http\r\n\u0000\u0001\u0002 garbage garbage\r\n\r\n', () => socket.end());
        return true;
      }
      case 'close_immediately':
        req.socket.closedByFake = true;
        req.socket.destroy();
        return true;
      default:
        return false; // reset_after and slow shape the normal answer
    }
  }

  async function route(req, res, record, fault) {
    const url = new URL(req.url, 'http://fake');
    const path = url.pathname;

    if (!path.startsWith('/v1/')) return sendJson(res, 404, mistralErrors.notFound());
    if (!acceptedAuthorization.has(req.headers.authorization)) return sendJson(res, 401, mistralErrors.unauthorized());

    if (path === '/v1/echo-headers') {
      return sendJson(res, 200, { object: 'echo', method: req.method, path: req.url, headers: record.headers });
    }
    if (path.startsWith('/v1/batch/jobs')) return answerBatchJobs(req, res, record, url);
    if (path === '/v1/files' && req.method === 'POST' && isBatchUpload(record)) return answerUpload(res, record);
    const stored = /^\/v1\/files\/([^/]+)(\/content)?$/.exec(path);
    if (stored && req.method === 'GET' && files.has(stored[1])) {
      const file = files.get(stored[1]);
      if (!stored[2]) return sendJson(res, 200, { ...fileObject(file), deleted: false });
      return send(res, 200, file.content, { 'content-type': 'application/octet-stream' });
    }
    if (path === '/v1/files' || path.startsWith('/v1/files/') || path.startsWith('/v1/echo/')) {
      return sendJson(res, 200, {
        object: 'passthrough',
        method: req.method,
        path: req.url,
        content_type: req.headers['content-type'] ?? null,
        bytes: record.bytes,
        sha256: record.sha256,
      });
    }
    if (path === '/v1/models' || path.startsWith('/v1/models/')) {
      if (req.method !== 'GET') return sendJson(res, 405, mistralErrors.methodNotAllowed());
      const created = 1_700_000_000;
      const all = [...new Set([...models.chat, ...models.embed, ...models.moderation, ...models.transcription, ...models.speech])].map((id) => modelCard(id, created));
      if (path === '/v1/models') return sendJson(res, 200, { object: 'list', data: all });
      const id = decodeURIComponent(path.slice('/v1/models/'.length));
      const card = all.find((m) => m.id === id);
      return card ? sendJson(res, 200, card) : sendJson(res, 404, { detail: 'Model not found' });
    }

    if (path === '/v1/audio/transcriptions' && name !== 'codestral') {
      if (req.method !== 'POST') return sendJson(res, 405, mistralErrors.methodNotAllowed());
      return answerTranscription(res, record);
    }
    if (path === '/v1/audio/speech' && name !== 'codestral') {
      if (req.method !== 'POST') return sendJson(res, 405, mistralErrors.methodNotAllowed());
      return answerSpeech(res, record, fault);
    }

    const endpoints = {
      '/v1/chat/completions': { schema: 'ChatCompletionRequest', models: models.chat, answer: chatAnswerText },
      '/v1/embeddings': { schema: 'EmbeddingRequest', models: models.embed },
    };
    if (name === 'codestral') endpoints['/v1/fim/completions'] = { schema: 'FIMCompletionRequest', models: models.fim, answer: fimAnswerText };
    // Mistral's moderation endpoint takes a ClassificationRequest ({model, input, metadata}).
    else endpoints['/v1/moderations'] = { schema: 'ClassificationRequest', models: models.moderation };
    const endpoint = endpoints[path];
    if (!endpoint) return sendJson(res, 404, mistralErrors.notFound());
    if (req.method !== 'POST') return sendJson(res, 405, mistralErrors.methodNotAllowed());

    let body;
    try {
      body = JSON.parse(record.body);
    } catch (error) {
      return sendJson(res, 422, mistralErrors.jsonInvalid(error));
    }
    const invalid = validateBody(endpoint.schema, body);
    if (invalid) return sendJson(res, 422, invalid);
    if (!endpoint.models.includes(body.model)) return sendJson(res, 400, mistralErrors.invalidModel(body.model));
    if (path === '/v1/chat/completions') {
      const refusal = chatSemanticError(body);
      if (refusal) return sendJson(res, 400, refusal);
    }

    if (path === '/v1/embeddings') return answerEmbeddings(res, body);
    if (path === '/v1/moderations') return answerModeration(res, body);
    const toolCall = path === '/v1/chat/completions' ? chatToolCall(body) : null;
    const text = toolCall ? '' : endpoint.answer(body);
    const promptTokens = estimateTokens(record.body);
    if (body.stream === true) return answerStream(res, body, text, promptTokens, fault, toolCall);
    return answerCompletion(res, body, text, promptTokens, fault, toolCall);
  }

  // ---- Files and batch jobs (Mistral's /v1/files with purpose batch, /v1/batch/jobs).
  // Files uploaded with purpose batch are kept; a job "runs" when it is first
  // read after its creation (GET /v1/batch/jobs/{id}): each line's body is
  // validated against the endpoint's schema with the job's model, answered as
  // the live endpoint answers, and the outputs (and errors) become files.
  const files = new Map();
  const jobs = new Map();
  const BATCH_ENDPOINTS = {
    '/v1/chat/completions': { schema: 'ChatCompletionRequest', models: models.chat },
    '/v1/embeddings': { schema: 'EmbeddingRequest', models: models.embed },
  };

  function isBatchUpload(record) {
    const type = String(record.headers['content-type'] ?? '');
    if (!type.startsWith('multipart/') || !record.raw) return false;
    return /name="?purpose"?\r\n\r\nbatch\r\n/.test(record.raw.subarray(0, 64 * 1024).toString('latin1')) ||
      /name="?purpose"?\r\n\r\nbatch\r\n/.test(record.raw.subarray(-64 * 1024).toString('latin1'));
  }

  function fileObject(file) {
    return {
      id: file.id, object: 'file', bytes: file.source === 'upload' ? null : file.content.length, created_at: file.created_at,
      filename: file.filename, purpose: file.purpose, sample_type: file.sample_type, source: file.source,
      num_lines: file.lines, mimetype: 'application/jsonl', signature: null,
    };
  }

  function storeFile(fields) {
    const file = { id: randomUUID(), created_at: nowSeconds(), ...fields };
    files.set(file.id, file);
    return file;
  }

  // The lines of a JSONL buffer, without blank ones.
  function jsonlLines(content) {
    return content.toString('utf8').split('\n').filter((line) => line.trim() !== '');
  }

  // POST /v1/files (multipart: file, purpose, expiry, visibility). A batch file's
  // lines must each be Mistral's BatchRequest {custom_id, body}, nothing more.
  async function answerUpload(res, record) {
    const invalid = (msg, loc = ['body']) => sendJson(res, 422, { detail: [{ type: 'value_error', loc, msg, input: null }] });
    let form;
    try {
      form = await new Response(record.raw, { headers: { 'content-type': record.headers['content-type'] ?? '' } }).formData();
    } catch (error) {
      return invalid(`not a multipart form: ${error.message}`);
    }
    const fields = {};
    let file = null;
    for (const [key, value] of form.entries()) {
      if (key in fields) return invalid(`field ${key} given twice`, ['body', key]);
      if (!['file', 'purpose', 'expiry', 'visibility'].includes(key)) return invalid(`Extra inputs are not permitted: ${key}`, ['body', key]);
      if (typeof value === 'string') fields[key] = value;
      else {
        file = value;
        fields[key] = 'binary';
      }
    }
    if (!file) return invalid('file is required (a file part)', ['body', 'file']);
    const purpose = fields.purpose === undefined ? null : validateBody('FilePurpose', fields.purpose);
    if (purpose) return sendJson(res, 422, purpose);
    const content = Buffer.from(await file.arrayBuffer());
    const lines = jsonlLines(content);
    for (const [index, text] of lines.entries()) {
      let line;
      try {
        line = JSON.parse(text);
      } catch {
        return invalid(`line ${index + 1} is not JSON`, ['body', 'file']);
      }
      const refusal = validateBody('BatchRequest', line);
      if (refusal) return sendJson(res, 422, refusal);
      const extra = Object.keys(line).filter((key) => key !== 'custom_id' && key !== 'body');
      if (extra.length) return invalid(`line ${index + 1}: Extra inputs are not permitted: ${extra.join(', ')}`, ['body', 'file']);
    }
    const stored = storeFile({ filename: file.name, purpose: fields.purpose, sample_type: 'batch_request', source: 'upload', content, lines: lines.length });
    record.upload = { fields, file: { name: file.name, size: content.length, sha256: createHash('sha256').update(content).digest('hex') }, lines: lines.length };
    sendJson(res, 200, fileObject(stored));
  }

  function jobView(job) {
    const { requests: _requests, ...view } = job;
    return view;
  }

  // The answer a live call would get, or the error it would, for one line's body.
  function answerLine(endpoint, model, body) {
    const request = { ...body, model };
    const refusal = validateBody(endpoint.schema, request);
    if (refusal) return { status_code: 422, body: refusal };
    if (!endpoint.models.includes(model)) return { status_code: 400, body: mistralErrors.invalidModel(model) };
    if (endpoint.schema === 'EmbeddingRequest') {
      const inputs = Array.isArray(request.input) ? request.input : [request.input];
      const tokens = inputs.reduce((n, text) => n + estimateTokens(text), 0);
      return {
        status_code: 200,
        body: { id: hex(), object: 'list', model, usage: { prompt_tokens: tokens, completion_tokens: 0, total_tokens: tokens },
          data: inputs.map((input, index) => ({ object: 'embedding', embedding: embeddingFor(input, 8), index })) },
      };
    }
    const refused = chatSemanticError(request);
    if (refused) return { status_code: 400, body: refused };
    const text = chatAnswerText(request);
    return { status_code: 200, body: completionObject(request, text, estimateTokens(JSON.stringify(request)), null) };
  }

  function runJob(job) {
    const endpoint = BATCH_ENDPOINTS[job.endpoint];
    const outputs = [];
    const errors = [];
    for (const file of job.input_files.map((id) => files.get(id))) {
      for (const text of jsonlLines(file.content)) {
        const line = JSON.parse(text);
        const response = answerLine(endpoint, job.model, line.body);
        const out = { id: `batch-${hex().slice(0, 12)}`, custom_id: line.custom_id ?? null, response, error: null };
        (response.status_code === 200 ? outputs : errors).push(JSON.stringify(out));
      }
    }
    const now = nowSeconds();
    const output = (lines, sampleType) => lines.length === 0 ? null : storeFile({
      filename: `${job.id}_${sampleType}.jsonl`, purpose: 'batch', sample_type: sampleType, source: 'mistral',
      content: Buffer.from(lines.map((line) => `${line}\n`).join('')), lines: lines.length,
    }).id;
    Object.assign(job, {
      status: 'SUCCESS', started_at: now, completed_at: now,
      output_file: output(outputs, 'batch_result'), error_file: output(errors, 'batch_error'),
      completed_requests: outputs.length + errors.length, succeeded_requests: outputs.length, failed_requests: errors.length,
    });
  }

  // /v1/batch/jobs: create (CreateBatchJobRequest), list, get, cancel.
  async function answerBatchJobs(req, res, record, url) {
    const path = url.pathname;
    if (path === '/v1/batch/jobs' && req.method === 'POST') {
      let body;
      try {
        body = JSON.parse(record.body);
      } catch (error) {
        return sendJson(res, 422, mistralErrors.jsonInvalid(error));
      }
      const invalid = validateBody('CreateBatchJobRequest', body);
      if (invalid) return sendJson(res, 422, invalid);
      const endpoint = BATCH_ENDPOINTS[body.endpoint];
      if (!endpoint) return sendJson(res, 400, { object: 'error', message: `endpoint ${body.endpoint} is not served by this fake`, type: 'invalid_request_error', param: null, code: null });
      if (!body.model) return sendJson(res, 400, { object: 'error', message: 'model or agent_id is required', type: 'invalid_request_error', param: null, code: null });
      if (!endpoint.models.includes(body.model)) return sendJson(res, 400, mistralErrors.invalidModel(body.model));
      const inputs = body.input_files ?? [];
      const unknown = inputs.find((id) => files.get(id)?.sample_type !== 'batch_request');
      if (inputs.length === 0 || unknown) return sendJson(res, 404, { detail: `File ${unknown ?? '(none)'} not found` });
      const job = {
        id: randomUUID(), object: 'batch', input_files: inputs, metadata: body.metadata ?? null, endpoint: body.endpoint,
        model: body.model, agent_id: null, output_file: null, error_file: null, errors: [], outputs: null, status: 'QUEUED',
        created_at: nowSeconds() - jobs.size, // distinct, newest last
        total_requests: inputs.reduce((n, id) => n + files.get(id).lines, 0), completed_requests: 0,
        succeeded_requests: 0, failed_requests: 0, started_at: null, completed_at: null,
      };
      jobs.set(job.id, job);
      return sendJson(res, 200, jobView(job));
    }
    if (path === '/v1/batch/jobs' && req.method === 'GET') {
      const known = ['page', 'page_size', 'model', 'agent_id', 'metadata', 'created_after', 'created_by_me', 'status', 'order_by'];
      const extra = [...url.searchParams.keys()].filter((key) => !known.includes(key));
      if (extra.length) return sendJson(res, 422, { detail: [{ type: 'extra_forbidden', loc: ['query', extra[0]], msg: 'Extra inputs are not permitted', input: null }] });
      const page = Number(url.searchParams.get('page') ?? 0);
      const size = Number(url.searchParams.get('page_size') ?? 100);
      const order = url.searchParams.get('order_by') ?? '-created';
      const all = [...jobs.values()].reverse();
      if (order === 'created') all.reverse();
      return sendJson(res, 200, { object: 'list', total: all.length, data: all.slice(page * size, (page + 1) * size).map(jobView) });
    }
    const match = /^\/v1\/batch\/jobs\/([^/]+)(\/cancel)?$/.exec(path);
    const job = match && jobs.get(match[1]);
    if (!job) return sendJson(res, 404, { detail: 'Batch job not found' });
    if (match[2] && req.method === 'POST') {
      if (job.status === 'QUEUED' || job.status === 'RUNNING') job.status = 'CANCELLATION_REQUESTED';
      return sendJson(res, 200, jobView(job));
    }
    if (match[2] || req.method !== 'GET') return sendJson(res, 405, mistralErrors.methodNotAllowed());
    if (job.status === 'QUEUED') runJob(job);
    else if (job.status === 'CANCELLATION_REQUESTED') Object.assign(job, { status: 'CANCELLED', completed_at: nowSeconds() });
    return sendJson(res, 200, jobView(job));
  }

  function completionObject(body, text, promptTokens, toolCall) {
    return {
      id: hex(),
      object: 'chat.completion',
      created: nowSeconds(),
      model: body.model,
      choices: [{
        index: 0,
        message: { role: 'assistant', content: text, tool_calls: toolCall ? [toolCall] : null, prefix: false },
        finish_reason: toolCall ? 'tool_calls' : answerSettings.finishReason,
      }],
      usage: completionUsage(promptTokens, toolCall ? toolCall.function.arguments : text),
    };
  }

  function completionUsage(promptTokens, text) {
    const completion = estimateTokens(text);
    return { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion };
  }

  function answerCompletion(res, body, text, promptTokens, fault, toolCall) {
    const payload = JSON.stringify(completionObject(body, text, promptTokens, toolCall));
    if (fault?.kind === 'reset_after') {
      // Headers and half the body, then the connection goes away.
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
      res.write(payload.slice(0, Math.floor(payload.length / 2)), () => destroySocket(res.socket, fault));
      return;
    }
    send(res, 200, payload, { 'content-type': 'application/json' });
  }

  function answerEmbeddings(res, body) {
    const inputs = Array.isArray(body.input) ? body.input : [body.input];
    const dimensions = body.output_dimension ?? 1024;
    const data = inputs.map((input, index) => ({ object: 'embedding', embedding: embeddingFor(input, dimensions), index }));
    const tokens = inputs.reduce((n, s) => n + estimateTokens(s), 0);
    sendJson(res, 200, {
      id: hex(),
      object: 'list',
      data,
      model: body.model,
      usage: { prompt_tokens: tokens, completion_tokens: 0, total_tokens: tokens },
    });
  }

  // Mistral's ModerationResponse: one result per input, in order.
  function answerModeration(res, body) {
    const inputs = Array.isArray(body.input) ? body.input : [body.input];
    sendJson(res, 200, { id: hex(), model: body.model, results: inputs.map(moderationFor) });
  }

  // POST /v1/audio/transcriptions: a multipart form (AudioTranscriptionRequest,
  // or ...Stream with stream=true), read with undici's own form parser and
  // validated as an object of its fields; a field the schema does not name is
  // refused (422), so that nothing the proxy should have dropped gets through.
  // The transcript is made from the file (its name, size and type), with
  // segments when timestamp_granularities names segment.
  async function answerTranscription(res, record) {
    const invalid = (msg, loc = ['body']) => sendJson(res, 422, { detail: [{ type: 'value_error', loc, msg, input: null }] });
    let form;
    try {
      form = await new Response(record.raw ?? '', { headers: { 'content-type': record.headers['content-type'] ?? '' } }).formData();
    } catch (error) {
      return invalid(`not a multipart form: ${error.message}`);
    }
    const fields = {};
    let file = null;
    const repeated = new Set(['timestamp_granularities', 'context_bias']);
    for (const [key, value] of form.entries()) {
      if (repeated.has(key)) {
        (fields[key] ??= []).push(value);
      } else if (key in fields) {
        return invalid(`field ${key} given twice`, ['body', key]);
      } else if (typeof value !== 'string') {
        file = value;
        fields[key] = 'binary';
      } else if (key === 'stream' || key === 'diarize') {
        fields[key] = value === 'true' ? true : value === 'false' ? false : value;
      } else if (key === 'temperature') {
        fields[key] = Number.isNaN(Number(value)) ? value : Number(value);
      } else {
        fields[key] = value;
      }
    }
    const schema = fields.stream === true ? 'AudioTranscriptionRequestStream' : 'AudioTranscriptionRequest';
    const known = schemaProperties(schema);
    const extra = Object.keys(fields).filter((key) => !known.includes(key));
    if (extra.length) return invalid(`Extra inputs are not permitted: ${extra.join(', ')}`, ['body', extra[0]]);
    const refusal = validateBody(schema, fields);
    if (refusal) return sendJson(res, 422, refusal);
    if (!file || fields.file !== 'binary') return invalid('file is required (a file part)', ['body', 'file']);
    if (!models.transcription.includes(fields.model)) return sendJson(res, 400, mistralErrors.invalidModel(fields.model));
    const bytes = Buffer.from(await file.arrayBuffer());
    record.form = { fields, file: { name: file.name, type: file.type, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') } };

    const first = `Transcript of ${file.name}.`;
    const second = `${bytes.length} bytes of ${file.type || 'audio'}.`;
    const text = `${first} ${second}`;
    const withSegments = (fields.timestamp_granularities ?? []).includes('segment');
    const segments = withSegments
      ? [
        { type: 'transcription_segment', text: ` ${first}`, start: 0, end: 1.5 },
        { type: 'transcription_segment', text: ` ${second}`, start: 1.5, end: 3.25 },
      ]
      : [];
    const completion = estimateTokens(text);
    const usage = { prompt_audio_seconds: Math.max(1, Math.ceil(bytes.length / 32000)), prompt_tokens: 4, completion_tokens: completion, total_tokens: 4 + completion };
    const language = fields.language ?? 'en';
    const answer = { model: fields.model, text, language, segments, usage };
    if (fields.stream !== true) return sendJson(res, 200, answer);

    const event = (data) => `event: ${data.type}\ndata: ${JSON.stringify(data)}\n\n`;
    const events = [event({ type: 'transcription.language', audio_language: language })];
    for (const piece of text.split(/(?= )/)) events.push(event({ type: 'transcription.text.delta', text: piece }));
    for (const { text: segmentText, start, end } of segments) events.push(event({ type: 'transcription.segment', text: segmentText, start, end }));
    events.push(event({ type: 'transcription.done', ...answer }));
    await writeEvents(res, events);
  }

  // An SSE answer written event by event; a reset_after fault drops the
  // connection after its `chunks` events.
  async function writeEvents(res, events, fault) {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'mistral-correlation-id': hex() });
    res.flushHeaders();
    const count = fault?.kind === 'reset_after' ? Math.min(fault.chunks ?? 1, events.length) : events.length;
    for (const data of events.slice(0, count)) {
      if (res.destroyed) return;
      await new Promise((r) => res.write(data, r));
    }
    if (count < events.length) destroySocket(res.socket, fault);
    else res.end();
  }

  // POST /v1/audio/speech: a SpeechRequest, validated against Mistral's schema.
  // The schema allows extra fields (additionalProperties: true), so a field it
  // does not name is refused here (422): nothing the proxy should have dropped
  // gets through. Answers {audio_data: base64} whole, or with stream: true the
  // audio in three speech.audio.delta events (cut at arbitrary bytes, each
  // piece base64 on its own) and a speech.audio.done with usage.
  async function answerSpeech(res, record, fault) {
    let body;
    try {
      body = JSON.parse(record.body);
    } catch (error) {
      return sendJson(res, 422, mistralErrors.jsonInvalid(error));
    }
    const known = schemaProperties('SpeechRequest');
    const extra = Object.keys(body ?? {}).filter((key) => !known.includes(key));
    if (extra.length) return sendJson(res, 422, { detail: [{ type: 'extra_forbidden', loc: ['body', extra[0]], msg: 'Extra inputs are not permitted', input: body[extra[0]] }] });
    const invalid = validateBody('SpeechRequest', body);
    if (invalid) return sendJson(res, 422, invalid);
    if (!models.speech.includes(body.model)) return sendJson(res, 400, mistralErrors.invalidModel(body.model));
    const voice = body.voice_id;
    if (voice != null && !SPEECH_VOICES.includes(voice) && !/^voice_[0-9]+$/.test(voice)) {
      return sendJson(res, 404, { object: 'error', message: `Voice ${voice} not found`, type: 'invalid_request_error', param: 'voice_id', code: null });
    }
    if (voice == null && body.ref_audio == null) {
      return sendJson(res, 422, { detail: [{ type: 'value_error', loc: ['body'], msg: 'voice_id or ref_audio is required', input: null }] });
    }
    const audio = speechAudioFor(body);
    if (body.stream !== true) return sendJson(res, 200, { audio_data: audio.toString('base64') });

    const promptTokens = estimateTokens(body.input);
    const completionTokens = Math.ceil(audio.length / 16);
    const cuts = [0, Math.floor(audio.length / 3) + 1, Math.floor((2 * audio.length) / 3), audio.length];
    const event = (data) => `event: ${data.type}\ndata: ${JSON.stringify(data)}\n\n`;
    const events = [];
    for (let i = 0; i + 1 < cuts.length; i++) {
      events.push(event({ type: 'speech.audio.delta', audio_data: audio.subarray(cuts[i], cuts[i + 1]).toString('base64') }));
    }
    events.push(event({ type: 'speech.audio.done', usage: { prompt_audio_seconds: null, prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens } }));
    await writeEvents(res, events, fault);
  }

  async function answerStream(res, body, text, promptTokens, fault, toolCall) {
    const chunks = Math.max(1, fault?.chunks && fault.kind !== 'reset_after' ? fault.chunks : streamSettings.chunks);
    const intervalMs = fault?.kind === 'slow' ? fault.intervalMs : streamSettings.intervalMs;
    const id = hex();
    const created = nowSeconds();
    const chunk = (delta, finishReason, extra = {}) =>
      `data: ${JSON.stringify({
        id,
        object: 'chat.completion.chunk',
        created,
        model: body.model,
        choices: [{ index: 0, delta, finish_reason: finishReason }],
        ...extra,
      })}\n\n`;
    const events = [chunk({ role: 'assistant', content: '' }, null)];
    if (toolCall) {
      // Mistral sends a tool call whole, in one chunk, with its finish_reason.
      // bareToolCalls: the sparse form Mistral has been seen to stream — no index,
      // no type, a placeholder id — which OpenAI's stream helpers cannot assemble.
      const streamed = answerSettings.bareToolCalls ? { id: 'null', function: toolCall.function } : toolCall;
      events.push(chunk({ tool_calls: [streamed] }, 'tool_calls', { usage: completionUsage(promptTokens, toolCall.function.arguments) }));
    } else {
      for (const piece of splitIntoChunks(text, chunks)) events.push(chunk({ content: piece }, null));
      events.push(chunk({ content: '' }, answerSettings.finishReason, { usage: completionUsage(promptTokens, text) }));
    }
    events.push('data: [DONE]\n\n');

    const myGate = gate;
    gate = null;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'mistral-correlation-id': hex() });
    res.flushHeaders();
    const resetAfter = fault?.kind === 'reset_after' ? fault.chunks ?? 1 : Infinity;
    for (let i = 0; i < events.length; i++) {
      if (res.destroyed) return;
      if (i === resetAfter) {
        destroySocket(res.socket, fault);
        return;
      }
      // The gate holds the final chunk (finish_reason + usage) and [DONE].
      if (myGate && i === events.length - 2) {
        myGate.reached.resolve({ at: Date.now(), written: i });
        await myGate.released.promise;
        if (res.destroyed) return;
      }
      if (i > 0 && intervalMs > 0) await sleep(intervalMs);
      else if (i > 0) await new Promise((r) => setImmediate(r));
      if (res.destroyed) return;
      // Wait until each event is handed to the kernel: pacing is then real, and a
      // reset_after fault cuts the connection after exactly the events it promised.
      await new Promise((r) => {
        const done = () => {
          res.off('close', done);
          r();
        };
        res.once('close', done);
        res.write(events[i], done);
      });
    }
    if (!res.destroyed) res.end();
    await new Promise((r) => (res.writableFinished || res.destroyed ? r() : res.once('close', r)));
  }

  function destroySocket(socket, fault) {
    if (!socket) return;
    socket.closedByFake = true;
    if (fault?.rst && typeof socket.resetAndDestroy === 'function') {
      try {
        socket.resetAndDestroy();
        return;
      } catch {
        // TLS sockets may not support RST; fall through to a plain close.
      }
    }
    socket.destroy();
  }

  const fake = {
    name,
    port,
    origin: `${options.tls ? 'https' : 'http'}://${urlHost}:${port}`,
    url: `${options.tls ? 'https' : 'http'}://${urlHost}:${port}/v1`,
    apiKey,
    requests,
    aborts,
    /** Number of TCP connections accepted so far (to check upstream connection reuse). */
    get connections() {
      return connectionCount;
    },
    /**
     * Queues a fault for the next request (or the next `times` requests whose path matches `path`).
     *   {kind:'status', status, body?, headers?, contentType?}  Mistral's error shape for the status by default;
     *                                body: a string, a JSON value, or a function (request record) => either
     *   {kind:'hang'}                 read the request, never answer
     *   {kind:'reset_after', chunks:N, rst?} stream N events (non-stream: half the body) then drop the connection
     *   {kind:'slow', intervalMs, chunks?}   pace this stream
     *   {kind:'garbage', bytes?}      write non-HTTP bytes, then close
     *   {kind:'close_immediately'}    close the connection as soon as the request head arrives
     * Common: path (string or RegExp), times (default 1).
     */
    injectFault(fault) {
      faults.push({ ...fault, remaining: fault.times ?? 1 });
    },
    clearFaults() {
      faults.length = 0;
    },
    setStream(settings) {
      Object.assign(streamSettings, settings);
    },
    /** finish_reason of later answers, e.g. 'model_length' (Mistral's own value) or 'length'. */
    setFinishReason(reason) {
      answerSettings.finishReason = reason;
    },
    /** Streamed tool calls in Mistral's sparse form: no index, no type, id "null". */
    setBareToolCalls(bare) {
      answerSettings.bareToolCalls = bare;
    },
    /**
     * The next stream writes every event but the final one (finish_reason + usage) and
     * [DONE], then waits. gate.reachedHold resolves when it waits; await gate.release()
     * lets it finish (resolves once the stream has ended).
     */
    holdBeforeLastChunk() {
      const g = { reached: deferred(), released: deferred() };
      gate = g;
      return {
        reachedHold: g.reached.promise,
        release: async () => {
          g.released.resolve();
        },
      };
    },
    /**
     * Resolves with {at, method, path, request} at the next abort after this call: a
     * request whose connection the peer (the proxy) closed before the answer ended.
     * Connections the fake cuts itself (faults) do not count. History: fake.aborts.
     */
    nextAbort() {
      const d = deferred();
      abortWaiters.push(d);
      return d.promise;
    },
    /** Resolves with the record of the next request (matching `path` if given) once its body is read. */
    nextRequest(path) {
      const d = deferred();
      requestWaiters.push({ path, resolve: d.resolve });
      return d.promise;
    },
    /** Resolves with the (still incomplete) record as soon as a request's head arrives, before its body is read. */
    nextRequestStart(path) {
      const d = deferred();
      startWaiters.push({ path, resolve: d.resolve });
      return d.promise;
    },
    /** Forgets recorded requests, aborts and faults (not the stream settings). */
    reset() {
      requests.length = 0;
      aborts.length = 0;
      faults.length = 0;
      gate = null;
      answerSettings.finishReason = 'stop';
      answerSettings.bareToolCalls = false;
    },
    async close() {
      closing = true;
      if (gate) gate.released.resolve();
      const closed = new Promise((r) => server.close(() => r()));
      server.closeAllConnections?.();
      for (const socket of openSockets) socket.destroy();
      await closed;
    },
  };
  return fake;
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function send(res, status, body, headers) {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'mistral-correlation-id': hex(), 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

function sendJson(res, status, value) {
  send(res, status, JSON.stringify(value), { 'content-type': 'application/json' });
}

// ---------------------------------------------------------------------------
// Standalone

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const key = a.slice(2);
    const value = argv[i + 1];
    if (value === undefined || value.startsWith('--')) throw new Error(`${a} needs a value`);
    args[key] = value;
    i++;
  }
  return args;
}

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error.message}\nusage: fake-mistral.mjs --port 0 --key K [--name mistral|mistral_eu|codestral] [--host H] [--tls-key F --tls-cert F] [--chunks N] [--interval-ms MS]\n`);
    process.exit(2);
  }
  const key = args.key ?? process.env.FAKE_MISTRAL_KEY;
  if (!key) {
    process.stderr.write('--key is required\n');
    process.exit(2);
  }
  const tls = args['tls-key'] ? { key: readFileSync(args['tls-key']), cert: readFileSync(args['tls-cert']) } : undefined;
  const fake = await startFakeMistral({
    name: args.name ?? 'mistral',
    apiKey: key,
    tls,
    host: args.host,
    port: Number(args.port ?? 0),
    stream: { chunks: Number(args.chunks ?? 5), intervalMs: Number(args['interval-ms'] ?? 0) },
  });
  process.stdout.write(`fake-mistral listening on ${fake.port}\n`);
  const stop = async () => {
    await fake.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main();
}
