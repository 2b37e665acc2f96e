// The checker every suite runs on the proxy's answers (tests/support/openai-validate.mjs)
// checked itself: OpenAI's own example answers pass, answers missing what strictly
// typed clients read fail with a message naming the field, the request -> schema
// table picks the right schema, and openai-schemas.json is what the generator makes
// of OpenAI's description (when the description is next to the checkout).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { generate, readOpenApi } from '../support/gen-openai-schemas.mjs';
import {
  checkProxyAnswer,
  openaiSchemaFor,
  openaiSchemaNames,
  validateOpenAI,
  validateOpenAISse,
} from '../support/openai-validate.mjs';

// OpenAI's examples (api reference), trimmed.
const chatCompletion = () => ({
  id: 'chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG',
  object: 'chat.completion',
  created: 1741570283,
  model: 'gpt-4o-2024-08-06',
  choices: [{ index: 0, message: { role: 'assistant', content: 'Hi.', refusal: null, annotations: [] }, logprobs: null, finish_reason: 'stop' }],
  usage: { prompt_tokens: 19, completion_tokens: 10, total_tokens: 29 },
  service_tier: 'default',
  system_fingerprint: 'fp_fc9f1d7035',
});
const chunk = (choice) => ({ id: 'chatcmpl-123', object: 'chat.completion.chunk', created: 1694268190, model: 'gpt-4o-mini', choices: [choice] });

test('OpenAI example answers are valid', () => {
  assert.equal(validateOpenAI('CreateChatCompletionResponse', chatCompletion()), null);
  assert.equal(validateOpenAI('CreateChatCompletionStreamResponse', chunk({ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null })), null);
  assert.equal(
    validateOpenAI('CreateCompletionResponse', {
      id: 'cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7', object: 'text_completion', created: 1589478378, model: 'gpt-4-turbo',
      choices: [{ text: '\n\nThis is indeed a test', index: 0, logprobs: null, finish_reason: 'length' }],
      usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 },
    }),
    null,
  );
  assert.equal(
    validateOpenAI('CreateEmbeddingResponse', {
      object: 'list', data: [{ object: 'embedding', embedding: [0.0023064255, -0.009327292], index: 0 }],
      model: 'text-embedding-ada-002', usage: { prompt_tokens: 8, total_tokens: 8 },
    }),
    null,
  );
  assert.equal(
    validateOpenAI('CreateEmbeddingResponseBase64', {
      object: 'list', data: [{ object: 'embedding', embedding: 'AAAQvgAAwD4=', index: 0 }], model: 'm', usage: { prompt_tokens: 8, total_tokens: 8 },
    }),
    null,
  );
  assert.equal(validateOpenAI('ListModelsResponse', { object: 'list', data: [{ id: 'gpt-4o', object: 'model', created: 1686935002, owned_by: 'openai' }] }), null);
  assert.equal(validateOpenAI('ErrorResponse', { error: { message: 'Invalid model', type: 'invalid_request_error', param: 'model', code: null } }), null);
  assert.equal(
    validateOpenAI('ResponseStreamEvent', { type: 'response.output_text.delta', sequence_number: 3, item_id: 'msg_1', output_index: 0, content_index: 0, delta: 'Hi', logprobs: [] }),
    null,
  );
});

test('what strictly typed clients read as required is required, and the message names it', () => {
  const noLogprobs = chatCompletion();
  delete noLogprobs.choices[0].logprobs;
  delete noLogprobs.choices[0].message.refusal;
  assert.deepEqual(validateOpenAI('CreateChatCompletionResponse', noLogprobs), [
    '/choices/0: missing required field "logprobs"',
    '/choices/0/message: missing required field "refusal"',
  ]);
  const nullCalls = chatCompletion();
  nullCalls.choices[0].message.tool_calls = null;
  assert.deepEqual(validateOpenAI('CreateChatCompletionResponse', nullCalls), ['/choices/0/message/tool_calls: null is not of type array']);
  const mistralReason = chatCompletion();
  mistralReason.choices[0].finish_reason = 'model_length';
  assert.match(validateOpenAI('CreateChatCompletionResponse', mistralReason).join('\n'), /finish_reason: "model_length" is not one of/);
  assert.deepEqual(validateOpenAI('ErrorResponse', { object: 'error', message: 'x', type: 'y' }), ['(top): missing required field "error"']);
  // A discriminated union reports the fields of the branch its tag picks, not every branch.
  assert.deepEqual(validateOpenAI('ResponseStreamEvent', { type: 'response.output_text.delta', sequence_number: 3 }), [
    '(top): missing required field "item_id"',
    '(top): missing required field "output_index"',
    '(top): missing required field "content_index"',
    '(top): missing required field "delta"',
    '(top): missing required field "logprobs"',
  ]);
  assert.match(validateOpenAI('ResponseStreamEvent', { type: 'response.nope' }).join('\n'), /"response.nope" is not one of/);
});

