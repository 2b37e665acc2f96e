// The official `openai` npm package, unchanged, pointed at the proxy: what users do.
import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startStack } from '../support/stack.mjs';
import { openaiCheckingFetch } from '../support/openai-validate.mjs';
import { embeddingFor, chatAnswerText } from '../fake-mistral/fake-mistral.mjs';

let stack;
let client;
// Every answer the SDK gets is checked against OpenAI's schemas (tests/support/openai-validate.mjs).
const checkedFetch = openaiCheckingFetch();
afterEach(() => checkedFetch.assertClean());

before(async () => {
  stack = await startStack();
  // maxRetries 0: the SDK's own retries must not hide what the proxy answered.
  client = new OpenAI({ apiKey: 'sk-client-side-anything', baseURL: stack.proxy.baseURL, maxRetries: 0, timeout: 20_000, fetch: checkedFetch });
});
after(async () => {
  await stack?.stop();
});
beforeEach(() => stack.reset());

const messages = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Say hello to the proxy' },
];

test('chat.completions.create, not streamed', async () => {
  const completion = await client.chat.completions.create({ model: 'mistral-small-latest', messages });
  assert.equal(completion.object, 'chat.completion');
  assert.equal(completion.choices[0].message.role, 'assistant');
  assert.equal(completion.choices[0].message.content, chatAnswerText({ messages }));
  assert.equal(completion.choices[0].finish_reason, 'stop');
  assert.ok(completion.usage.total_tokens > 0);
  assert.equal(stack.fakes.mistral.requests.length, 1);
});

test('chat.completions.create, not streamed, withResponse shows the proxy headers', async () => {
  const { data, response } = await client.chat.completions.create({ model: 'mistral-small-latest', messages }).withResponse();
  assert.equal(data.choices[0].message.content, chatAnswerText({ messages }));
  assert.ok(response.headers.get('x-request-id'));
  assert.equal(response.headers.get('x-mistral-proxy-upstream'), 'mistral');
});

test('chat.completions.create with stream: true — the deltas add up to the fake\'s text', async () => {
  stack.fakes.mistral.setStream({ chunks: 7, intervalMs: 2 });
  const stream = await client.chat.completions.create({ model: 'mistral-small-latest', messages, stream: true });
  let text = '';
  let chunks = 0;
  let finish = null;
  for await (const chunk of stream) {
    chunks += 1;
    const choice = chunk.choices[0];
    text += choice?.delta?.content ?? '';
    if (choice?.finish_reason) finish = choice.finish_reason;
  }
  assert.equal(text, chatAnswerText({ messages }));
  assert.equal(finish, 'stop');
  assert.ok(chunks >= 7, `${chunks} chunks`);
});

test('the SDK\'s stream helper (.stream / finalChatCompletion) works through the proxy', async () => {
  const runner = client.chat.completions.stream({ model: 'mistral-small-latest', messages });
  const final = await runner.finalChatCompletion();
  assert.equal(final.choices[0].message.content, chatAnswerText({ messages }));
});

test('embeddings.create with encoding_format float equals the fake\'s floats', async () => {
  const inputs = ['first sentence', 'second sentence'];
  const res = await client.embeddings.create({ model: 'mistral-embed', input: inputs, encoding_format: 'float' });
  assert.equal(res.data.length, 2);
  assert.deepEqual(res.data[0].embedding, embeddingFor(inputs[0]));
  assert.deepEqual(res.data[1].embedding, embeddingFor(inputs[1]));
});

test('embeddings.create with the SDK default (base64 on the wire) decodes to the same floats', async () => {
  const res = await client.embeddings.create({ model: 'mistral-embed', input: 'default encoding' });
  assert.deepEqual(res.data[0].embedding, embeddingFor('default encoding'));
});

test('models.list through the proxy', async () => {
  const ids = [];
  for await (const model of client.models.list()) ids.push(model.id);
  assert.ok(ids.includes('mistral-large-latest'), ids.join(','));
});

test('a Mistral 400 shows its message in the SDK error, not "(no body)"', async () => {
  stack.fakes.mistral.injectFault({ kind: 'status', status: 400, body: { object: 'error', message: 'Invalid model: mistral-tiny', type: 'invalid_model', param: null, code: '1500' } });
  const err = await client.chat.completions.create({ model: 'mistral-small-latest', messages }).then(
    () => assert.fail('expected an error'),
    (e) => e,
  );
  assert.ok(err instanceof OpenAI.APIError, `not an APIError: ${err}`);
  assert.ok(err instanceof OpenAI.BadRequestError, `not a BadRequestError: ${err.constructor.name}`);
  assert.equal(err.status, 400);
  assert.ok(err.message.includes('Invalid model: mistral-tiny'), `SDK message: ${err.message}`);
  assert.ok(!/no body/.test(err.message), `SDK message: ${err.message}`);
  assert.equal(typeof err.error?.message, 'string');
});

