// POST /v1/audio/transcriptions: OpenAI's multipart form goes to Mistral's
// transcription endpoint rewritten as it streams (model through model_alias,
// timestamp_granularities[] renamed, OpenAI-only fields dropped, segments asked
// for srt/vtt/verbose_json), and Mistral's answer comes back in the
// response_format asked for, or as OpenAI's transcript.text.* events. Raw HTTP
// and the official `openai` SDK; JSON answers and events are checked against
// OpenAI's schemas, every upstream form against Mistral's by the fake.
import { test, describe, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import OpenAI, { toFile } from 'openai';
import { startStack } from '../support/stack.mjs';
import { request, assertOpenAiError, assertProxyHeaders, parseSse, postStreamed } from '../support/http.mjs';
import { assertOpenAIShape, openaiCheckingFetch } from '../support/openai-validate.mjs';
import { runCli } from '../support/proxy.mjs';
import { peakRssBytes } from '../support/procfs.mjs';

const BOUNDARY = '----formdata-test-7d1c';

// A multipart body as OpenAI's SDKs write one: [name, value] fields, and
// [name, {filename, type, data}] files.
function form(parts, boundary = BOUNDARY) {
  const chunks = [];
  for (const [name, value] of parts) {
    if (typeof value === 'string') {
      chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
    } else {
      chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"; filename="${value.filename}"\r\nContent-Type: ${value.type}\r\n\r\n`));
      chunks.push(value.data, Buffer.from('\r\n'));
    }
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(chunks);
}

// Bytes that look like audio and hold what a careless parser trips on.
function audioBytes(size) {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = (i * 131 + 7) % 256;
  Buffer.from(`\r\n--${BOUNDARY.slice(0, -1)}\r\n\r\n`).copy(data, Math.floor(size / 2));
  return data;
}

const post = (stack, body, { boundary = BOUNDARY, headers = {} } = {}) =>
  request(`${stack.proxy.baseURL}/audio/transcriptions`, {
    method: 'POST',
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, ...headers },
    body,
  });

// What the fake transcribes a file to (tests/fake-mistral: the file's name, size and type).
const transcriptOf = (name, size, type) => [`Transcript of ${name}.`, `${size} bytes of ${type}.`];

// The one upstream request: its form as the fake read it.
function sentForm(fake) {
  assert.equal(fake.requests.length, 1, `upstream requests: ${fake.requests.map((r) => r.path).join(', ')}`);
  const [sent] = fake.requests;
  assert.equal(sent.path, '/v1/audio/transcriptions');
  assert.ok(sent.form, `the fake did not accept the form: ${JSON.stringify(sent.headers)}`);
  return sent.form;
}

let stack;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});
beforeEach(() => stack.reset());

