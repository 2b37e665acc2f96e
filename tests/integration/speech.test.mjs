// POST /v1/audio/speech: OpenAI's CreateSpeechRequest goes to Mistral's speech
// endpoint as a SpeechRequest (OpenAI's TTS models through model_alias, the
// voice through the rule file's speech_voices table, fields Mistral lacks
// dropped by params), always asking Mistral to stream; the answer is the audio
// bytes with OpenAI's Content-Type, or OpenAI's speech.audio.delta /
// speech.audio.done events for stream_format "sse". Raw HTTP and the official
// `openai` SDK; every SSE event is checked against OpenAI's schemas
// (tests/support/openai-validate.mjs), every upstream body against Mistral's
// SpeechRequest by the fake (and here).
import { test, describe, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import OpenAI from 'openai';
import { Stream } from 'openai/streaming';
import { startStack } from '../support/stack.mjs';
import { request, postJson, parseSse, assertOpenAiError, assertProxyHeaders } from '../support/http.mjs';
import { runCli } from '../support/proxy.mjs';
import { assertOpenAIShape, openaiCheckingFetch } from '../support/openai-validate.mjs';
import { validateBody } from '../fake-mistral/validate.mjs';
import { speechAudioFor } from '../fake-mistral/fake-mistral.mjs';

const TTS_MODEL = 'voxtral-mini-tts-2603';
const CONTENT_TYPES = { mp3: 'audio/mpeg', opus: 'audio/opus', flac: 'audio/flac', wav: 'audio/wav', pcm: 'audio/pcm' };

// The one upstream request, checked against Mistral's schema.
function sentBody(fake) {
  assert.equal(fake.requests.length, 1, `upstream requests: ${fake.requests.map((r) => r.path).join(', ')}`);
  const [sent] = fake.requests;
  assert.equal(sent.method, 'POST');
  assert.equal(sent.path, '/v1/audio/speech');
  const body = JSON.parse(sent.body);
  assert.equal(validateBody('SpeechRequest', body), null, `Mistral would refuse ${sent.body}`);
  return body;
}

// What the fake speaks for the body the proxy sent.
const audioFor = (fake) => speechAudioFor(sentBody(fake));

const speech = (stack, body) => postJson(`${stack.proxy.baseURL}/audio/speech`, body);

let stack;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});
beforeEach(() => stack.reset());

