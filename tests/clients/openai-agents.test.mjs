// The OpenAI Agents SDK (`@openai/agents`), unchanged, pointed at the proxy through
// its default OpenAI client: an agent with one function tool runs to completion over
// the Responses API. Every answer is checked against OpenAI's schemas.
import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { Agent, run, tool, setDefaultOpenAIClient, setTracingDisabled, setOpenAIAPI } from '@openai/agents';
import { z } from 'zod';
import { startStack } from '../support/stack.mjs';
import { openaiCheckingFetch } from '../support/openai-validate.mjs';

let stack;
const checkedFetch = openaiCheckingFetch();
const sent = [];
const recordingFetch = async (input, init = {}) => {
  const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
  sent.push({ method: (init.method ?? 'GET').toUpperCase(), path: url.pathname, body: typeof init.body === 'string' ? JSON.parse(init.body) : undefined });
  return checkedFetch(input, init);
};
afterEach(() => checkedFetch.assertClean());

before(async () => {
  stack = await startStack();
  // Traces would go to OpenAI's own servers: off, as anyone using another provider does.
  setTracingDisabled(true);
  setOpenAIAPI('responses'); // the default; said so that a change of default shows here
  setDefaultOpenAIClient(new OpenAI({ baseURL: stack.proxy.baseURL, apiKey: 'x', maxRetries: 0, timeout: 20_000, fetch: recordingFetch }));
});
after(async () => {
  await stack?.stop();
});
beforeEach(() => {
  stack.reset();
  sent.length = 0;
});

const upstreamBodies = () => stack.fakes.mistral.requests.filter((r) => r.path === '/v1/chat/completions').map((r) => JSON.parse(r.body));

function makeAgent(calls) {
  const lookup = tool({
    name: 'lookup',
    description: 'Looks a thing up',
    parameters: z.object({ text: z.string() }),
    execute: async ({ text }) => {
      calls.push(text);
      return `looked up ${text.split(' ').length} words`;
    },
  });
  return new Agent({ name: 'Looker', instructions: 'Use the lookup tool when asked.', model: 'gpt-4o', tools: [lookup] });
}

test('an agent with one function tool runs to completion through /v1/responses', async () => {
  const calls = [];
  const result = await run(makeAgent(calls), 'call lookup for me');
  assert.deepEqual(calls, ['call lookup for me'], 'the tool ran once, with the arguments the model gave');
  assert.equal(result.finalOutput, 'tool result: looked up 4 words');
  assert.deepEqual(sent.map((r) => `${r.method} ${r.path}`), ['POST /v1/responses', 'POST /v1/responses']);
  assert.equal(sent[0].body.tools[0].name, 'lookup');
  const outputs = sent[1].body.input.filter((item) => item.type === 'function_call_output');
  assert.equal(outputs.length, 1, JSON.stringify(sent[1].body.input));

  const bodies = upstreamBodies();
  assert.equal(bodies.length, 2);
  assert.equal(bodies[0].model, 'mistral-large-latest');
  assert.equal(bodies[0].messages[0].role, 'system');
  assert.equal(bodies[0].messages[0].content, 'Use the lookup tool when asked.');
  assert.equal(bodies[0].tools[0].function.name, 'lookup');
  const roles = bodies[1].messages.map((m) => m.role);
  assert.deepEqual(roles, ['system', 'user', 'assistant', 'tool']);
  assert.equal(bodies[1].messages[3].tool_call_id, bodies[1].messages[2].tool_calls[0].id);
});

test('the same agent, streamed', async () => {
  const calls = [];
  const result = await run(makeAgent(calls), 'call lookup while streaming', { stream: true });
  const types = [];
  for await (const event of result) types.push(event.type === 'run_item_stream_event' ? `item:${event.name}` : event.type);
  await result.completed;
  assert.deepEqual(calls, ['call lookup while streaming']);
  assert.equal(result.finalOutput, 'tool result: looked up 4 words');
  assert.ok(types.includes('item:tool_called'), types.join(' '));
  assert.ok(types.includes('item:tool_output'), types.join(' '));
  assert.ok(types.includes('item:message_output_created'), types.join(' '));
  assert.deepEqual(sent.map((r) => r.body.stream), [true, true]);
});

test('a second run continues the first with previousResponseId', async () => {
  const agent = new Agent({ name: 'Plain', instructions: 'Answer.', model: 'gpt-4o' });
  const first = await run(agent, 'first question');
  assert.match(first.lastResponseId, /^resp_/);
  const second = await run(agent, 'second question', { previousResponseId: first.lastResponseId });
  assert.equal(second.finalOutput, 'echo: second question');
  assert.equal(sent[1].body.previous_response_id, first.lastResponseId);
  const text = (m) => (typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join(''));
  assert.deepEqual(upstreamBodies()[1].messages.map((m) => `${m.role}: ${text(m)}`), ['system: Answer.', 'user: first question', 'assistant: echo: first question', 'user: second question']);
});

test('a Mistral error in the middle of a streamed run fails the run (the partial text is not an answer)', async () => {
  stack.fakes.mistral.setStream({ chunks: 6, intervalMs: 0 });
  stack.fakes.mistral.injectFault({ kind: 'reset_after', chunks: 2 });
  const agent = new Agent({ name: 'Plain', instructions: 'Answer.', model: 'gpt-4o' });
  const outcome = await (async () => {
    const result = await run(agent, 'cut me off', { stream: true });
    for await (const event of result) void event;
    await result.completed;
    return { finalOutput: result.finalOutput, error: result.error };
  })().then(
    (resolved) => resolved,
    (rejected) => ({ rejected }),
  );
  assert.ok(outcome.rejected || outcome.error, `the run completed with ${JSON.stringify(outcome.finalOutput)}`);
  const error = outcome.rejected ?? outcome.error;
  assert.match(String(error.message), /mistral/i);
  assert.equal(sent.length, 1, 'no silent retry of the turn');
  stack.fakes.mistral.setStream({ chunks: 5, intervalMs: 0 });
});

test('an agent without tools answers in one turn', async () => {
  const agent = new Agent({ name: 'Plain', instructions: 'Answer.', model: 'gpt-4o' });
  const result = await run(agent, 'just answer');
  assert.equal(result.finalOutput, 'echo: just answer');
  assert.equal(sent.length, 1);
});