describe('raw HTTP', () => {
  const audio = audioBytes(50_000);
  const sha256 = createHash('sha256').update(audio).digest('hex');
  const file = { filename: 'talk.mp3', type: 'audio/mpeg', data: audio };
  const [first, second] = transcriptOf('talk.mp3', audio.length, 'audio/mpeg');

  test('json: {text, usage}; whisper-1 aliased, the file relayed byte for byte', async () => {
    const res = await post(stack, form([['file', file], ['model', 'whisper-1']]));
    assert.equal(res.status, 200, res.text);
    assertProxyHeaders(res, 'mistral');
    assert.equal(res.headers['x-mistral-proxy-rules'], 'model_alias');
    assert.match(res.headers['content-type'], /^application\/json/);
    assertOpenAIShape('CreateTranscriptionResponseJson', res.json);
    assert.equal(res.json.text, `${first} ${second}`);
    assert.equal(res.json.usage.type, 'tokens');
    assert.equal(res.json.usage.total_tokens, res.json.usage.input_tokens + res.json.usage.output_tokens);
    const sent = sentForm(stack.fakes.mistral);
    assert.deepEqual(sent.fields, { file: 'binary', model: 'voxtral-mini-latest' });
    assert.deepEqual(sent.file, { name: 'talk.mp3', type: 'audio/mpeg', size: audio.length, sha256 });
  });

  test('text: the transcript as text/plain', async () => {
    const res = await post(stack, form([['model', 'gpt-4o-transcribe'], ['response_format', 'text'], ['file', file]]));
    assert.equal(res.status, 200, res.text);
    assert.match(res.headers['content-type'], /^text\/plain/);
    assert.equal(res.text, `${first} ${second}\n`);
    assert.deepEqual(sentForm(stack.fakes.mistral).fields, { model: 'voxtral-mini-latest', file: 'binary' });
  });

  test('verbose_json: language, duration, segments; segments asked of Mistral', async () => {
    const res = await post(stack, form([['model', 'whisper-1'], ['response_format', 'verbose_json'], ['language', 'fr'], ['temperature', '0.3'], ['file', file]]));
    assert.equal(res.status, 200, res.text);
    assertOpenAIShape('CreateTranscriptionResponseVerboseJson', res.json);
    assert.equal(res.json.language, 'fr');
    assert.equal(res.json.text, `${first} ${second}`);
    assert.equal(res.json.duration, Math.ceil(audio.length / 32000));
    assert.deepEqual(res.json.segments.map((s) => [s.id, s.start, s.end, s.text, s.temperature]), [
      [0, 0, 1.5, ` ${first}`, 0.3],
      [1, 1.5, 3.25, ` ${second}`, 0.3],
    ]);
    assert.deepEqual(sentForm(stack.fakes.mistral).fields, {
      model: 'voxtral-mini-latest', language: 'fr', temperature: 0.3, file: 'binary', timestamp_granularities: ['segment'],
    });
  });

  test('srt and vtt: subtitles from the segments', async () => {
    const srt = await post(stack, form([['model', 'whisper-1'], ['response_format', 'srt'], ['file', file]]));
    assert.equal(srt.status, 200, srt.text);
    assert.match(srt.headers['content-type'], /^text\/plain/);
    assert.equal(srt.text, `1\n00:00:00,000 --> 00:00:01,500\n${first}\n\n2\n00:00:01,500 --> 00:00:03,250\n${second}\n\n`);
    stack.reset();
    const vtt = await post(stack, form([['model', 'whisper-1'], ['response_format', 'vtt'], ['timestamp_granularities[]', 'segment'], ['file', file]]));
    assert.equal(vtt.status, 200, vtt.text);
    assert.match(vtt.headers['content-type'], /^text\/vtt/);
    assert.equal(vtt.text, `WEBVTT\n\n00:00:00.000 --> 00:00:01.500\n${first}\n\n00:00:01.500 --> 00:00:03.250\n${second}\n\n`);
    // Asked once by the client: not asked again.
    assert.deepEqual(sentForm(stack.fakes.mistral).fields.timestamp_granularities, ['segment']);
  });

  test('stream: transcript.text.delta events, then transcript.text.done', async () => {
    const res = await post(stack, form([['model', 'whisper-1'], ['stream', 'true'], ['file', file]]));
    assert.equal(res.status, 200, res.text);
    assert.match(res.headers['content-type'], /^text\/event-stream/);
    const events = parseSse(res.text).map((e) => JSON.parse(e.data));
    for (const event of events) assertOpenAIShape('CreateTranscriptionResponseStreamEvent', event);
    const deltas = events.filter((e) => e.type === 'transcript.text.delta');
    assert.ok(deltas.length > 1, res.text);
    assert.equal(deltas.map((e) => e.delta).join(''), `${first} ${second}`);
    const done = events.at(-1);
    assert.equal(done.type, 'transcript.text.done');
    assert.equal(done.text, `${first} ${second}`);
    assert.equal(done.usage.type, 'tokens');
    assert.deepEqual(sentForm(stack.fakes.mistral).fields, { model: 'voxtral-mini-latest', stream: true, file: 'binary' });
  });

  test('OpenAI-only fields are dropped and named by the params rule', async () => {
    const res = await post(stack, form([['model', 'whisper-1'], ['prompt', 'Names: Ada'], ['include[]', 'logprobs'], ['chunking_strategy', 'auto'], ['file', file]]));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['x-mistral-proxy-rules'], 'model_alias,params');
    assert.deepEqual(sentForm(stack.fakes.mistral).fields, { model: 'voxtral-mini-latest', file: 'binary' });
  });

  test('a quoted boundary with odd characters', async () => {
    const boundary = "a'()+_,-./:=? b";
    const res = await post(stack, form([['model', 'voxtral-mini-2507'], ['file', file]], boundary), { boundary: `"${boundary}"` });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['x-mistral-proxy-rules'], '');
    assert.equal(sentForm(stack.fakes.mistral).file.sha256, sha256);
  });

  test('malformed forms: a 400 in OpenAI\'s shape, nothing answered by Mistral', async () => {
    const cases = [
      [form([['model', 'whisper-1'], ['file', file]]).subarray(0, 3000), 'ends without its closing boundary', 'invalid_multipart'],
      [Buffer.from(`junk\r\n${form([['model', 'whisper-1']])}`), 'does not start with its boundary', 'invalid_multipart'],
      [form([['file', file]]), 'you must provide a model parameter', 'invalid_value'],
      [form([['model', 'whisper-1']]), "'file' is required", 'invalid_value'],
      [form([['model', 'whisper-1'], ['response_format', 'diarized_json'], ['file', file]]), 'json, text, srt, verbose_json, vtt', 'invalid_value'],
      [Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\nX: ${'x'.repeat(9000)}\r\n\r\nm\r\n--${BOUNDARY}--`), 'headers exceed 8192 bytes', 'invalid_multipart'],
    ];
    for (const [body, message, code] of cases) {
      const res = await post(stack, body);
      assertOpenAiError(res, 400, { messageIncludes: message, code });
    }
    const noBoundary = await request(`${stack.proxy.baseURL}/audio/transcriptions`, { method: 'POST', headers: { 'content-type': 'multipart/form-data' }, body: 'x' });
    assertOpenAiError(noBoundary, 400, { messageIncludes: 'has no boundary', code: 'invalid_multipart' });
    const json = await request(`${stack.proxy.baseURL}/audio/transcriptions`, { method: 'POST', body: { model: 'whisper-1' } });
    assertOpenAiError(json, 400, { messageIncludes: 'not multipart/form-data', code: 'invalid_multipart' });
    // An upstream request may have begun (the form streams): it was abandoned, never completed.
    assert.deepEqual(stack.fakes.mistral.requests.filter((r) => r.form || r.completed), []);
  });

  test('a form refused early while its file is still coming: the client reads the 400', async () => {
    const rest = audioBytes(8 * 1024 * 1024);
    const res = await post(stack, form([['model', 'whisper-1'], ['file', file], ['file', { ...file, data: rest }]]));
    assertOpenAiError(res, 400, { messageIncludes: 'two audio files', code: 'invalid_value' });
    assert.equal(res.headers.connection, 'close');
    const noBoundary = await request(`${stack.proxy.baseURL}/audio/transcriptions`, {
      method: 'POST', headers: { 'content-type': 'multipart/form-data; charset=utf-8' }, body: rest,
    });
    assertOpenAiError(noBoundary, 400, { messageIncludes: 'has no boundary', code: 'invalid_multipart' });
  });

  test('counted under endpoint="audio_transcriptions" in /metrics', async () => {
    const res = await post(stack, form([['model', 'whisper-1'], ['file', file]]));
    assert.equal(res.status, 200, res.text);
    const metrics = await request(`${stack.proxy.url}/metrics`);
    assert.match(metrics.text, /mistral_proxy_requests_total\{endpoint="audio_transcriptions",upstream="mistral",status="200"\} [1-9]/);
  });

  test('region eu: the EU host', async () => {
    const eu = await startStack({ proxy: { region: 'eu', eu_strict: true } });
    try {
      const res = await post(eu, form([['model', 'whisper-1'], ['file', file]]));
      assert.equal(res.status, 200, res.text);
      assertProxyHeaders(res, 'mistral_eu');
      assert.equal(sentForm(eu.fakes.mistral_eu).file.sha256, sha256);
      assert.equal(eu.fakes.mistral.requests.length, 0);
    } finally {
      await eu.stop();
    }
  });

  test('a body over server.max_body_bytes passes: uploads have server.max_upload_bytes', async () => {
    const small = await startStack({ proxy: { server: { max_body_bytes: 10_000, max_upload_bytes: 100_000 } } });
    try {
      const res = await post(small, form([['model', 'whisper-1'], ['file', file]]));
      assert.equal(res.status, 200, res.text);
      assert.equal(sentForm(small.fakes.mistral).file.sha256, sha256);
      const big = audioBytes(150_000);
      const refused = await post(small, form([['model', 'whisper-1'], ['file', { ...file, data: big }]]));
      assertOpenAiError(refused, 413, { messageIncludes: 'server.max_upload_bytes' });
    } finally {
      await small.stop();
    }
  });
});

describe('a 200 MB upload', () => {
  const MB = 1024 * 1024;
  test('streams through with peak RSS under 64 MB', async () => {
    const big = await startStack();
    try {
      const size = 200 * MB;
      const block = audioBytes(MB);
      const hash = createHash('sha256');
      for (let sent = 0; sent < size; sent += block.length) hash.update(block);
      const head = Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n` +
        `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="long.flac"\r\nContent-Type: audio/flac\r\n\r\n`);
      const tail = Buffer.from(`\r\n--${BOUNDARY}\r\nContent-Disposition: form-data; name="response_format"\r\n\r\nsrt\r\n--${BOUNDARY}--\r\n`);
      // Written with back-pressure, one block at a time; chunked, as a streaming client sends.
      const answer = await postStreamed(`${big.proxy.baseURL}/audio/transcriptions`,
        { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` }, async (write) => {
          await write(head);
          for (let sent = 0; sent < size; sent += block.length) await write(block);
          await write(tail);
        });
      assert.equal(answer.status, 200, answer.text);
      const sent = sentForm(big.fakes.mistral);
      assert.deepEqual(sent.file, { name: 'long.flac', type: 'audio/flac', size, sha256: hash.digest('hex') });
      assert.ok(answer.text.startsWith('1\n00:00:00,000 --> 00:00:01,500\nTranscript of long.flac.\n'), answer.text);
      const peak = peakRssBytes(big.proxy.pid);
      process.stdout.write(`# peak RSS of the proxy: ${(peak / MB).toFixed(1)} MB\n`);
      assert.ok(peak < 64 * MB, `peak RSS ${(peak / MB).toFixed(1)} MB`);
    } finally {
      await big.stop();
    }
  });
});

