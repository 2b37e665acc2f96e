// The Vercel AI SDK (`ai` + `@ai-sdk/openai`), unchanged, pointed at the proxy. Its
// default model, `openai('gpt-4o')`, speaks OpenAI's Responses API (only
// `openai.chat(...)` speaks chat completions): the first thing a new user of the AI
// SDK tries. Every answer is checked against OpenAI's schemas (openaiCheckingFetch).
import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { generateText, streamText, tool, stepCountIs } from 'ai';
import { createOpenAI } from '@ai-sdk/openai';
import { z } from 'zod';
import { startStack } from '../support/stack.mjs';
import { openaiCheckingFetch } from '../support/openai-validate.mjs';

let stack;
let openai;
const checkedFetch = openaiCheckingFetch();
// What the AI SDK sent to the proxy: method and path of each request, and its body.
const sent = [];
const recordingFetch = async (input, init = {}) => {
  const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
  sent.push({ method: (init.method ?? 'GET').toUpperCase(), path: url.pathname, body: typeof init.body === 'string' ? JSON.parse(init.body) : undefined });
  return checkedFetch(input, init);
};
afterEach(() => checkedFetch.assertClean());

before(async () => {
  stack = await startStack();
  openai = createOpenAI({ baseURL: stack.proxy.baseURL, apiKey: 'x', fetch: recordingFetch });
});
after(async () => {
  await stack?.stop();
});
beforeEach(() => {
  stack.reset();
  sent.length = 0;
});

const upstreamBodies = () => stack.fakes.mistral.requests.filter((r) => r.path === '/v1/chat/completions').map((r) => JSON.parse(r.body));
const conversation = (body) =>
  body.messages.map((m) => {
    const text = typeof m.content === 'string' ? m.content : Array.isArray(m.content) ? m.content.map((p) => p.text ?? '').join('') : '';
    if (m.role === 'tool') return `tool: ${text}`;
    return m.tool_calls?.length ? `${m.role}: ${text}[calls ${m.tool_calls.map((c) => c.function.name).join(',')}]` : `${m.role}: ${text}`;
  });

test('generateText with the default openai(\'gpt-4o\') model goes through /v1/responses', async () => {
  const result = await generateText({ model: openai('gpt-4o'), system: 'Be brief.', prompt: 'hello from the AI SDK' });
  assert.equal(result.text, 'echo: hello from the AI SDK');
  assert.equal(result.finishReason, 'stop');
  assert.ok(result.usage.inputTokens > 0);
  assert.ok(result.usage.outputTokens > 0);
  assert.match(result.response.id, /^resp_/);
  assert.deepEqual(sent.map((r) => `${r.method} ${r.path}`), ['POST /v1/responses']);
  assert.equal(sent[0].body.model, 'gpt-4o');
  const bodies = upstreamBodies();
  assert.equal(bodies.length, 1);
  assert.equal(bodies[0].model, 'mistral-large-latest');
  assert.deepEqual(conversation(bodies[0]), ['system: Be brief.', 'user: hello from the AI SDK']);
});

test('streamText: the text stream adds up to the answer', async () => {
  stack.fakes.mistral.setStream({ chunks: 5, intervalMs: 0 });
  const result = streamText({ model: openai('gpt-4o'), prompt: 'stream through the AI SDK' });
  const pieces = [];
  for await (const piece of result.textStream) pieces.push(piece);
  assert.equal(pieces.join(''), 'echo: stream through the AI SDK');
  assert.ok(pieces.length >= 2, `${pieces.length} pieces: streamed, not buffered`);
  assert.equal(await result.finishReason, 'stop');
  assert.ok((await result.usage).outputTokens > 0);
  assert.deepEqual(sent.map((r) => `${r.method} ${r.path}`), ['POST /v1/responses']);
  assert.equal(sent[0].body.stream, true);
  assert.equal(upstreamBodies()[0].stream, true);
});

test('a tool with execute: two steps, the tool runs, the final text answers its result', async () => {
  const calls = [];
  const lookup = tool({
    description: 'Looks a thing up',
    inputSchema: z.object({ text: z.string() }),
    execute: async ({ text }) => {
      calls.push(text);
      return `found ${text.length} letters`;
    },
  });
  const result = await generateText({ model: openai('gpt-4o'), prompt: 'call lookup on this', tools: { lookup }, stopWhen: stepCountIs(2) });
  assert.deepEqual(calls, ['call lookup on this']);
  assert.equal(result.steps.length, 2);
  assert.equal(result.steps[0].finishReason, 'tool-calls');
  assert.equal(result.text, 'tool result: found 19 letters');
  assert.equal(result.finishReason, 'stop');
  assert.deepEqual(sent.map((r) => `${r.method} ${r.path}`), ['POST /v1/responses', 'POST /v1/responses']);
  // The second step carries the call and its output.
  const types = sent[1].body.input.map((item) => item.type ?? `message:${item.role}`);
  assert.ok(types.includes('function_call_output'), types.join(','));
  const bodies = upstreamBodies();
  assert.deepEqual(conversation(bodies[1]), ['user: call lookup on this', 'assistant: [calls lookup]', 'tool: found 19 letters']);
});

