// Checks answers against OpenAI's own answer schemas (openai-schemas.json, generated
// by gen-openai-schemas.mjs from OpenAI's OpenAPI description): what OpenAI's
// clients, strictly typed ones included, are written to read.
//
//   validateOpenAI('CreateChatCompletionResponse', json)  -> null, or ['/choices/0: must have required property \'logprobs\'', ...]
//   assertOpenAIShape('CreateEmbeddingResponse', json)     -> throws an AssertionError listing them
//   validateOpenAISse('CreateChatCompletionStreamResponse', sseText) -> null, or errors per event
//   assertOpenAISse(schemaName, sseText)
//
// http.mjs runs these on every answer of the proxy (openaiSchemaFor picks the schema
// from the request), and the SDK suites through openaiCheckingFetch, so a test gets
// them without asking. A new endpoint: add its request -> schema line to ANSWERS.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import Ajv2020 from 'ajv/dist/2020.js';

const schemaDoc = JSON.parse(readFileSync(new URL('./openai-schemas.json', import.meta.url), 'utf8'));

// Formats are annotations here (unixtime, float, uri, date, ...): a client reads the type.
const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
ajv.addSchema(schemaDoc);

const validators = new Map();
function validatorFor(name) {
  let validate = validators.get(name);
  if (!validate) {
    if (!schemaDoc.$defs[name]) throw new Error(`no schema ${name} in openai-schemas.json`);
    validate = ajv.compile({ $ref: `${schemaDoc.$id}#/$defs/${name}` });
    validators.set(name, validate);
  }
  return validate;
}

export const openaiSchemaNames = Object.keys(schemaDoc.$defs);

const show = (value) => {
  const text = JSON.stringify(value);
  return text === undefined ? 'undefined' : text.length > 80 ? `${text.slice(0, 77)}...` : text;
};

function valueAt(root, pointer) {
  let node = root;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    if (node === null || typeof node !== 'object') return undefined;
    node = node[key];
  }
  return node;
}

// Ajv reports every branch of a union, and an `if` that failed its `then` on top of
// the branch's own errors; keep what says what to fix when something specific remains.
function readable(errors, value) {
  const specific = errors.filter((e) => !['anyOf', 'oneOf', 'if', 'allOf'].includes(e.keyword));
  const nonNull = specific.filter((e) => !(e.keyword === 'type' && [e.params.type].flat().includes('null')));
  const kept = nonNull.length > 0 ? nonNull : specific.length > 0 ? specific : errors;
  const lines = [];
  for (const e of kept) {
    const at = e.instancePath || '(top)';
    let text;
    switch (e.keyword) {
      case 'required':
        text = `${at}: missing required field "${e.params.missingProperty}"`;
        break;
      case 'additionalProperties':
        text = `${at}: unexpected field "${e.params.additionalProperty}"`;
        break;
      case 'enum':
        text = `${at}: ${show(valueAt(value, e.instancePath))} is not one of ${show(e.params.allowedValues)}`;
        break;
      case 'const':
        text = `${at}: ${show(valueAt(value, e.instancePath))} is not ${show(e.params.allowedValue)}`;
        break;
      case 'type':
        text = `${at}: ${show(valueAt(value, e.instancePath))} is not of type ${[e.params.type].flat().join(' or ')}`;
        break;
      default:
        text = `${at}: ${e.message} (${e.keyword}, schema ${e.schemaPath})`;
    }
    if (!lines.includes(text)) lines.push(text);
  }
  return lines;
}

/** Null when `value` is valid against OpenAI's schema `schemaName`, else a list of readable errors. */
export function validateOpenAI(schemaName, value) {
  const validate = validatorFor(schemaName);
  if (validate(value)) return null;
  return readable(validate.errors, value);
}