describe('explain', () => {
  test('the form as serve sends it, what it drops, and the answer it plans', async () => {
    const body = form([['file', { filename: 'a.wav', type: 'audio/wav', data: audioBytes(1234) }], ['model', 'whisper-1'],
      ['response_format', 'vtt'], ['prompt', 'p'], ['stream', 'false']]);
    const r = await runCli(['explain', '--config', stack.proxy.configFile, '--endpoint', '/v1/audio/transcriptions', '-'], { input: body });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.url, `${stack.fakes.mistral.url}/audio/transcriptions`);
    assert.deepEqual(out.rules, ['model_alias', 'params']);
    assert.deepEqual(out.form, [
      { name: 'file', filename: 'a.wav', content_type: 'audio/wav', bytes: 1234 },
      { name: 'model', value: 'voxtral-mini-latest' },
      { name: 'stream', value: 'false' },
      { name: 'timestamp_granularities', value: 'segment' },
    ]);
    assert.deepEqual(out.dropped, ['prompt']);
    assert.deepEqual(out.answer, { response_format: 'vtt', stream: false });
    assert.equal(stack.fakes.mistral.requests.length, 0);

    const refused = await runCli(['explain', '--config', stack.proxy.configFile, '--endpoint', '/v1/audio/transcriptions', '-'], {
      input: form([['file', { filename: 'a.wav', type: 'audio/wav', data: audioBytes(10) }]]),
    });
    assert.equal(refused.code, 1);
    assert.equal(JSON.parse(refused.stdout).error.message, 'you must provide a model parameter');
  });
});

