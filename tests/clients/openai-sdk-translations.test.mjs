// The official `openai` SDK on what Mistral does differently: each test is a
// call an unchanged OpenAI app makes, which Mistral alone would refuse or
// answer in a shape the SDK cannot use.
import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startStack } from '../support/stack.mjs';
import { openaiCheckingFetch } from '../support/openai-validate.mjs';
import { embeddingFor } from '../fake-mistral/fake-mistral.mjs';

let stack;
let client;
// Every answer the SDK gets is checked against OpenAI's schemas (tests/support/openai-validate.mjs).
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

const lookupTool = {
  type: 'function',
  function: { name: 'lookup', description: 'Looks a text up', parameters: { type: 'object', properties: { text: { type: 'string' } } } },
};

test('a removed model id (mistral-tiny) is rewritten and answered', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: 'mistral-tiny', messages: [{ role: 'user', content: 'still there?' }] })
    .withResponse();
  assert.equal(data.choices[0].message.content, 'echo: still there?');
  assert.equal(JSON.parse(stack.fakes.mistral.requests[0].body).model, 'open-mistral-nemo');
  assert.match(response.headers.get('x-mistral-proxy-rules'), /model_rewrite/);
});

test('finalChatCompletion() assembles a streamed tool call that Mistral sent without index, type and id', async () => {
  stack.fakes.mistral.setBareToolCalls(true);
  const runner = client.chat.completions.stream({
    model: 'mistral-small-latest',
    messages: [{ role: 'user', content: 'call lookup please' }],
    tools: [lookupTool],
    tool_choice: 'required',
  });
  const final = await runner.finalChatCompletion();
  const calls = final.choices[0].message.tool_calls;
  assert.equal(calls.length, 1);
  assert.equal(calls[0].type, 'function');
  assert.equal(calls[0].function.name, 'lookup');
  assert.match(calls[0].id, /^[A-Za-z0-9]{9}$/, `id ${calls[0].id}`);
  assert.deepEqual(JSON.parse(calls[0].function.arguments), { text: 'call lookup please' });
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
});

test('stream_options.include_usage: OpenAI\'s final chunk with choices [] and usage', async () => {
  const stream = await client.chat.completions.create({
    model: 'mistral-small-latest',
    messages: [{ role: 'user', content: 'count me' }],
    stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.ok(last.usage.total_tokens > 0, JSON.stringify(last));
  assert.equal(chunks.filter((c) => c.usage).length, 1, 'usage exactly once');
  assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), 'echo: count me');
});

test('finish_reason model_length reaches the SDK as length, streamed and not', async () => {
  stack.fakes.mistral.setFinishReason('model_length');
  const whole = await client.chat.completions.create({ model: 'mistral-small-latest', messages: [{ role: 'user', content: 'long' }] });
  assert.equal(whole.choices[0].finish_reason, 'length');
  const stream = await client.chat.completions.create({ model: 'mistral-small-latest', messages: [{ role: 'user', content: 'long' }], stream: true });
  const reasons = [];
  for await (const chunk of stream) if (chunk.choices[0]?.finish_reason) reasons.push(chunk.choices[0].finish_reason);
  assert.deepEqual(reasons, ['length']);
});

test('completions.create (legacy) with codestral, streamed: text_completion chunks', async () => {
  const stream = await client.completions.create({ model: 'codestral-latest', prompt: 'def add(a, b):', suffix: '    return c', max_tokens: 32, stream: true });
  let text = '';
  let finish = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'text_completion');
    text += chunk.choices[0]?.text ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(text, 'fim: def add(a, b):|    return c');
  assert.equal(finish, 'stop');
  assert.equal(stack.fakes.codestral.requests[0].path, '/v1/fim/completions');
});

test('completions.create (legacy) with a chat model becomes a chat completion', async () => {
  const res = await client.completions.create({ model: 'mistral-small-latest', prompt: 'Once upon a time' });
  assert.equal(res.object, 'text_completion');
  assert.equal(res.choices[0].text, 'echo: Once upon a time');
  assert.equal(stack.fakes.mistral.requests[0].path, '/v1/chat/completions');
});

test('models.list shows the rule files\' aliases with the model they map to', async () => {
  const ids = new Map();
  for await (const model of client.models.list()) ids.set(model.id, model);
  assert.ok(ids.has('mistral-large-latest'));
  assert.equal(ids.get('gpt-4o')?.alias_for, 'mistral-large-latest');
  assert.equal(ids.get('text-embedding-3-small')?.alias_for, 'mistral-embed');
});

test('embeddings.create with the SDK default returns exactly the fake\'s floats', async () => {
  const res = await client.embeddings.create({ model: 'mistral-embed', input: ['one', 'two'] });
  assert.deepEqual(res.data[0].embedding, embeddingFor('one'));
  assert.deepEqual(res.data[1].embedding, embeddingFor('two'));
  assert.equal(JSON.parse(stack.fakes.mistral.requests[0].body).encoding_format, undefined, 'floats asked of Mistral');
});

// A small but real PDF, as the Vercel AI SDK and LangChain send one: a file part with a data URL.
const pdfBase64 = Buffer.from('%PDF-1.4\n1 0 obj <</Type /Catalog>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n').toString('base64');

test('a chat with a PDF file part: Mistral gets a document_url part with the same data URL', async () => {
  const fileData = `data:application/pdf;base64,${pdfBase64}`;
  const { data, response } = await client.chat.completions
    .create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'summarize the document' }, { type: 'file', file: { filename: 'report.pdf', file_data: fileData } }] }],
    })
    .withResponse();
  assert.equal(data.choices[0].message.content, 'echo: summarize the document');
  assert.match(response.headers.get('x-mistral-proxy-rules'), /documents/);
  const sent = JSON.parse(stack.fakes.mistral.requests[0].body);
  assert.deepEqual(sent.messages[0].content, [
    { type: 'text', text: 'summarize the document' },
    { type: 'document_url', document_url: fileData, document_name: 'report.pdf' },
  ]);
});

test('a file part Mistral cannot read is refused with a 400 naming the part, and nothing is sent', async () => {
  const cases = [
    [{ file_id: 'file-abc123' }, /messages\[0\]\.content\[1\]\.file\.file_id 'file-abc123' is not a Mistral file id/],
    [{ file_data: pdfBase64, filename: 'report.pdf' }, /file_data must be a base64 data URL/],
    [{ file_data: 'data:text/csv;base64,YSxi', filename: 'a.csv' }, /text\/csv, which Mistral's chat does not read/],
  ];
  for (const [file, message] of cases) {
    await assert.rejects(
      client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: [{ type: 'text', text: 'read' }, { type: 'file', file }] }] }),
      (error) => {
        assert.ok(error instanceof OpenAI.BadRequestError, String(error));
        assert.match(error.message, message);
        assert.equal(error.param, 'messages[0].content[1]');
        assert.equal(error.code, 'unsupported_content');
        return true;
      },
    );
  }
  assert.deepEqual(stack.allRequests(), []);
});