/** Throws an AssertionError naming every field that breaks OpenAI's schema `schemaName`. */
export function assertOpenAIShape(schemaName, value, context = '') {
  const errors = validateOpenAI(schemaName, value);
  if (errors) {
    assert.fail(`answer${context ? ` of ${context}` : ''} is not a valid OpenAI ${schemaName}:\n  ${errors.join('\n  ')}\nanswer: ${show2k(value)}`);
  }
}

const show2k = (value) => {
  const text = JSON.stringify(value);
  return text.length > 2000 ? `${text.slice(0, 2000)}...` : text;
};

/**
 * Validates each `data:` event of an SSE text (or an array of event data strings)
 * against `schemaName`, skipping `[DONE]`. An event whose data is not JSON, or that
 * carries `{"error": ...}` (a stream cut by an error, SPEC §7), is checked against
 * ErrorResponse instead. Null when all are valid, else lines naming the event.
 */
export function validateOpenAISse(schemaName, sse) {
  const datas = typeof sse === 'string' ? sseData(sse) : sse;
  const errors = [];
  datas.forEach((data, i) => {
    if (data === '[DONE]') return;
    let json;
    try {
      json = JSON.parse(data);
    } catch {
      errors.push(`event ${i}: data is not JSON: ${show(data)}`);
      return;
    }
    const isError = json && typeof json === 'object' && 'error' in json && !('object' in json) && !('type' in json);
    const found = validateOpenAI(isError ? 'ErrorResponse' : schemaName, json);
    if (found) errors.push(...found.map((line) => `event ${i} ${show(data)}: ${line}`));
  });
  return errors.length > 0 ? errors : null;
}

export function assertOpenAISse(schemaName, sse, context = '') {
  const errors = validateOpenAISse(schemaName, sse);
  if (errors) assert.fail(`stream${context ? ` of ${context}` : ''} has events that are not valid OpenAI ${schemaName}:\n  ${errors.join('\n  ')}`);
}

