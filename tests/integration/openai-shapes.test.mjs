// Answers in the sparse shapes Mistral's schemas allow (no role, no content,
// "tool_calls": null, thinking chunks, arguments as an object, placeholder ids, an
// alias whose model the upstream does not list) still reach the client in OpenAI's
// shape: http.mjs checks each answer against OpenAI's schema (openai-validate.mjs),
// and the members strictly typed clients read are asserted here by name.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startStack } from '../support/stack.mjs';
import { rulesFile } from '../support/proxy.mjs';
import { request, postJson, openStream, chatBody } from '../support/http.mjs';
import { assertOpenAIShape } from '../support/openai-validate.mjs';

let stack;
let dir;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mp-openai-shapes-'));
  const extra = join(dir, 'aliases.yaml');
  // An alias to a model the fake does not list: its card is synthesized.
  await writeFile(extra, 'model_alias:\n  "house-model": "mistral-house-2999"\n');
  stack = await startStack({ proxy: { rules: [rulesFile, extra] } });
});
after(async () => {
  await stack?.stop();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => stack.reset());

const mistralAnswer = (choices) => ({
  id: 'a1b2c3', object: 'chat.completion', created: 1_700_000_000, model: 'mistral-small-latest', choices,
  usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5, prompt_audio_seconds: null },
});
const answerWith = (body) => stack.fakes.mistral.injectFault({ kind: 'status', status: 200, body, path: '/v1/chat/completions' });

test('whole chat answers: logprobs and refusal added, role/content filled in, tool_calls null dropped', async () => {
  const cases = [
    { role: 'assistant', content: 'Hi', tool_calls: null, prefix: false },
    {},
    { content: [{ type: 'thinking', thinking: [{ type: 'text', text: 'hmm' }] }, { type: 'text', text: '42' }] },
    { role: 'assistant', content: '', tool_calls: [{ id: 'null', function: { name: 'f', arguments: { a: 1 } }, index: 0 }] },
  ];
  for (const message of cases) {
    answerWith(mistralAnswer([{ index: 0, message, finish_reason: message.tool_calls ? 'tool_calls' : 'stop' }]));
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('hi'));
    assert.equal(res.status, 200, res.text);
    const [choice] = res.json.choices;
    assert.equal(choice.logprobs, null, res.text);
    assert.equal(choice.message.refusal, null, res.text);
    assert.equal(choice.message.role, 'assistant', res.text);
    assert.ok('content' in choice.message, res.text);
    assert.notEqual(choice.message.tool_calls, null, res.text);
  }
  // A choice Mistral sent without a message still has one.
  answerWith(mistralAnswer([{ index: 0, finish_reason: 'stop' }]));
  const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('hi'));
  assert.deepEqual(res.json.choices[0].message, { role: 'assistant', content: null, refusal: null });
});

test('streamed chat in Mistral\'s sparse form: every chunk is an OpenAI chunk', async () => {
  const head = { id: 'a1b2c3', object: 'chat.completion.chunk', created: 1_700_000_000, model: 'mistral-small-latest' };
  const events = [
    { ...head, choices: [{ index: 0, delta: { role: null, content: '', tool_calls: null }, finish_reason: null }] },
    { ...head, choices: [{ index: 0, delta: { content: [{ type: 'thinking', thinking: [{ type: 'text', text: 'x' }] }] }, finish_reason: null }] },
    { ...head, choices: [{ index: 0, delta: { tool_calls: [{ id: 'null', function: { name: 'f', arguments: { a: 1 } } }] }, finish_reason: 'tool_calls' }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } },
  ];
  const sse = `${events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join('')}data: [DONE]\n\n`;
  stack.fakes.mistral.injectFault({ kind: 'status', status: 200, contentType: 'text/event-stream', body: sse, path: '/v1/chat/completions' });
  const s = await openStream(`${stack.proxy.baseURL}/chat/completions`, chatBody('hi', { stream: true, tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }] }));
  assert.equal(s.status, 200);
  const { events: got, ended } = await s.done; // rejects on a chunk that is not OpenAI's
  assert.ok(ended);
  assert.equal(got.at(-1).data, '[DONE]');
  const chunks = got.filter((e) => e.data !== '[DONE]').map((e) => JSON.parse(e.data));
  assert.equal(chunks.length, 3);
  for (const chunk of chunks) assert.ok(!JSON.stringify(chunk).includes('"tool_calls":null'), JSON.stringify(chunk));
  const [call] = chunks[2].choices[0].delta.tool_calls;
  assert.equal(call.index, 0);
  assert.equal(call.type, 'function');
  assert.equal(typeof call.function.arguments, 'string');
});

test('an alias whose model the upstream does not list: its synthesized card in the list is an OpenAI model', async () => {
  const list = await request(`${stack.proxy.baseURL}/models`);
  assert.equal(list.status, 200, list.text);
  const card = list.json.data.find((m) => m.id === 'house-model');
  assert.ok(card, `no house-model in ${list.text.slice(0, 300)}`);
  assertOpenAIShape('Model', card);
  assert.equal(card.owned_by, 'mistral-proxy');
  // GET /v1/models/house-model asks upstream for mistral-house-2999; its 404 is
  // passed on (an OpenAI error body, checked by request()).
  const one = await request(`${stack.proxy.baseURL}/models/house-model`);
  assert.ok(one.status === 404 || one.status === 200, one.text);
  if (one.status === 200) assertOpenAIShape('Model', one.json);
});
