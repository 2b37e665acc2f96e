// OpenAI's batch flow on Mistral's batch jobs, end to end with the real `openai`
// SDK: files.create({purpose: 'batch'}) rewrites the JSONL's lines into Mistral's
// as they stream (each body through the live request rules), batches.create /
// retrieve / list / cancel are Mistral's job calls translated both ways, and
// files.content(output_file_id) streams Mistral's output lines back as OpenAI's.
// The fake Mistral validates every upload line, job request and line body
// against Mistral's schemas, and every answer is checked against OpenAI's.
import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { toFile } from 'openai';
import { startStack } from '../support/stack.mjs';
import { request, assertOpenAiError, assertProxyHeaders, postStreamed } from '../support/http.mjs';
import { assertOpenAIShape, openaiCheckingFetch } from '../support/openai-validate.mjs';
import { peakRssBytes } from '../support/procfs.mjs';

const line = (customId, body, url = '/v1/chat/completions') => JSON.stringify({ custom_id: customId, method: 'POST', url, body });
const jsonl = (lines) => `${lines.join('\n')}\n`;

const CHAT_LINES = [
  line('greet', { model: 'gpt-4o', messages: [{ role: 'developer', content: 'Be brief.' }, { role: 'user', content: 'Say hello.' }], max_completion_tokens: 20, user: 'u-1' }),
  line('count', { model: 'gpt-4o', messages: [{ role: 'user', content: 'Count to three.' }], seed: 7 }),
];