test('a Mistral 422 on a streamed call shows its text in the SDK error', async () => {
  stack.fakes.mistral.injectFault({ kind: 'status', status: 422, body: { detail: [{ type: 'extra_forbidden', loc: ['body', 'store'], msg: 'Extra inputs are not permitted', input: true }] } });
  const err = await client.chat.completions.create({ model: 'mistral-small-latest', messages, stream: true }).then(
    () => assert.fail('expected an error'),
    (e) => e,
  );
  assert.equal(err.status, 422);
  assert.ok(err.message.includes('Extra inputs are not permitted'), `SDK message: ${err.message}`);
});

test('a 429 surfaces as RateLimitError with its text', async () => {
  stack.fakes.mistral.injectFault({ kind: 'status', status: 429 });
  const err = await client.chat.completions.create({ model: 'mistral-small-latest', messages }).then(
    () => assert.fail('expected an error'),
    (e) => e,
  );
  assert.ok(err instanceof OpenAI.RateLimitError, err.constructor.name);
  assert.ok(err.message.includes('Requests rate limit exceeded'), err.message);
});

test('an error in the middle of a stream reaches the SDK as an error', async () => {
  stack.fakes.mistral.injectFault({ kind: 'reset_after', chunks: 2 });
  const stream = await client.chat.completions.create({ model: 'mistral-small-latest', messages, stream: true });
  await assert.rejects(async () => {
    for await (const chunk of stream) void chunk;
  }, (e) => e instanceof Error);
});

// --- What OpenAI code sends as a matter of course (SPEC §6 makes Mistral accept it) ---

test('an OpenAI-flavoured streamed call (gpt-4o, developer role, max_completion_tokens, seed, user, store, stream_options) works', async () => {
  const stream = await client.chat.completions.create({
    model: 'gpt-4o',
    messages: [{ role: 'developer', content: 'Answer briefly.' }, { role: 'user', content: 'flavoured', name: 'alice' }],
    max_completion_tokens: 64,
    seed: 42,
    user: 'user-123',
    store: false,
    temperature: 1.8,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  assert.equal(text, 'echo: flavoured');
  const sent = JSON.parse(stack.fakes.mistral.requests[0].body);
  assert.equal(sent.model, 'mistral-large-latest');
});

const lookupTool = {
  type: 'function',
  function: { name: 'lookup', description: 'Looks a thing up', parameters: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] } },
};

test('tool calling round trip with tool_choice "required"', async () => {
  const first = await client.chat.completions.create({
    model: 'mistral-small-latest',
    messages: [{ role: 'user', content: 'find the answer' }],
    tools: [lookupTool],
    tool_choice: 'required',
  });
  const choice = first.choices[0];
  assert.equal(choice.finish_reason, 'tool_calls');
  const [call] = choice.message.tool_calls;
  assert.equal(call.function.name, 'lookup');
  assert.deepEqual(JSON.parse(call.function.arguments), { text: 'find the answer' });
  const second = await client.chat.completions.create({
    model: 'mistral-small-latest',
    messages: [
      { role: 'user', content: 'find the answer' },
      choice.message,
      { role: 'tool', tool_call_id: call.id, content: '42' },
    ],
    tools: [lookupTool],
  });
  assert.equal(second.choices[0].message.content, 'tool result: 42');
});

test('a conversation carrying OpenAI tool call ids (call_...) is accepted', async () => {
  const res = await client.chat.completions.create({
    model: 'mistral-small-latest',
    tools: [lookupTool],
    messages: [
      { role: 'user', content: 'look it up' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_9f8e7d6c5b4a3f2e1d0c', type: 'function', function: { name: 'lookup', arguments: '{"text":"it"}' } }] },
      { role: 'tool', tool_call_id: 'call_9f8e7d6c5b4a3f2e1d0c', content: 'found' },
      { role: 'user', content: 'thanks, and now?' },
    ],
  });
  assert.equal(res.choices[0].message.content, 'echo: thanks, and now?');
});

test('streamed tool calls reach the SDK\'s stream helper', async () => {
  const runner = client.chat.completions.stream({ model: 'mistral-small-latest', messages: [{ role: 'user', content: 'call lookup now' }], tools: [lookupTool] });
  const final = await runner.finalChatCompletion();
  const [call] = final.choices[0].message.tool_calls;
  assert.equal(call.function.name, 'lookup');
  assert.deepEqual(JSON.parse(call.function.arguments), { text: 'call lookup now' });
});

test('completions.create (legacy) with codestral is FIM', async () => {
  const res = await client.completions.create({ model: 'codestral-latest', prompt: 'def add(a, b):', suffix: '    return c', max_tokens: 32 });
  assert.equal(res.choices[0].text, 'fim: def add(a, b):|    return c');
  assert.equal(stack.fakes.codestral.requests[0].path, '/v1/fim/completions');
});

test('embeddings with an OpenAI model name and dimensions', async () => {
  const res = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'aliased', dimensions: 64, encoding_format: 'float' });
  assert.deepEqual(res.data[0].embedding, embeddingFor('aliased', 64));
});

test('models.retrieve', async () => {
  const model = await client.models.retrieve('mistral-large-latest');
  assert.equal(model.id, 'mistral-large-latest');
});