/** The `data:` payloads of an SSE text, one per event (multi-line data joined with \n). */
export function sseData(text) {
  const out = [];
  for (const block of text.replace(/\r\n/g, '\n').split('\n\n')) {
    const lines = block.split('\n').filter((l) => l.startsWith('data:'));
    if (lines.length > 0) out.push(lines.map((l) => l.slice(5).replace(/^ /, '')).join('\n'));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Which schema an answer of the proxy must follow

// [method, path pattern, schema of a whole JSON answer, schema of each SSE event].
// The schema of a whole answer may depend on the request body. Paths are matched
// after the /v1 prefix, with a trailing `/` and repeated `/` folded, as the proxy
// folds them. Only endpoints whose answers the proxy builds or rewrites are here:
// passthrough paths (today GET/DELETE /v1/files, /v1/audio/speech) answer
// Mistral's shapes until the proxy translates them (SPEC §4); whoever adds that
// translation adds the line. POST /v1/files answers OpenAI's file object for a
// batch file (purpose batch); other uploads are Mistral's. A batch output's
// content is JSONL: its lines are BatchRequestOutput (checked by the batch tests).
// A transcription's JSON answer depends on the form's response_format; its
// text, srt and vtt answers (TEXT_ANSWERS) are text, not JSON.
const ANSWERS = [
  ['POST', /^\/chat\/completions$/, 'CreateChatCompletionResponse', 'CreateChatCompletionStreamResponse'],
  ['POST', /^\/completions$/, 'CreateCompletionResponse', 'CreateCompletionStreamResponse'],
  ['POST', /^\/embeddings$/, (body) => (body?.encoding_format === 'base64' ? 'CreateEmbeddingResponseBase64' : 'CreateEmbeddingResponse'), null],
  ['GET', /^\/models$/, 'ListModelsResponse', null],
  ['GET', /^\/models\/[^/]+$/, 'Model', null],
  ['POST', /^\/moderations$/, 'CreateModerationResponse', null],
  // Speech: the audio bytes (no JSON schema), or OpenAI's events with stream_format "sse".
  ['POST', /^\/audio\/speech$/, null, 'CreateSpeechResponseStreamEvent'],
  ['POST', /^\/audio\/transcriptions$/, (body, raw) => (transcriptionFormat(raw) === 'verbose_json' ? 'CreateTranscriptionResponseVerboseJson' : 'CreateTranscriptionResponseJson'), 'CreateTranscriptionResponseStreamEvent'],
  // Responses API. DELETE /responses/{id} has no schema in OpenAI's description; what
  // OpenAI answers is {id, object: "response", deleted: true}, the same three required
  // fields as DeleteModelResponse, which stands in for it.
  ['POST', /^\/responses$/, 'Response', 'ResponseStreamEvent'],
  ['GET', /^\/responses\/[^/]+$/, 'Response', 'ResponseStreamEvent'],
  ['DELETE', /^\/responses\/[^/]+$/, 'DeleteModelResponse', null],
  ['POST', /^\/responses\/[^/]+\/cancel$/, 'Response', null],
  ['GET', /^\/responses\/[^/]+\/input_items$/, 'ResponseItemList', null],
  ['POST', /^\/batches$/, 'Batch', null],
  ['GET', /^\/batches$/, 'ListBatchesResponse', null],
  ['GET', /^\/batches\/[^/]+$/, 'Batch', null],
  ['POST', /^\/batches\/[^/]+\/cancel$/, 'Batch', null],
  ['POST', /^\/files$/, (body, raw) => (formPurpose(raw) === 'batch' ? 'OpenAIFile' : null), null],
  ['GET', /^\/files\/[^/]+$/, 'OpenAIFile', null],
  ['POST', /^\/responses\/input_tokens$/, 'TokenCountsResource', null],
];

// Paths whose 2xx answers may be text (text/plain, text/vtt) rather than JSON.
const TEXT_ANSWERS = [/^\/audio\/transcriptions$/];
// Paths whose 2xx answers are audio bytes (audio/mpeg, audio/wav, ...) unless SSE.
const AUDIO_ANSWERS = [/^\/audio\/speech$/];

// The response_format field of a multipart form's text, when there is one.
function transcriptionFormat(raw) {
  if (raw === undefined || raw === null) return undefined;
  const text = Buffer.isBuffer(raw) || raw instanceof Uint8Array ? Buffer.from(raw).toString('latin1') : String(raw);
  return /name="response_format"\r\n\r\n([a-z_]+)\r\n/.exec(text)?.[1];
}

// The purpose field of an upload form, when it is in its first or last 64 KiB.
function formPurpose(raw) {
  if (raw === undefined || raw === null || typeof raw === 'string') return undefined;
  if (raw instanceof FormData) return raw.get('purpose') ?? undefined;
  const bytes = Buffer.from(raw);
  const text = bytes.subarray(0, 65536).toString('latin1') + bytes.subarray(-65536).toString('latin1');
  return /name="purpose"\r\n\r\n([a-z_-]+)\r\n/.exec(text)?.[1];
}

// Origins (http://127.0.0.1:PORT) of the proxies running now: startProxy adds its
// own, so that http.mjs checks answers of the proxy and not those of a fake.
const proxyOrigins = new Set();
export function registerProxy(url) {
  proxyOrigins.add(new URL(url).origin);
}
export function unregisterProxy(url) {
  proxyOrigins.delete(new URL(url).origin);
}
export function isProxyUrl(url) {
  try {
    return proxyOrigins.has(new URL(url).origin);
  } catch {
    return false;
  }
}

// Paths whose answers are the proxy's own, not OpenAI's: not checked at all.
const OWN_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

function canonicalPath(url) {
  let path;
  try {
    path = new URL(url, 'http://x').pathname;
  } catch {
    return null;
  }
  path = path.replace(/\/{2,}/g, '/');
  if (path.length > 1) path = path.replace(/\/$/, '');
  return path;
}

/**
 * The OpenAI schema the proxy's 2xx answer to (method, url[, request body]) must
 * follow: {json, sse} schema names, or null for a path that is not an OpenAI
 * endpoint the proxy answers itself (passthrough, FIM, /healthz, /metrics, ...).
 */
export function openaiSchemaFor(method, url, requestBody) {
  const path = canonicalPath(url);
  if (!path?.startsWith('/v1/')) return null;
  const rest = path.slice(3);
  for (const [m, pattern, json, sse] of ANSWERS) {
    if (m === method.toUpperCase() && pattern.test(rest)) {
      const text = TEXT_ANSWERS.some((p) => p.test(rest));
      const audio = AUDIO_ANSWERS.some((p) => p.test(rest));
      const schema = typeof json === 'function' ? json(parseBody(requestBody), requestBody) : json;
      if (schema === null && sse === null) return null;  // this request's answer is Mistral's (an upload of another purpose)
      return { json: schema, sse, ...(text ? { text } : {}), ...(audio ? { audio } : {}) };
    }
  }
  return null;
}

function parseBody(body) {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'object' && !Buffer.isBuffer(body) && !(body instanceof Uint8Array)) return body;
  try {
    return JSON.parse(String(Buffer.isBuffer(body) || body instanceof Uint8Array ? Buffer.from(body).toString('utf8') : body));
  } catch {
    return undefined;
  }
}

/**
 * Checks one answer of the proxy:
 *   - a 4xx/5xx body, on any path but the proxy's own (/healthz, /readyz, /metrics),
 *     against ErrorResponse: SPEC §7, every non-2xx answer, the proxy's and Mistral's;
 *   - a 2xx JSON body against the endpoint's schema (openaiSchemaFor);
 *   - a 2xx SSE body event by event against its stream schema (`[DONE]` skipped,
 *     an `{"error": ...}` event against ErrorResponse).
 * `requestBody` (string, Buffer or object) picks the schema where the request
 * decides it (embeddings' encoding_format). Returns null or the list of errors.
 */
export function checkProxyAnswer({ method = 'GET', url, status, contentType = '', text, requestBody }) {
  if (status === undefined) return null;
  const path = canonicalPath(url);
  if (!path || OWN_PATHS.has(path)) return null;
  const where = `${method.toUpperCase()} ${new URL(url, 'http://x').pathname} -> ${status}`;
  if (status >= 400) {
    if (method.toUpperCase() === 'HEAD') return null;
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      return [`${where}: an error body that is not JSON (SPEC §7): ${show(text)}`];
    }
    const errors = validateOpenAI('ErrorResponse', json);
    return errors && errors.map((e) => `${where}: ${e}`);
  }
  if (status < 200 || status >= 300 || text === '') return null;
  const schema = openaiSchemaFor(method, url, requestBody);
  if (!schema) return null;
  if (schema.text && /^text\/(plain|vtt)/i.test(contentType ?? '')) return null;
  if (schema.audio && !/^text\/event-stream/i.test(contentType ?? '')) {
    return /^audio\//i.test(contentType ?? '') ? null : [`${where}: an answer that is neither audio nor SSE (Content-Type ${contentType})`];
  }
  if (/^text\/event-stream/i.test(contentType ?? '')) {
    if (!schema.sse) return [`${where}: an SSE answer where OpenAI answers JSON`];
    const errors = validateOpenAISse(schema.sse, text);
    return errors && errors.map((e) => `${where}: ${e}`);
  }
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    return [`${where}: body is not JSON: ${show(text)}`];
  }
  const errors = validateOpenAI(schema.json, json);
  return errors && errors.map((e) => `${where}: ${e}`);
}

