// The official `openai` SDK's Responses API (client.responses.*), unchanged, pointed at
// the proxy: what OpenAI code written since 2025 sends. Every answer and stream event is
// checked against OpenAI's own schemas (openaiCheckingFetch), and every body the proxy
// sends on is checked against Mistral's by the fake.
import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startStack } from '../support/stack.mjs';
import { openaiCheckingFetch, sseData } from '../support/openai-validate.mjs';

let stack;
let client;
const checkedFetch = openaiCheckingFetch();
afterEach(() => checkedFetch.assertClean());

before(async () => {
  stack = await startStack();
  client = new OpenAI({ apiKey: 'sk-client-side-anything', baseURL: stack.proxy.baseURL, maxRetries: 0, timeout: 20_000, fetch: checkedFetch });
});
after(async () => {
  await stack?.stop();
});
beforeEach(() => stack.reset());

/** The chat bodies the fake Mistral received, parsed, in order. */
const upstreamBodies = () => stack.fakes.mistral.requests.filter((r) => r.path === '/v1/chat/completions').map((r) => JSON.parse(r.body));
/** Role and text of each upstream message: what the conversation looked like to Mistral. */
const conversation = (body) =>
  body.messages.map((m) => {
    const text = typeof m.content === 'string' ? m.content : Array.isArray(m.content) ? m.content.map((p) => p.text ?? '').join('') : '';
    return m.role === 'tool' ? `tool(${m.tool_call_id}): ${text}` : m.tool_calls?.length ? `${m.role}: ${text}[calls ${m.tool_calls.map((c) => c.function.name).join(',')}]` : `${m.role}: ${text}`;
  });

const lookupTool = {
  type: 'function',
  name: 'lookup',
  description: 'Looks a thing up',
  parameters: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'], additionalProperties: false },
  strict: true,
};

async function rejection(promise) {
  return promise.then(
    (value) => assert.fail(`expected an error, got ${JSON.stringify(value).slice(0, 300)}`),
    (error) => error,
  );
}

test('responses.create with text: output_text, status, usage; the model alias and instructions reach Mistral', async () => {
  const response = await client.responses.create({ model: 'gpt-4o', instructions: 'You are terse.', input: 'Say hello to the proxy' });
  assert.match(response.id, /^resp_/);
  assert.equal(response.object, 'response');
  assert.equal(response.status, 'completed');
  assert.equal(response.output_text, 'echo: Say hello to the proxy');
  const messages = response.output.filter((item) => item.type === 'message');
  assert.equal(messages.length, 1);
  assert.equal(messages[0].role, 'assistant');
  assert.equal(messages[0].content[0].type, 'output_text');
  assert.ok(response.usage.input_tokens > 0);
  assert.ok(response.usage.output_tokens > 0);
  assert.equal(response.usage.total_tokens, response.usage.input_tokens + response.usage.output_tokens);
  assert.equal(response.instructions, 'You are terse.');

  const [sent] = upstreamBodies();
  assert.equal(upstreamBodies().length, 1);
  assert.equal(sent.model, 'mistral-large-latest', 'gpt-4o goes through the model rules as in chat');
  assert.deepEqual(conversation(sent), ['system: You are terse.', 'user: Say hello to the proxy']);
  assert.notEqual(sent.stream, true);
});