describe('raw HTTP', () => {
  test('tts-1 with alloy: the audio bytes as audio/mpeg, streamed as Mistral makes them', async () => {
    const input = 'Hello from the proxy, in a voice Mistral has.';
    const res = await speech(stack, { model: 'tts-1', voice: 'alloy', input });
    assert.equal(res.status, 200, res.text);
    assertProxyHeaders(res, 'mistral');
    assert.equal(res.headers['content-type'], 'audio/mpeg');
    assert.equal(res.headers['transfer-encoding'], 'chunked');
    assert.equal(res.headers['x-mistral-proxy-rules'], 'model_alias');
    assert.deepEqual(sentBody(stack.fakes.mistral), { model: TTS_MODEL, voice_id: 'en_paul_neutral', input, stream: true });
    const expected = audioFor(stack.fakes.mistral);
    assert.ok(expected.length > 64 && expected.some((b) => b >= 0x80), 'binary audio');
    assert.deepEqual(res.bytes, expected);
  });

  test('each response_format: its Content-Type and its bytes', async () => {
    for (const [format, type] of Object.entries(CONTENT_TYPES)) {
      stack.reset();
      const res = await speech(stack, { model: 'gpt-4o-mini-tts', voice: 'coral', input: `In ${format}.`, response_format: format });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.headers['content-type'], type);
      const sent = sentBody(stack.fakes.mistral);
      assert.deepEqual(sent, { model: TTS_MODEL, voice_id: 'gb_jane_confident', input: `In ${format}.`, response_format: format, stream: true });
      assert.deepEqual(res.bytes, speechAudioFor(sent));
    }
  });

  test('speed and instructions are dropped and reported (params), never sent', async () => {
    const res = await speech(stack, { model: 'tts-1-hd', voice: 'onyx', input: 'Slowly.', speed: 0.5, instructions: 'Speak like a pirate.' });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['x-mistral-proxy-rules'], 'model_alias,params');
    assert.deepEqual(sentBody(stack.fakes.mistral), { model: TTS_MODEL, voice_id: 'en_paul_confident', input: 'Slowly.', stream: true });
  });

  test('a custom voice object names any Mistral voice; a voice the table names passes as itself', async () => {
    let res = await speech(stack, { model: TTS_MODEL, voice: { id: 'voice_478' }, input: 'Custom.' });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['x-mistral-proxy-rules'], '');
    assert.equal(sentBody(stack.fakes.mistral).voice_id, 'voice_478');
    stack.reset();
    res = await speech(stack, { model: 'tts-1', voice: 'gb_oliver_cheerful', input: 'Preset.' });
    assert.equal(res.status, 200, res.text);
    assert.equal(sentBody(stack.fakes.mistral).voice_id, 'gb_oliver_cheerful');
  });

  test('an unknown voice is a 400 listing the known ones; nothing is sent', async () => {
    const res = await speech(stack, { model: 'tts-1', voice: 'robot', input: 'x' });
    assertOpenAiError(res, 400, { messageIncludes: ["voice 'robot' is not known", 'alloy, ash, ballad, coral, echo, fable, nova, onyx, sage, shimmer, verse', 'en_paul_neutral', '{"id": "...'] });
    assert.equal(res.json.error.param, 'voice');
    assert.equal(stack.allRequests().length, 0);
  });

  test('aac is a 400 naming the formats that work; nothing is sent', async () => {
    const res = await speech(stack, { model: 'tts-1', voice: 'alloy', input: 'x', response_format: 'aac' });
    assertOpenAiError(res, 400, { messageIncludes: ['aac', 'mp3, opus, flac, wav or pcm'] });
    assert.equal(res.json.error.param, 'response_format');
    assert.equal(stack.allRequests().length, 0);
  });

  test('bad input is a 400 from the proxy; Mistral\'s refusals come back in OpenAI\'s shape', async () => {
    for (const body of [{ model: 'tts-1', voice: 'alloy' }, { model: 'tts-1', input: 'x' }, { voice: 'alloy', input: 'x' },
      { model: 'tts-1', voice: 'alloy', input: 'x', stream_format: 'chunks' }, '{"model":"tts-1"']) {
      const res = await speech(stack, body);
      assertOpenAiError(res, 400);
    }
    assert.equal(stack.allRequests().length, 0);
    // A voice id Mistral does not have: its 404, translated.
    const missing = await speech(stack, { model: 'tts-1', voice: { id: 'nobody' }, input: 'x' });
    assertOpenAiError(missing, 404, { messageIncludes: 'Voice nobody not found' });
    // A model Mistral does not know: its 400.
    stack.reset();
    const unknown = await speech(stack, { model: 'no-such-tts', voice: 'alloy', input: 'x' });
    assertOpenAiError(unknown, 400, { messageIncludes: 'no-such-tts' });
  });

  test('stream_format sse: OpenAI\'s speech.audio.delta events carry the audio, speech.audio.done the usage', async () => {
    const input = 'Streamed as events.';
    const res = await speech(stack, { model: 'tts-1', voice: 'nova', input, stream_format: 'sse', response_format: 'pcm' });
    assert.equal(res.status, 200, res.text);
    assert.match(res.headers['content-type'], /^text\/event-stream/);
    const sent = sentBody(stack.fakes.mistral);
    assert.deepEqual(sent, { model: TTS_MODEL, voice_id: 'gb_jane_curious', input, response_format: 'pcm', stream: true });
    const events = parseSse(res.text).map((e) => JSON.parse(e.data));
    assert.deepEqual(events.map((e) => e.type), ['speech.audio.delta', 'speech.audio.delta', 'speech.audio.delta', 'speech.audio.done']);
    for (const event of events) assertOpenAIShape('CreateSpeechResponseStreamEvent', event);
    const audio = Buffer.concat(events.slice(0, -1).map((e) => Buffer.from(e.audio, 'base64')));
    assert.deepEqual(audio, speechAudioFor(sent));
    const { usage } = events.at(-1);
    assert.equal(usage.total_tokens, usage.input_tokens + usage.output_tokens);
    assert.ok(usage.input_tokens > 0 && usage.output_tokens > 0);
  });

  test('Mistral answering whole ({audio_data}) is decoded too, bytes or events', async () => {
    stack.fakes.mistral.injectFault({ kind: 'status', status: 200, body: { audio_data: 'AAEC/w==' } });
    let res = await speech(stack, { model: 'tts-1', voice: 'alloy', input: 'x', response_format: 'wav' });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['content-type'], 'audio/wav');
    assert.deepEqual(res.bytes, Buffer.from([0, 1, 2, 255]));
    stack.fakes.mistral.injectFault({ kind: 'status', status: 200, body: { audio_data: 'AAEC/w==' } });
    res = await speech(stack, { model: 'tts-1', voice: 'alloy', input: 'x', stream_format: 'sse' });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(parseSse(res.text).map((e) => JSON.parse(e.data).type), ['speech.audio.delta', 'speech.audio.done']);
    // Not a speech answer: 502.
    stack.fakes.mistral.injectFault({ kind: 'status', status: 200, body: { something: 'else' } });
    res = await speech(stack, { model: 'tts-1', voice: 'alloy', input: 'x' });
    assertOpenAiError(res, 502);
  });

  test('Mistral breaking off mid-stream: the events end with an error, the bytes are cut short', async () => {
    stack.fakes.mistral.injectFault({ kind: 'reset_after', chunks: 1, path: '/v1/audio/speech' });
    const res = await speech(stack, { model: 'tts-1', voice: 'alloy', input: 'Cut short.', stream_format: 'sse' });
    assert.equal(res.status, 200);
    const events = parseSse(res.text).map((e) => JSON.parse(e.data));
    assert.equal(events[0].type, 'speech.audio.delta');
    assert.ok(events.at(-1).error, res.text);

    // The audio bytes cannot carry an error: the answer ends without its last
    // chunk, so the client sees a broken body, never a short file.
    stack.reset();
    stack.fakes.mistral.injectFault({ kind: 'reset_after', chunks: 1, path: '/v1/audio/speech' });
    const url = new URL(`${stack.proxy.baseURL}/audio/speech`);
    const outcome = await new Promise((resolve) => {
      const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, agent: false }, (response) => {
        const parts = [];
        response.on('data', (c) => parts.push(c));
        response.on('end', () => resolve({ complete: true, status: response.statusCode, bytes: Buffer.concat(parts) }));
        response.on('error', () => resolve({ complete: false, status: response.statusCode, bytes: Buffer.concat(parts) }));
        response.on('aborted', () => resolve({ complete: false, status: response.statusCode, bytes: Buffer.concat(parts) }));
      });
      req.on('error', () => resolve({ complete: false }));
      req.end(JSON.stringify({ model: 'tts-1', voice: 'alloy', input: 'Cut short.' }));
    });
    assert.equal(outcome.complete, false, 'the cut answer must not end like a whole one');
    assert.equal(outcome.status, 200);
    const whole = speechAudioFor(sentBody(stack.fakes.mistral));
    assert.ok(outcome.bytes.length < whole.length);
    assert.deepEqual(outcome.bytes, whole.subarray(0, outcome.bytes.length));
  });

  test('an error event in Mistral\'s stream: OpenAI\'s error event, or the bytes cut short', async () => {
    const stream = 'event: speech.audio.delta\ndata: {"type":"speech.audio.delta","audio_data":"AAEC"}\n\n'
      + 'event: error\ndata: {"object":"error","message":"Service tier capacity exceeded for this model.","type":"service_tier_capacity_exceeded","param":null,"code":"3505"}\n\n';
    const fault = { kind: 'status', status: 200, contentType: 'text/event-stream', body: stream, path: '/v1/audio/speech' };
    stack.fakes.mistral.injectFault(fault);
    const res = await speech(stack, { model: 'tts-1', voice: 'alloy', input: 'x', stream_format: 'sse' });
    const events = parseSse(res.text).map((e) => JSON.parse(e.data));
    assert.deepEqual(events[0], { type: 'speech.audio.delta', audio: 'AAEC' });
    assert.match(events.at(-1).error.message, /Service tier capacity exceeded/);

    stack.fakes.mistral.injectFault(fault);
    await assert.rejects(speech(stack, { model: 'tts-1', voice: 'alloy', input: 'x' }), /aborted|ECONNRESET|socket hang up/, 'the cut answer must not end like a whole one');
  });

  test('counted under endpoint="audio_speech" in /metrics', async () => {
    const res = await speech(stack, { model: 'tts-1', voice: 'alloy', input: 'count me' });
    assert.equal(res.status, 200, res.text);
    const metrics = await request(`${stack.proxy.url}/metrics`);
    assert.match(metrics.text, /mistral_proxy_requests_total\{endpoint="audio_speech",upstream="mistral",status="200"\} [1-9]/);
  });
});