/** checkProxyAnswer, throwing an AssertionError. */
export function assertProxyAnswer(answer) {
  const errors = checkProxyAnswer(answer);
  if (errors) assert.fail(`the proxy's answer is not what OpenAI's clients read (tests/support/openai-schemas.json):\n  ${errors.join('\n  ')}\nbody: ${answer.text.length > 2000 ? `${answer.text.slice(0, 2000)}...` : answer.text}`);
}

/**
 * A fetch for `new OpenAI({fetch: openaiCheckingFetch()})`: passes every request
 * through and checks the answer with checkProxyAnswer, whole or streamed, before
 * the SDK sees it.
 *   - A bad whole answer is replaced by a 418 whose error message lists what is
 *     wrong: the SDK call rejects with it (a fetch that throws would only give
 *     the SDK's "Connection error.").
 *   - A bad streamed event errors the body stream with the AssertionError, which
 *     the SDK's stream iteration throws.
 * Every failure is also kept: `checkingFetch.assertClean()` (in an afterEach)
 * fails a test whose SDK call swallowed it, and clears the list.
 */
export function openaiCheckingFetch(inner = globalThis.fetch) {
  const failures = [];
  const fail = (errors, text) => {
    const error = new assert.AssertionError({
      message: `the proxy's answer is not what OpenAI's clients read (tests/support/openai-schemas.json):\n  ${errors.join('\n  ')}${text === undefined ? '' : `\nbody: ${text.length > 2000 ? `${text.slice(0, 2000)}...` : text}`}`,
    });
    failures.push(error);
    return error;
  };
  const checkingFetch = async (input, init = {}) => {
    const method = (init.method ?? input?.method ?? 'GET').toUpperCase();
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const requestBody = typeof init.body === 'string' || init.body instanceof FormData ? init.body : undefined;
    const response = await inner(input, init);
    if ([101, 204, 205, 304].includes(response.status)) return response;
    const contentType = response.headers.get('content-type') ?? '';
    if (/^text\/event-stream/i.test(contentType) && response.body && response.status < 300) {
      // Check each complete event as it passes; the SDK reads the same bytes.
      const decoder = new TextDecoder();
      let buffer = '';
      const checkBlocks = (final) => {
        buffer = buffer.replace(/\r\n/g, '\n');
        let idx;
        while ((idx = buffer.indexOf('\n\n')) >= 0 || (final && buffer.trim() !== '')) {
          const block = idx >= 0 ? buffer.slice(0, idx + 2) : `${buffer}\n\n`;
          buffer = idx >= 0 ? buffer.slice(idx + 2) : '';
          const errors = checkProxyAnswer({ method, url, status: response.status, contentType, text: block, requestBody });
          if (errors) throw fail(errors);
        }
      };
      const checked = response.body.pipeThrough(
        new TransformStream({
          transform(chunk, controller) {
            buffer += decoder.decode(chunk, { stream: true });
            checkBlocks(false);
            controller.enqueue(chunk);
          },
          flush() {
            buffer += decoder.decode();
            checkBlocks(true);
          },
        }),
      );
      return new Response(checked, { status: response.status, statusText: response.statusText, headers: response.headers });
    }
    if (/^audio\//i.test(contentType) && response.status < 300) {
      // Audio bytes: passed on untouched (as text they would be mangled).
      const errors = checkProxyAnswer({ method, url, status: response.status, contentType, text: 'audio', requestBody });
      if (errors) throw fail(errors);
      return response;
    }
    const text = await response.text();
    const errors = checkProxyAnswer({ method, url, status: response.status, contentType, text, requestBody });
    if (errors) {
      const error = fail(errors, text);
      const body = JSON.stringify({ error: { message: error.message, type: 'openai_schema_check', param: null, code: 'openai_schema_check' } });
      return new Response(body, { status: 418, statusText: 'Answer Fails OpenAI Schema', headers: { 'content-type': 'application/json' } });
    }
    return new Response(text, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
  checkingFetch.failures = failures;
  checkingFetch.assertClean = () => {
    const found = failures.splice(0);
    if (found.length > 0) assert.fail(found.map((e) => e.message).join('\n'));
  };
  return checkingFetch;
}