test('a function tool round trip: function_call item, then function_call_output with previous_response_id', async () => {
  const first = await client.responses.create({ model: 'mistral-small-latest', input: 'find the answer', tools: [lookupTool], tool_choice: 'required' });
  assert.equal(first.status, 'completed');
  const calls = first.output.filter((item) => item.type === 'function_call');
  assert.equal(calls.length, 1, JSON.stringify(first.output));
  const [call] = calls;
  assert.equal(call.name, 'lookup');
  assert.deepEqual(JSON.parse(call.arguments), { text: 'find the answer' });
  assert.equal(typeof call.call_id, 'string');
  assert.ok(call.call_id.length > 0);
  assert.equal(first.output_text, '');
  const [firstSent] = upstreamBodies();
  assert.equal(firstSent.tool_choice, 'any', 'required is Mistral\'s any');
  assert.equal(firstSent.tools[0].function.name, 'lookup');

  const second = await client.responses.create({
    model: 'mistral-small-latest',
    previous_response_id: first.id,
    input: [{ type: 'function_call_output', call_id: call.call_id, output: '42' }],
    tools: [lookupTool],
  });
  assert.equal(second.status, 'completed');
  assert.equal(second.output_text, 'tool result: 42');
  const secondSent = upstreamBodies()[1];
  assert.deepEqual(conversation(secondSent).map((line) => line.replace(/\(.*\)/, '(id)')), ['user: find the answer', 'assistant: [calls lookup]', 'tool(id): 42']);
  const assistant = secondSent.messages[1];
  assert.equal(secondSent.messages[2].tool_call_id, assistant.tool_calls[0].id, 'the tool message answers the call it follows');
});

test('a function tool round trip with the whole conversation as input (store: false)', async () => {
  const input = [{ role: 'user', content: 'call the lookup tool' }];
  const first = await client.responses.create({ model: 'mistral-small-latest', input, tools: [lookupTool], store: false });
  const call = first.output.find((item) => item.type === 'function_call');
  assert.ok(call, JSON.stringify(first.output));
  // What the SDK docs show: append the output items, then the tool's answer.
  const second = await client.responses.create({
    model: 'mistral-small-latest',
    input: [...input, ...first.output, { type: 'function_call_output', call_id: call.call_id, output: 'found it' }],
    tools: [lookupTool],
    store: false,
  });
  assert.equal(second.output_text, 'tool result: found it');
});

