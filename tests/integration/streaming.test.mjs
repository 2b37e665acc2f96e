// Streaming: SSE relayed event by event, never buffered; client aborts reach
// upstream; errors mid-stream end the stream cleanly; many streams at once.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startStack } from '../support/stack.mjs';
import { openStream, deltaText, assertProxyHeaders, chatBody, withTimeout } from '../support/http.mjs';

let stack;
let chatUrl;

before(async () => {
  stack = await startStack();
  chatUrl = `${stack.proxy.baseURL}/chat/completions`;
});
after(async () => {
  await stack?.stop();
});
beforeEach(() => {
  stack.reset();
  stack.fakes.mistral.setStream({ chunks: 5, intervalMs: 0 });
});

function parsed(events) {
  return events.filter((e) => e.data !== '[DONE]').map((e) => JSON.parse(e.data));
}

test('a stream is relayed whole: every chunk, finish_reason, usage, [DONE]', async () => {
  stack.fakes.mistral.setStream({ chunks: 6, intervalMs: 5 });
  const s = await openStream(chatUrl, chatBody('the quick brown fox', { stream: true }));
  assert.equal(s.status, 200);
  assertProxyHeaders(s, 'mistral');
  assert.match(s.headers['content-type'] ?? '', /^text\/event-stream/);
  const { events, ended } = await withTimeout(s.done, 10_000, 'stream end');
  assert.ok(ended, 'stream ended cleanly');
  assert.equal(events.at(-1).data, '[DONE]');
  assert.equal(deltaText(events), 'echo: the quick brown fox');
  const chunks = parsed(events);
  assert.equal(chunks.length, 1 + 6 + 1, `chunk count: ${events.map((e) => e.data).join(' | ')}`);
  for (const c of chunks) assert.equal(c.object, 'chat.completion.chunk');
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
  assert.ok(chunks.at(-1).usage?.total_tokens > 0, 'usage kept on the last chunk');
});

test('not buffered: the client has >= 3 events while the upstream holds its last chunk', async () => {
  const gate = stack.fakes.mistral.holdBeforeLastChunk();
  const s = await openStream(chatUrl, chatBody('hold on', { stream: true }));
  try {
    await withTimeout(gate.reachedHold, 5000, 'fake reached the hold');
    const early = await withTimeout(s.waitForEvents(3), 3000, 'three events before the upstream finished (is the proxy buffering?)');
    assert.ok(early.length >= 3);
    assert.ok(!early.some((e) => e.data === '[DONE]'));
  } finally {
    await gate.release();
  }
  const { events, ended } = await withTimeout(s.done, 5000, 'stream end after release');
  assert.ok(ended);
  assert.equal(deltaText(events), 'echo: hold on');
  assert.equal(events.at(-1).data, '[DONE]');
});

test('events are flushed as they come: arrival times follow the upstream pacing', async () => {
  stack.fakes.mistral.setStream({ chunks: 4, intervalMs: 150 });
  const s = await openStream(chatUrl, chatBody('paced', { stream: true }));
  const { events } = await withTimeout(s.done, 10_000, 'paced stream');
  const firstContent = events[1].at;
  const last = events.at(-1).at;
  assert.ok(last - firstContent >= 300, `events arrived together (spread ${last - firstContent} ms)`);
});

test('client abort: the upstream request is aborted within 1 s', async () => {
  stack.fakes.mistral.injectFault({ kind: 'slow', intervalMs: 100, chunks: 100 });
  const aborted = stack.fakes.mistral.nextAbort();
  const s = await openStream(chatUrl, chatBody('slow stream', { stream: true }));
  await withTimeout(s.waitForEvents(2), 5000, 'first events');
  const destroyedAt = Date.now();
  s.destroy();
  const event = await withTimeout(aborted, 1000, 'upstream saw the abort');
  assert.ok(event.at - destroyedAt <= 1000, `abort seen after ${event.at - destroyedAt} ms`);
  assert.equal(event.path, '/v1/chat/completions');
});

test('client abort before the upstream answered (hang): the upstream request is aborted too', async () => {
  stack.fakes.mistral.injectFault({ kind: 'hang' });
  const aborted = stack.fakes.mistral.nextAbort();
  const started = stack.fakes.mistral.nextRequest('/v1/chat/completions');
  const req = http.request(chatUrl, { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } });
  req.on('error', () => {});
  req.end(JSON.stringify(chatBody('never answered', { stream: true })));
  await withTimeout(started, 5000, 'upstream got the request');
  const destroyedAt = Date.now();
  req.destroy();
  const event = await withTimeout(aborted, 1000, 'upstream saw the abort');
  assert.ok(event.at - destroyedAt <= 1000);
});

test('upstream reset mid-stream: the client gets the events, then a data: {"error":...} event, then a clean end', async () => {
  stack.fakes.mistral.injectFault({ kind: 'reset_after', chunks: 3 });
  const s = await openStream(chatUrl, chatBody('cut short please', { stream: true }));
  assert.equal(s.status, 200);
  const { events, ended, leftover } = await withTimeout(s.done, 10_000, 'stream end');
  assert.ok(ended, 'the client stream ended cleanly (complete chunked encoding), not cut');
  assert.equal(leftover.trim(), '', `a partial event was left: ${JSON.stringify(leftover)}`);
  const last = events.at(-1);
  assert.ok(last, 'no events at all');
  let json;
  assert.doesNotThrow(() => (json = JSON.parse(last.data)), `last event is not JSON: ${last.data}`);
  assert.ok(json.error && typeof json.error.message === 'string' && json.error.message.length > 0, `last event is not an error: ${last.data}`);
  assert.equal(typeof json.error.type, 'string');
  assert.ok(!events.some((e) => e.data === '[DONE]'), 'no [DONE] after a failed stream');
  const before = events.slice(0, -1);
  assert.equal(before.length, 3, `the 3 events sent before the reset are relayed: ${before.map((e) => e.data).join(' | ')}`);
  assert.equal(stack.fakes.mistral.requests.length, 1, 'no retry once bytes reached the client');
});

test('100 concurrent streams all complete with their own content', async () => {
  stack.fakes.mistral.setStream({ chunks: 5, intervalMs: 5 });
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  try {
    const n = 100;
    const runs = Array.from({ length: n }, async (_, i) => {
      const s = await openStream(chatUrl, chatBody(`stream number ${i}`, { stream: true }), {}, { agent });
      const { events, ended } = await s.done;
      return { i, status: s.status, ended, text: deltaText(events), last: events.at(-1)?.data };
    });
    const results = await withTimeout(Promise.all(runs), 60_000, '100 streams');
    const bad = results.filter((r) => r.status !== 200 || !r.ended || r.text !== `echo: stream number ${r.i}` || r.last !== '[DONE]');
    assert.deepEqual(bad, [], `${bad.length} streams went wrong, e.g. ${JSON.stringify(bad[0])}`);
    assert.equal(stack.fakes.mistral.requests.length, n);
  } finally {
    agent.destroy();
  }
});