describe('the batch flow through the openai SDK', () => {
  let stack;
  let client;
  before(async () => {
    stack = await startStack();
    client = new OpenAI({ baseURL: stack.proxy.baseURL, apiKey: 'unused', fetch: openaiCheckingFetch(), maxRetries: 0 });
  });
  after(() => stack.stop());
  beforeEach(() => stack.reset());

  const upload = async (text, name = 'requests.jsonl') =>
    client.files.create({ purpose: 'batch', file: await toFile(Buffer.from(text), name, { type: 'application/jsonl' }) });

  test('upload, create, retrieve, list, and the output file line by line', async () => {
    stack.fakes.mistral.setFinishReason('model_length');
    const file = await upload(jsonl(CHAT_LINES));
    assertOpenAIShape('OpenAIFile', file);
    assert.equal(file.object, 'file');
    assert.equal(file.purpose, 'batch');
    assert.equal(file.filename, 'requests.jsonl');
    assert.equal(file.status, 'processed');
    // Mistral's lines: {custom_id, body} with the live rules applied and no model (the job's).
    const [sent] = stack.fakes.mistral.requests.filter((r) => r.path === '/v1/files');
    assert.ok(sent.upload, 'the fake accepted the upload');
    assert.equal(sent.upload.lines, 2);
    assert.equal(file.bytes, sent.upload.file.size, 'bytes: what was sent (Mistral answers null)');

    const created = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { team: 'search' } });
    assertOpenAIShape('Batch', created);
    assert.equal(created.status, 'validating');
    assert.equal(created.input_file_id, file.id);
    assert.equal(created.model, 'mistral-large-latest');
    assert.deepEqual(created.metadata, { team: 'search' });
    assert.equal(created.request_counts.total, 2);
    const job = JSON.parse(stack.fakes.mistral.requests.find((r) => r.path === '/v1/batch/jobs').body);
    assert.deepEqual(job, { input_files: [file.id], endpoint: '/v1/chat/completions', model: 'mistral-large-latest', metadata: { team: 'search' }, timeout_hours: 24 });

    const done = await client.batches.retrieve(created.id);  // the fake runs the job on this read
    assertOpenAIShape('Batch', done);
    assert.equal(done.status, 'completed');
    assert.deepEqual(done.request_counts, { total: 2, completed: 2, failed: 0 });
    assert.ok(done.output_file_id);
    assert.equal(done.error_file_id, undefined);
    assert.ok(done.completed_at >= done.created_at);

    const page = await client.batches.list({ limit: 10 });
    assertOpenAIShape('ListBatchesResponse', page.body);
    assert.ok(page.data.some((batch) => batch.id === created.id && batch.status === 'completed'));

    const output = await client.files.retrieve(done.output_file_id);
    assertOpenAIShape('OpenAIFile', output);
    assert.equal(output.purpose, 'batch_output');

    const content = await client.files.content(done.output_file_id);
    const lines = (await content.text()).trim().split('\n').map((text) => JSON.parse(text));
    assert.deepEqual(lines.map((l) => l.custom_id), ['greet', 'count']);
    for (const outputLine of lines) {
      assertOpenAIShape('BatchRequestOutput', outputLine);
      assert.equal(outputLine.response.status_code, 200);
      assert.equal(outputLine.response.request_id, outputLine.id);
      assertOpenAIShape('CreateChatCompletionResponse', outputLine.response.body);
      // The chat answer rules, as for a live answer: Mistral's model_length is OpenAI's length.
      assert.equal(outputLine.response.body.choices[0].finish_reason, 'length');
    }
  });

  test('the lines went through the request rules', async () => {
    const file = await upload(jsonl(CHAT_LINES));
    const [sent] = stack.fakes.mistral.requests.filter((r) => r.path === '/v1/files');
    const text = sent.raw.toString('utf8');
    const start = text.indexOf('{"custom_id"');
    const lines = text.slice(start, text.indexOf('\r\n', start)).trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines, [
      { custom_id: 'greet', body: { messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say hello.' }], max_tokens: 20 } },
      { custom_id: 'count', body: { messages: [{ role: 'user', content: 'Count to three.' }], random_seed: 7 } },
    ]);
    assert.ok(file.id);
  });

  test('a line Mistral refuses when the job runs: the error file, in OpenAI\'s line shape', async () => {
    // The proxy lets an audio part through that Mistral's schema refuses (its input_audio is a string).
    const refused = line('audio', { model: 'gpt-4o', messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: 42 }] }] });
    const file = await upload(jsonl([CHAT_LINES[0], refused]));
    const created = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await client.batches.retrieve(created.id);
    assert.equal(done.status, 'completed');
    assert.deepEqual(done.request_counts, { total: 2, completed: 1, failed: 1 });
    assert.ok(done.error_file_id);
    const errorFile = await client.files.retrieve(done.error_file_id);
    assert.equal(errorFile.purpose, 'batch_output');
    const [errorLine] = (await (await client.files.content(done.error_file_id)).text()).trim().split('\n').map((t) => JSON.parse(t));
    assertOpenAIShape('BatchRequestOutput', errorLine);
    assert.equal(errorLine.custom_id, 'audio');
    assert.equal(errorLine.response.status_code, 422);
    assertOpenAIShape('ErrorResponse', errorLine.response.body);
    assert.match(errorLine.response.body.error.message, /input_audio/);
  });

  test('cancel a batch before it runs', async () => {
    const file = await upload(jsonl(CHAT_LINES.slice(0, 1)));
    const created = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const cancelling = await client.batches.cancel(created.id);
    assertOpenAIShape('Batch', cancelling);
    assert.equal(cancelling.status, 'cancelling');
    const cancelled = await client.batches.retrieve(created.id);
    assert.equal(cancelled.status, 'cancelled');
    assert.ok(cancelled.cancelled_at);
    assert.ok(stack.fakes.mistral.requests.some((r) => r.method === 'POST' && r.path === `/v1/batch/jobs/${created.id}/cancel`));
  });

  test('embeddings batches', async () => {
    const file = await upload(jsonl([
      line('e1', { model: 'text-embedding-3-small', input: 'first', encoding_format: 'float' }, '/v1/embeddings'),
      line('e2', { model: 'text-embedding-3-small', input: ['second', 'third'], encoding_format: 'float' }, '/v1/embeddings'),
    ]));
    const created = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/embeddings', completion_window: '24h' });
    assert.equal(created.model, 'mistral-embed');
    const done = await client.batches.retrieve(created.id);
    const lines = (await (await client.files.content(done.output_file_id)).text()).trim().split('\n').map((t) => JSON.parse(t));
    assert.equal(lines.length, 2);
    for (const outputLine of lines) {
      assertOpenAIShape('BatchRequestOutput', outputLine);
      assertOpenAIShape('CreateEmbeddingResponse', outputLine.response.body);
    }
    assert.equal(lines[1].response.body.data.length, 2);
  });

  test('a line the rules refuse: a 400 naming its line, and the upload never completes upstream', async () => {
    const aborted = stack.fakes.mistral.nextAbort();
    const bad = line('bad', { model: 'gpt-4o', messages: [{ role: 'user', content: [{ type: 'made_up_part', text: 'x' }] }] });
    // Enough lines before it that the upstream request is under way when it comes.
    const good = Array.from({ length: 400 }, (_, i) => line(`ok-${i}`, { model: 'gpt-4o', messages: [{ role: 'user', content: `hello ${i} ${'x'.repeat(200)}` }] }));
    await assert.rejects(upload(jsonl([...good, bad, ...good])), (error) => {
      assert.equal(error.status, 400);
      assert.match(error.message, /^400 line 401 of the batch file: messages\[0\]\.content\[0\] is a 'made_up_part' part/);
      assert.equal(error.code, 'unsupported_content');
      return true;
    });
    await aborted;
    assert.ok(!stack.fakes.mistral.requests.some((r) => r.path === '/v1/files' && r.completed), 'no upload completed upstream');
  });

  test('one model per file, one endpoint per file, known files only', async () => {
    await assert.rejects(
      upload(jsonl([CHAT_LINES[0], line('other', { model: 'mistral-small-latest', messages: [{ role: 'user', content: 'hi' }] })])),
      /line 2 of the batch file: names the model mistral-small-latest where line 1 names mistral-large-latest/,
    );
    await assert.rejects(
      client.batches.create({ input_file_id: '0e4c3f5a-1111-4222-8333-944445555666', endpoint: '/v1/chat/completions', completion_window: '24h' }),
      (error) => error.status === 400 && error.code === 'unknown_batch_file',
    );
    const file = await upload(jsonl(CHAT_LINES));
    await assert.rejects(
      client.batches.create({ input_file_id: file.id, endpoint: '/v1/embeddings', completion_window: '24h' }),
      (error) => error.status === 400 && error.param === 'endpoint',
    );
    await assert.rejects(
      client.batches.create({ input_file_id: file.id, endpoint: '/v1/responses', completion_window: '24h' }),
      (error) => error.status === 400 && error.code === 'unsupported_value',
    );
    assert.ok(!stack.fakes.mistral.requests.some((r) => r.path === '/v1/batch/jobs'), 'nothing refused was sent');
  });

  test('purpose after the file: the first line tells a batch file', async () => {
    const boundary = '----batch-order-test';
    const body = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="late.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n` +
      `${jsonl(CHAT_LINES)}\r\n--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--${boundary}--\r\n`);
    const res = await request(`${stack.proxy.baseURL}/files`, { method: 'POST', headers: { 'content-type': `multipart/form-data; boundary=${boundary}` }, body });
    assert.equal(res.status, 200, res.text);
    assertProxyHeaders(res, 'mistral');
    assertOpenAIShape('OpenAIFile', res.json);
    assert.equal(res.json.purpose, 'batch');
  });

  test('list pagination: after and limit', async () => {
    const file = await upload(jsonl(CHAT_LINES.slice(0, 1)));
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' })).id);
    const newest = [...ids].reverse();
    const first = await request(`${stack.proxy.baseURL}/batches?limit=2`);
    assert.equal(first.status, 200, first.text);
    assert.deepEqual(first.json.data.map((b) => b.id), newest.slice(0, 2));
    assert.equal(first.json.has_more, true);
    assert.equal(first.json.last_id, newest[1]);
    const listed = stack.fakes.mistral.requests.find((r) => r.path.startsWith('/v1/batch/jobs?'));
    assert.equal(listed.path, '/v1/batch/jobs?page=0&page_size=100&order_by=-created');
    const second = await request(`${stack.proxy.baseURL}/batches?limit=2&after=${first.json.last_id}`);
    assert.deepEqual(second.json.data.map((b) => b.id).slice(0, 1), newest.slice(2, 3));
    assertOpenAiError(await request(`${stack.proxy.baseURL}/batches?limit=0`), 400, { code: 'invalid_value' });
    // The SDK's auto-pagination walks the pages through after.
    const seen = [];
    for await (const batch of client.batches.list({ limit: 1 })) seen.push(batch.id);
    for (const id of ids) assert.ok(seen.includes(id));
  });

  test('other files pass through: fine-tuning uploads and non-batch content', async () => {
    const text = '{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}\n';
    const res = await client.files.create({ purpose: 'fine-tune', file: await toFile(Buffer.from(text), 'train.jsonl') }).asResponse();
    const answer = await res.json();
    assert.equal(answer.object, 'passthrough', 'Mistral answered (the fake echoes other uploads)');
    const metrics = (await request(`${stack.proxy.origin ?? stack.proxy.baseURL.replace(/\/v1$/, '')}/metrics`)).text;
    assert.match(metrics, /mistral_proxy_requests_total\{endpoint="files",upstream="mistral",status="200"\} [1-9]/);
    assert.match(metrics, /mistral_proxy_requests_total\{endpoint="batches"/);
  });
});