describe('explain', () => {
  test('prints the Mistral speech body and URL', async () => {
    const r = await runCli(['explain', '--config', stack.proxy.configFile, '--endpoint', '/v1/audio/speech', '-'], {
      input: JSON.stringify({ model: 'tts-1', voice: 'shimmer', input: 'hi', speed: 2 }),
    });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.upstream, 'mistral');
    assert.equal(out.url, `${stack.fakes.mistral.url}/audio/speech`);
    assert.deepEqual(out.rules, ['model_alias', 'params']);
    assert.deepEqual(out.body, { model: TTS_MODEL, voice_id: 'gb_jane_neutral', input: 'hi', stream: true });
  });
});

describe('region eu', () => {
  let eu;
  before(async () => {
    eu = await startStack({ proxy: { region: 'eu', eu_strict: true } });
  });
  after(async () => {
    await eu?.stop();
  });

  test('goes to the EU host', async () => {
    const res = await speech(eu, { model: 'tts-1', voice: 'sage', input: 'bonjour' });
    assert.equal(res.status, 200, res.text);
    assertProxyHeaders(res, 'mistral_eu');
    assert.deepEqual(res.bytes, audioFor(eu.fakes.mistral_eu));
    assert.equal(eu.fakes.mistral.requests.length, 0);
  });
});