describe('the openai SDK', () => {
  let client;
  const checkedFetch = openaiCheckingFetch();
  before(() => {
    client = new OpenAI({ apiKey: 'sk-client-side-anything', baseURL: stack.proxy.baseURL, maxRetries: 0, timeout: 20_000, fetch: checkedFetch });
  });
  afterEach(() => checkedFetch.assertClean());

  const audio = audioBytes(20_000);
  const upload = () => toFile(audio, 'speech.wav', { type: 'audio/wav' });
  const [first, second] = transcriptOf('speech.wav', audio.length, 'audio/wav');

  test('each response_format', async () => {
    const json = await client.audio.transcriptions.create({ file: await upload(), model: 'whisper-1' });
    assert.equal(json.text, `${first} ${second}`);
    assertOpenAIShape('CreateTranscriptionResponseJson', json);
    assert.equal(sentForm(stack.fakes.mistral).file.size, audio.length);

    const text = await client.audio.transcriptions.create({ file: await upload(), model: 'gpt-4o-mini-transcribe', response_format: 'text' });
    assert.equal(text, `${first} ${second}\n`);

    const verbose = await client.audio.transcriptions.create({
      file: await upload(), model: 'whisper-1', response_format: 'verbose_json', timestamp_granularities: ['segment'],
    });
    assertOpenAIShape('CreateTranscriptionResponseVerboseJson', verbose);
    assert.deepEqual(verbose.segments.map((s) => s.text.trim()), [first, second]);

    const srt = await client.audio.transcriptions.create({ file: await upload(), model: 'whisper-1', response_format: 'srt' });
    assert.equal(srt, `1\n00:00:00,000 --> 00:00:01,500\n${first}\n\n2\n00:00:01,500 --> 00:00:03,250\n${second}\n\n`);

    const vtt = await client.audio.transcriptions.create({ file: await upload(), model: 'whisper-1', response_format: 'vtt' });
    assert.ok(vtt.startsWith('WEBVTT\n\n00:00:00.000 --> 00:00:01.500\n'), vtt);
  });

  test('translations: Mistral has no counterpart, a 404 that says what to use instead', async () => {
    await assert.rejects(
      client.audio.translations.create({ file: await upload(), model: 'whisper-1' }),
      (error) => {
        assert.equal(error.status, 404);
        assert.equal(error.code, 'unsupported_endpoint');
        assert.match(error.message, /POST \/v1\/audio\/transcriptions.*POST \/v1\/chat\/completions/);
        return true;
      },
    );
  });

  test('stream: true', async () => {
    const stream = await client.audio.transcriptions.create({ file: await upload(), model: 'gpt-4o-transcribe', stream: true });
    const events = [];
    for await (const event of stream) events.push(event);
    const deltas = events.filter((e) => e.type === 'transcript.text.delta').map((e) => e.delta);
    assert.equal(deltas.join(''), `${first} ${second}`);
    assert.equal(events.at(-1).type, 'transcript.text.done');
    assert.equal(events.at(-1).text, `${first} ${second}`);
  });

  test('an unknown model: Mistral\'s 400 as the SDK\'s BadRequestError', async () => {
    await assert.rejects(
      client.audio.transcriptions.create({ file: await upload(), model: 'not-a-voxtral' }),
      (error) => error instanceof OpenAI.BadRequestError && /not-a-voxtral/.test(error.message),
    );
  });
});