describe('a 200 MB batch file', () => {
  const MB = 1024 * 1024;
  test('streams through with peak RSS under 64 MB', async () => {
    const big = await startStack();
    try {
      // 2100 lines of ~100 KB: each body through the rules, one line held at a time.
      const filler = 'lorem ipsum '.repeat(Math.ceil(100 * 1024 / 12));
      const lineCount = 2100;
      const boundary = '----big-batch-test';
      const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n`);
      const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
      let total = 0;
      const answer = await postStreamed(`${big.proxy.baseURL}/files`,
        { 'content-type': `multipart/form-data; boundary=${boundary}` }, async (write) => {
          await write(head);
          for (let i = 0; i < lineCount; i++) {
            const chunk = Buffer.from(`${line(`r${i}`, { model: 'gpt-4o', messages: [{ role: 'user', content: `${i} ${filler}` }] })}\n`);
            total += chunk.length;
            await write(chunk);
          }
          await write(tail);
        });
      assert.ok(total > 200 * MB, `${total} bytes sent`);
      assert.equal(answer.status, 200, answer.text);
      const file = JSON.parse(answer.text);
      assertOpenAIShape('OpenAIFile', file);
      const [sent] = big.fakes.mistral.requests.filter((r) => r.path === '/v1/files');
      assert.equal(sent.upload.lines, lineCount);
      const peak = peakRssBytes(big.proxy.pid);
      process.stdout.write(`# peak RSS of the proxy: ${(peak / MB).toFixed(1)} MB\n`);
      assert.ok(peak < 64 * MB, `peak RSS ${(peak / MB).toFixed(1)} MB`);
    } finally {
      await big.stop();
    }
  });
});