test('text.format json_schema becomes Mistral\'s response_format json_schema', async () => {
  const schema = { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'], additionalProperties: false };
  const response = await client.responses.create({
    model: 'mistral-small-latest',
    input: 'give me json',
    text: { format: { type: 'json_schema', name: 'answer', schema, strict: true } },
  });
  assert.equal(response.status, 'completed');
  assert.equal(response.text?.format?.type, 'json_schema');
  const [sent] = upstreamBodies();
  assert.equal(sent.response_format?.type, 'json_schema', JSON.stringify(sent.response_format));
  assert.equal(sent.response_format.json_schema.name, 'answer');
  assert.deepEqual(sent.response_format.json_schema.schema, schema);
  assert.equal(sent.response_format.json_schema.strict, true);
});

test('a previous_response_id chain of three turns: the third request carries every earlier turn in order', async () => {
  const r1 = await client.responses.create({ model: 'mistral-small-latest', instructions: 'Be brief.', input: 'turn one' });
  const r2 = await client.responses.create({ model: 'mistral-small-latest', previous_response_id: r1.id, input: 'turn two' });
  const r3 = await client.responses.create({ model: 'mistral-small-latest', previous_response_id: r2.id, input: [{ role: 'user', content: [{ type: 'input_text', text: 'turn three' }] }] });
  assert.equal(r1.output_text, 'echo: turn one');
  assert.equal(r2.output_text, 'echo: turn two');
  assert.equal(r3.output_text, 'echo: turn three');
  assert.equal(r2.previous_response_id, r1.id);
  assert.equal(r3.previous_response_id, r2.id);
  const bodies = upstreamBodies();
  assert.equal(bodies.length, 3);
  // OpenAI: the instructions of an earlier response are not carried over.
  assert.deepEqual(conversation(bodies[2]), ['user: turn one', 'assistant: echo: turn one', 'user: turn two', 'assistant: echo: turn two', 'user: turn three']);
});

test('responses.retrieve gives back the stored response', async () => {
  const created = await client.responses.create({ model: 'mistral-small-latest', input: 'keep me', metadata: { case: 'retrieve' } });
  const got = await client.responses.retrieve(created.id);
  assert.equal(got.id, created.id);
  assert.equal(got.status, 'completed');
  assert.equal(got.output_text, 'echo: keep me');
  assert.deepEqual(got.output, created.output);
  assert.deepEqual(got.metadata, { case: 'retrieve' });
  assert.equal(upstreamBodies().length, 1, 'retrieve does not call Mistral');
});

test('responses.inputItems.list: order, limit and paging', async () => {
  const input = [
    { role: 'developer', content: 'first item' },
    { role: 'user', content: 'second item' },
    { role: 'assistant', content: 'third item' },
    { role: 'user', content: 'fourth item' },
  ];
  const created = await client.responses.create({ model: 'mistral-small-latest', input });
  const text = (item) => (typeof item.content === 'string' ? item.content : item.content.map((p) => p.text).join(''));

  const asc = await client.responses.inputItems.list(created.id, { order: 'asc' });
  assert.deepEqual(asc.data.map(text), ['first item', 'second item', 'third item', 'fourth item']);
  assert.deepEqual(asc.data.map((item) => item.role), ['developer', 'user', 'assistant', 'user']);
  for (const item of asc.data) assert.equal(typeof item.id, 'string');

  // OpenAI's default order is desc.
  const desc = await client.responses.inputItems.list(created.id);
  assert.deepEqual(desc.data.map(text), ['fourth item', 'third item', 'second item', 'first item']);

  const page = await client.responses.inputItems.list(created.id, { order: 'asc', limit: 2 });
  assert.deepEqual(page.data.map(text), ['first item', 'second item']);
  assert.equal(page.has_more, true);
  assert.equal(page.hasNextPage(), true);
  // The SDK's page object keeps data and has_more only: the list's own fields, as sent.
  const raw = await client.get(`/responses/${created.id}/input_items`, { query: { order: 'asc', limit: 2, after: asc.data[0].id } });
  assert.equal(raw.object, 'list');
  assert.deepEqual(raw.data.map(text), ['second item', 'third item']);
  assert.equal(raw.first_id, asc.data[1].id);
  assert.equal(raw.last_id, asc.data[2].id);
  assert.equal(raw.has_more, true);
  const last = await client.responses.inputItems.list(created.id, { order: 'asc', after: asc.data[2].id });
  assert.deepEqual(last.data.map(text), ['fourth item']);
  assert.equal(last.has_more, false);
  // The SDK's auto-paging follows `after` to the end.
  const all = [];
  for await (const item of client.responses.inputItems.list(created.id, { order: 'asc', limit: 3 })) all.push(text(item));
  assert.deepEqual(all, ['first item', 'second item', 'third item', 'fourth item']);
});

test('responses.delete, then retrieve is a 404 NotFoundError', async () => {
  const created = await client.responses.create({ model: 'mistral-small-latest', input: 'delete me' });
  // The SDK types the answer as void; what OpenAI sends is the deletion object.
  const deleted = await client.responses.delete(created.id);
  assert.deepEqual(deleted, { id: created.id, object: 'response', deleted: true });
  const err = await rejection(client.responses.retrieve(created.id));
  assert.ok(err instanceof OpenAI.NotFoundError, `${err.constructor.name}: ${err.message}`);
  assert.equal(err.status, 404);
  assert.ok(err.message.includes(created.id), err.message);
  const again = await rejection(client.responses.delete(created.id));
  assert.ok(again instanceof OpenAI.NotFoundError, `${again.constructor.name}: ${again.message}`);
  const chained = await rejection(client.responses.create({ model: 'mistral-small-latest', previous_response_id: created.id, input: 'go on' }));
  assert.ok(chained instanceof OpenAI.NotFoundError, `${chained.constructor.name}: ${chained.message}`);
  assert.equal(upstreamBodies().length, 1);
});

test('store: false keeps nothing: retrieve is a 404', async () => {
  const created = await client.responses.create({ model: 'mistral-small-latest', input: 'forget me', store: false });
  assert.equal(created.output_text, 'echo: forget me');
  assert.equal(created.store, false);
  const err = await rejection(client.responses.retrieve(created.id));
  assert.ok(err instanceof OpenAI.NotFoundError, `${err.constructor.name}: ${err.message}`);
});

test('a built-in tool (web_search) is a 400 BadRequestError naming it, and Mistral is not called', async () => {
  const err = await rejection(client.responses.create({ model: 'mistral-small-latest', input: 'search the web', tools: [{ type: 'web_search' }] }));
  assert.ok(err instanceof OpenAI.BadRequestError, `${err.constructor.name}: ${err.message}`);
  assert.equal(err.status, 400);
  assert.match(err.message, /web_search/);
  assert.equal(stack.fakes.mistral.requests.length, 0);
});

test('responses.stream: finalResponse and the event order', async () => {
  stack.fakes.mistral.setStream({ chunks: 4, intervalMs: 0 });
  const stream = client.responses.stream({ model: 'mistral-small-latest', input: 'stream to me' });
  const events = [];
  let deltas = '';
  for await (const event of stream) {
    events.push(event);
    if (event.type === 'response.output_text.delta') deltas += event.delta;
  }
  const final = await stream.finalResponse();
  assert.equal(final.status, 'completed');
  assert.equal(final.output_text, 'echo: stream to me');
  assert.equal(deltas, 'echo: stream to me');
  assert.ok(final.usage.output_tokens > 0);

  const types = events.map((e) => e.type);
  const deltaCount = types.filter((t) => t === 'response.output_text.delta').length;
  assert.ok(deltaCount >= 2, `${deltaCount} text deltas: the stream is passed on as it comes, not as one piece`);
  const collapsed = types.filter((t, i) => t !== types[i - 1]);
  assert.deepEqual(collapsed, [
    'response.created',
    'response.in_progress',
    'response.output_item.added',
    'response.content_part.added',
    'response.output_text.delta',
    'response.output_text.done',
    'response.content_part.done',
    'response.output_item.done',
    'response.completed',
  ]);
  const sequence = events.map((e) => e.sequence_number);
  sequence.forEach((n, i) => i > 0 && assert.ok(n > sequence[i - 1], `sequence_number ${n} after ${sequence[i - 1]}`));
  const textDone = events.find((e) => e.type === 'response.output_text.done');
  assert.equal(textDone.text, 'echo: stream to me');
  const completed = events.at(-1);
  assert.equal(completed.response.id, events[0].response.id);
  assert.equal(final.id, events[0].response.id);
  assert.equal(upstreamBodies()[0].stream, true);

  // A streamed response is stored like any other.
  const got = await client.responses.retrieve(final.id);
  assert.equal(got.output_text, 'echo: stream to me');
});

test('a streamed tool call: function_call item and response.function_call_arguments.done', async () => {
  const stream = client.responses.stream({ model: 'mistral-small-latest', input: 'call lookup now', tools: [lookupTool] });
  const events = [];
  for await (const event of stream) events.push(event);
  const final = await stream.finalResponse();
  const types = events.map((e) => e.type);
  const argsDone = events.find((e) => e.type === 'response.function_call_arguments.done');
  assert.ok(argsDone, types.join(' '));
  assert.deepEqual(JSON.parse(argsDone.arguments), { text: 'call lookup now' });
  const added = events.find((e) => e.type === 'response.output_item.added' && e.item.type === 'function_call');
  assert.ok(added, types.join(' '));
  assert.ok(types.indexOf('response.output_item.added') < types.indexOf('response.function_call_arguments.done'));
  assert.ok(types.indexOf('response.function_call_arguments.done') < types.lastIndexOf('response.output_item.done'));
  assert.equal(types.at(-1), 'response.completed');
  const call = final.output.find((item) => item.type === 'function_call');
  assert.equal(call.name, 'lookup');
  assert.deepEqual(JSON.parse(call.arguments), { text: 'call lookup now' });
  assert.equal(call.call_id, added.item.call_id);

  // The streamed call can be answered by id like a non-streamed one.
  const next = await client.responses.create({ model: 'mistral-small-latest', previous_response_id: final.id, input: [{ type: 'function_call_output', call_id: call.call_id, output: 'streamed' }], tools: [lookupTool] });
  assert.equal(next.output_text, 'tool result: streamed');
});

test('max_output_tokens and Mistral stopping on length: status incomplete, reason max_output_tokens', async () => {
  stack.fakes.mistral.setFinishReason('model_length');
  const response = await client.responses.create({ model: 'mistral-small-latest', input: 'a long story', max_output_tokens: 16 });
  assert.equal(response.status, 'incomplete');
  assert.equal(response.incomplete_details?.reason, 'max_output_tokens');
  assert.equal(response.max_output_tokens, 16);
  assert.equal(upstreamBodies()[0].max_tokens, 16);

  const stream = client.responses.stream({ model: 'mistral-small-latest', input: 'a long story', max_output_tokens: 16 });
  const types = [];
  for await (const event of stream) types.push(event.type);
  assert.equal(types.at(-1), 'response.incomplete');
  const final = await stream.finalResponse();
  assert.equal(final.status, 'incomplete');
  assert.equal(final.incomplete_details?.reason, 'max_output_tokens');
});

test('a Mistral error in the middle of a stream: error, then response.failed on the wire; the SDK throws an APIError', async () => {
  stack.fakes.mistral.setStream({ chunks: 6, intervalMs: 0 });
  // On the wire (through the schema check): the error event, then response.failed.
  stack.fakes.mistral.injectFault({ kind: 'reset_after', chunks: 2 });
  const answer = await checkedFetch(`${stack.proxy.baseURL}/responses`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer x' },
    body: JSON.stringify({ model: 'mistral-small-latest', input: 'cut me off', stream: true }),
  });
  assert.equal(answer.status, 200);
  const events = sseData(await answer.text()).map((data) => JSON.parse(data));
  const types = events.map((e) => e.type);
  assert.equal(types[0], 'response.created');
  assert.deepEqual(types.slice(-2), ['error', 'response.failed']);
  const [error, failed] = events.slice(-2);
  assert.match(error.message, /mistral/i);
  // The documented members, and the nested object OpenAI sends (what the SDKs throw on).
  assert.equal(error.error.message, error.message);
  assert.equal(error.error.code, error.code);
  assert.equal(failed.response.status, 'failed');
  assert.equal(typeof failed.response.error?.message, 'string');
  assert.equal(failed.response.id, events[0].response.id);

  // The SDK's raw event stream throws an APIError at the error event: no hang, no silent end.
  stack.fakes.mistral.injectFault({ kind: 'reset_after', chunks: 2 });
  const raw = await client.responses.create({ model: 'mistral-small-latest', input: 'cut me off', stream: true });
  const seen = [];
  const thrown = await (async () => {
    for await (const event of raw) seen.push(event.type);
  })().then(() => null, (e) => e);
  assert.ok(thrown instanceof OpenAI.APIError, `${thrown?.constructor?.name}: ${thrown?.message}; events: ${seen.join(' ')}`);
  assert.match(thrown.message, /mistral/i);
  assert.equal(seen[0], 'response.created');
  assert.ok(!seen.includes('response.completed'), seen.join(' '));

  // The stream helper: iteration and finalResponse reject with it.
  stack.fakes.mistral.injectFault({ kind: 'reset_after', chunks: 2 });
  const stream = client.responses.stream({ model: 'mistral-small-latest', input: 'cut me off again' });
  const helperSeen = [];
  const helperThrown = await (async () => {
    for await (const event of stream) helperSeen.push(event.type);
  })().then(() => null, (e) => e);
  assert.ok(helperThrown instanceof OpenAI.APIError, `${helperThrown?.constructor?.name}: ${helperThrown?.message}; events: ${helperSeen.join(' ')}`);
  assert.ok(!helperSeen.includes('response.completed'), helperSeen.join(' '));
  const outcome = await stream.finalResponse().then(
    (response) => ({ response }),
    (rejected) => ({ rejected }),
  );
  assert.ok(outcome.rejected instanceof OpenAI.APIError, `finalResponse: ${JSON.stringify(outcome.response)?.slice(0, 300)}`);

  // What is kept of the failed response is not a completed one.
  const kept = await client.responses.retrieve(failed.response.id).then(
    (response) => response,
    (rejected) => rejected,
  );
  if (kept instanceof Error) assert.ok(kept instanceof OpenAI.NotFoundError, `${kept.constructor.name}: ${kept.message}`);
  else assert.equal(kept.status, 'failed');
});