describe('the official openai SDK', () => {
  let client;
  const checkedFetch = openaiCheckingFetch();
  before(() => {
    client = new OpenAI({ apiKey: 'sk-client-side-anything', baseURL: stack.proxy.baseURL, maxRetries: 0, timeout: 20_000, fetch: checkedFetch });
  });
  afterEach(() => checkedFetch.assertClean());

  test('audio.speech.create to a buffer: the fake\'s audio, byte for byte', async () => {
    const response = await client.audio.speech.create({ model: 'tts-1', voice: 'alloy', input: 'The quick brown fox jumps over the lazy dog.' });
    assert.equal(response.headers.get('content-type'), 'audio/mpeg');
    const buffer = Buffer.from(await response.arrayBuffer());
    assert.deepEqual(buffer, audioFor(stack.fakes.mistral));
  });

  test('audio.speech.create in each response_format', async () => {
    for (const [format, type] of Object.entries(CONTENT_TYPES)) {
      stack.reset();
      const response = await client.audio.speech.create({ model: 'gpt-4o-mini-tts', voice: 'verse', input: `Format ${format}.`, response_format: format, instructions: 'Cheerfully.' });
      assert.equal(response.headers.get('content-type'), type);
      assert.equal(response.headers.get('x-mistral-proxy-rules'), 'model_alias,params');
      assert.deepEqual(Buffer.from(await response.arrayBuffer()), audioFor(stack.fakes.mistral));
    }
  });

  test('stream_format sse: the SDK\'s SSE stream yields OpenAI\'s events', async () => {
    const response = await client.audio.speech.create({ model: 'gpt-4o-mini-tts', voice: 'ballad', input: 'Events, please.', stream_format: 'sse' });
    assert.match(response.headers.get('content-type'), /^text\/event-stream/);
    const events = [];
    for await (const event of Stream.fromSSEResponse(response, new AbortController())) events.push(event);
    assert.deepEqual(events.map((e) => e.type), ['speech.audio.delta', 'speech.audio.delta', 'speech.audio.delta', 'speech.audio.done']);
    const audio = Buffer.concat(events.filter((e) => e.type === 'speech.audio.delta').map((e) => Buffer.from(e.audio, 'base64')));
    assert.deepEqual(audio, audioFor(stack.fakes.mistral));
    assert.deepEqual(Object.keys(events.at(-1).usage).sort(), ['input_tokens', 'output_tokens', 'total_tokens']);
  });

  test('an unknown voice and aac: BadRequestError', async () => {
    await assert.rejects(
      client.audio.speech.create({ model: 'tts-1', voice: 'robot', input: 'x' }),
      (error) => error instanceof OpenAI.BadRequestError && error.param === 'voice' && /alloy, ash/.test(error.message),
    );
    await assert.rejects(
      client.audio.speech.create({ model: 'tts-1', voice: 'alloy', input: 'x', response_format: 'aac' }),
      (error) => error instanceof OpenAI.BadRequestError && error.param === 'response_format' && /mp3, opus, flac, wav or pcm/.test(error.message),
    );
    assert.equal(stack.allRequests().length, 0);
  });
});