test('a tool in streamText runs over two streamed steps', async () => {
  const calls = [];
  const result = streamText({
    model: openai('gpt-4o'),
    prompt: 'call it while streaming',
    tools: {
      lookup: tool({
        description: 'Looks a thing up',
        inputSchema: z.object({ text: z.string() }),
        execute: async ({ text }) => {
          calls.push(text);
          return 'streamed result';
        },
      }),
    },
    stopWhen: stepCountIs(2),
  });
  let text = '';
  for await (const piece of result.textStream) text += piece;
  assert.equal(text, 'tool result: streamed result');
  assert.deepEqual(calls, ['call it while streaming']);
  assert.equal((await result.steps).length, 2);
});

test('a later turn sends earlier assistant turns as item_reference; the proxy resolves them from the store', async () => {
  const model = openai('gpt-4o');
  const first = await generateText({ model, prompt: 'first turn' });
  assert.equal(first.text, 'echo: first turn');
  const messages = [{ role: 'user', content: 'first turn' }, ...first.response.messages, { role: 'user', content: 'second turn' }];
  const second = await generateText({ model, messages });
  assert.equal(second.text, 'echo: second turn');

  const input = sent[1].body.input;
  const references = input.filter((item) => item.type === 'item_reference');
  assert.equal(references.length, 1, `the AI SDK sent no item_reference: ${JSON.stringify(input)}`);
  assert.match(references[0].id, /^msg_/);
  assert.equal(references[0].id, first.response.body.output.find((item) => item.type === 'message').id, 'the id of the first answer\'s message item');
  // Mistral sees the text the reference stands for, in its place.
  assert.deepEqual(conversation(upstreamBodies()[1]), ['user: first turn', 'assistant: echo: first turn', 'user: second turn']);

  // A multi-step tool run continued the same way: call, output, answer, then a new turn.
  const run = await generateText({
    model,
    prompt: 'call the tool please',
    tools: { lookup: tool({ description: 'Looks a thing up', inputSchema: z.object({ text: z.string() }), execute: async () => 'ok' }) },
    stopWhen: stepCountIs(2),
  });
  assert.equal(run.text, 'tool result: ok');
  sent.length = 0;
  const more = await generateText({
    model,
    messages: [{ role: 'user', content: 'call the tool please' }, ...run.response.messages, { role: 'user', content: 'thanks' }],
    tools: { lookup: tool({ description: 'Looks a thing up', inputSchema: z.object({ text: z.string() }), execute: async () => 'unused' }) },
  });
  assert.equal(more.text, 'echo: thanks');
  assert.ok(sent[0].body.input.some((item) => item.type === 'item_reference'), JSON.stringify(sent[0].body.input));
  assert.deepEqual(conversation(upstreamBodies().at(-1)), ['user: call the tool please', 'assistant: [calls lookup]', 'tool: ok', 'assistant: tool result: ok', 'user: thanks']);
});

test('with store: false, earlier assistant turns travel as whole message items (with their ids)', async () => {
  const model = openai('gpt-4o');
  const providerOptions = { openai: { store: false } };
  const first = await generateText({ model, prompt: 'unstored turn', providerOptions });
  const second = await generateText({ model, messages: [{ role: 'user', content: 'unstored turn' }, ...first.response.messages, { role: 'user', content: 'next' }], providerOptions });
  assert.equal(second.text, 'echo: next');
  assert.equal(sent[1].body.store, false);
  const assistant = sent[1].body.input.find((item) => item.role === 'assistant');
  assert.ok(assistant, JSON.stringify(sent[1].body.input));
  assert.ok(!sent[1].body.input.some((item) => item.type === 'item_reference'));
  assert.deepEqual(conversation(upstreamBodies()[1]), ['user: unstored turn', 'assistant: echo: unstored turn', 'user: next']);
});

test('the previousResponseId provider option continues a stored response', async () => {
  const model = openai('gpt-4o');
  const first = await generateText({ model, prompt: 'remember this' });
  const second = await generateText({ model, prompt: 'and this', providerOptions: { openai: { previousResponseId: first.providerMetadata.openai.responseId } } });
  assert.equal(second.text, 'echo: and this');
  assert.equal(sent[1].body.previous_response_id, first.response.id);
  assert.deepEqual(conversation(upstreamBodies()[1]), ['user: remember this', 'assistant: echo: remember this', 'user: and this']);
});

test('a Mistral error in the middle of streamText: an error part and finishReason error, no hang', async () => {
  stack.fakes.mistral.setStream({ chunks: 6, intervalMs: 0 });
  stack.fakes.mistral.injectFault({ kind: 'reset_after', chunks: 2 });
  const errors = [];
  const result = streamText({ model: openai('gpt-4o'), prompt: 'cut me off', onError: ({ error }) => errors.push(error) });
  const parts = [];
  for await (const part of result.fullStream) parts.push(part);
  const errorPart = parts.find((p) => p.type === 'error');
  assert.ok(errorPart, parts.map((p) => p.type).join(' '));
  assert.match(String(errorPart.error?.message ?? JSON.stringify(errorPart.error)), /mistral/i);
  assert.equal(await result.finishReason, 'error');
  assert.equal(errors.length, 1);
  stack.fakes.mistral.setStream({ chunks: 5, intervalMs: 0 });
});

test('openai.chat(...) still speaks chat completions', async () => {
  const result = await generateText({ model: openai.chat('gpt-4o'), prompt: 'the chat model' });
  assert.equal(result.text, 'echo: the chat model');
  assert.deepEqual(sent.map((r) => `${r.method} ${r.path}`), ['POST /v1/chat/completions']);
});