test('streams: every data event is checked, [DONE] skipped, an error event checked as an error', () => {
  const good = chunk({ index: 0, delta: { content: 'a' }, finish_reason: null });
  const bad = chunk({ index: 0, delta: { content: 'b' } });
  const error = { error: { message: 'cut', type: 'api_error', param: null, code: 'upstream_stream_truncated' } };
  const sse = (...events) => events.map((e) => `data: ${typeof e === 'string' ? e : JSON.stringify(e)}\n\n`).join('');
  assert.equal(validateOpenAISse('CreateChatCompletionStreamResponse', sse(good, good, '[DONE]')), null);
  assert.equal(validateOpenAISse('CreateChatCompletionStreamResponse', sse(good, error)), null);
  const errors = validateOpenAISse('CreateChatCompletionStreamResponse', sse(good, bad, '[DONE]'));
  assert.equal(errors.length, 1);
  assert.match(errors[0], /^event 1 .*missing required field "finish_reason"/);
  assert.match(validateOpenAISse('CreateChatCompletionStreamResponse', sse('{not json')).join(''), /not JSON/);
  assert.match(validateOpenAISse('CreateChatCompletionStreamResponse', sse({ error: { message: 'm' } })).join('\n'), /missing required field "type"/);
  // Legacy completions: finish_reason null until the last chunk, as OpenAI streams it.
  const text = { id: 'c', object: 'text_completion', created: 1, model: 'm', choices: [{ text: 'a', index: 0, logprobs: null, finish_reason: null }] };
  assert.equal(validateOpenAISse('CreateCompletionStreamResponse', sse(text, '[DONE]')), null);
  assert.notEqual(validateOpenAI('CreateCompletionResponse', text), null);
});

test('the request picks the schema; passthrough and the proxy\'s own paths are not OpenAI answers', () => {
  const base = 'http://127.0.0.1:1';
  assert.deepEqual(openaiSchemaFor('POST', `${base}/v1/chat/completions`), { json: 'CreateChatCompletionResponse', sse: 'CreateChatCompletionStreamResponse' });
  assert.deepEqual(openaiSchemaFor('POST', `${base}//v1//chat/completions/`), { json: 'CreateChatCompletionResponse', sse: 'CreateChatCompletionStreamResponse' });
  assert.equal(openaiSchemaFor('POST', `${base}/v1/completions`).sse, 'CreateCompletionStreamResponse');
  assert.equal(openaiSchemaFor('POST', `${base}/v1/embeddings`, { encoding_format: 'base64' }).json, 'CreateEmbeddingResponseBase64');
  assert.equal(openaiSchemaFor('POST', `${base}/v1/embeddings`, { encoding_format: 'float' }).json, 'CreateEmbeddingResponse');
  assert.equal(openaiSchemaFor('GET', `${base}/v1/models`).json, 'ListModelsResponse');
  assert.equal(openaiSchemaFor('GET', `${base}/v1/models/gpt-4o?x=1`).json, 'Model');
  assert.equal(openaiSchemaFor('POST', `${base}/v1/responses`).sse, 'ResponseStreamEvent');
  assert.equal(openaiSchemaFor('GET', `${base}/v1/responses/resp_1`).json, 'Response');
  assert.equal(openaiSchemaFor('DELETE', `${base}/v1/responses/resp_1`).json, 'DeleteModelResponse');
  assert.equal(openaiSchemaFor('GET', `${base}/v1/responses/resp_1/input_items?limit=2`).json, 'ResponseItemList');
  assert.equal(openaiSchemaFor('POST', `${base}/v1/files`), null);
  assert.equal(openaiSchemaFor('POST', `${base}/v1/fim/completions`), null);
  assert.equal(openaiSchemaFor('GET', `${base}/healthz`), null);
  // Errors are checked on every path but /healthz, /readyz and /metrics (SPEC §7).
  assert.equal(checkProxyAnswer({ method: 'GET', url: `${base}/readyz`, status: 503, text: 'not ready' }), null);
  assert.match(checkProxyAnswer({ method: 'POST', url: `${base}/v1/files`, status: 404, text: '{"detail":"File not found"}' }).join(''), /missing required field "error"/);
  assert.match(checkProxyAnswer({ method: 'POST', url: `${base}/v1/files`, status: 502, text: '<html>' }).join(''), /not JSON/);
  assert.equal(checkProxyAnswer({ method: 'POST', url: `${base}/v1/files`, status: 200, text: '{"object":"passthrough"}' }), null);
  const body = JSON.stringify(chatCompletion());
  assert.equal(checkProxyAnswer({ method: 'POST', url: `${base}/v1/chat/completions`, status: 200, contentType: 'application/json', text: body }), null);
  assert.match(
    checkProxyAnswer({ method: 'POST', url: `${base}/v1/chat/completions`, status: 200, contentType: 'text/event-stream', text: `data: ${body}\n\n` }).join('\n'),
    /event 0 .*\/object: "chat.completion" is not one of \["chat.completion.chunk"\]/,
  );
});

test('every schema compiles', () => {
  for (const name of openaiSchemaNames) assert.doesNotThrow(() => validateOpenAI(name, {}), name);
  for (const name of ['CreateChatCompletionResponse', 'CreateChatCompletionStreamResponse', 'CreateCompletionResponse', 'CreateEmbeddingResponse',
    'ListModelsResponse', 'Model', 'ErrorResponse', 'Response', 'ResponseStreamEvent', 'ResponseTextDeltaEvent', 'ResponseCompletedEvent', 'ResponseItemList',
    'CreateModerationResponse', 'CreateTranscriptionResponseJson', 'CreateTranscriptionResponseVerboseJson', 'Batch', 'OpenAIFile']) {
    assert.ok(openaiSchemaNames.includes(name), name);
  }
});

const description = fileURLToPath(new URL('../../../shared/openai-openapi.yaml', import.meta.url));
test('openai-schemas.json is what gen-openai-schemas.mjs makes of OpenAI\'s description', { skip: !existsSync(description) && `no ${description}` }, () => {
  const committed = readFileSync(new URL('../support/openai-schemas.json', import.meta.url), 'utf8');
  assert.ok(generate(readOpenApi(description), 'openai-openapi.yaml') === committed, 'stale: run `npm run gen-openai-schemas` in tests/ and commit the result');
});
