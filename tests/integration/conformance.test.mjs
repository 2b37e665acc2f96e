// Conformance: every OpenAI-style request of tests/conformance/ (what the official
// SDKs, LangChain and LlamaIndex send) goes through `mistral-proxy explain`, and
// what the proxy would send must be accepted by Mistral: valid against Mistral's
// OpenAPI schemas (tests/fake-mistral/mistral-schemas.json, generated from
// Mistral's OpenAPI description) and passing Mistral's server-side checks
// (9-character alphanumeric tool-call ids, role order, last role, one result per
// tool call, models that cannot take tools or images). Nothing the client sent is
// lost on the way: every text, image, document and audio of the request is still
// in what goes to Mistral. A few requests must be refused instead (REFUSED): the
// proxy answers 400 naming the message or part, as OpenAI does.
//
// The file name says the endpoint: chat-*.json, fim-*.json, embeddings-*.json,
// completions-*.json (OpenAI's legacy endpoint: sent as chat or FIM by model),
// moderations-*.json (sent as Mistral's moderation request),
// speech-*.json (OpenAI's text to speech, sent as Mistral's SpeechRequest),
// responses-*.json (OpenAI's Responses API, translated to a chat request: the
// same chat checks apply to what is sent, and every text, image, tool call and
// tool output of the Responses input must be in it).
// explain-serve.test.mjs sends the same corpus through `serve` and checks that
// the upstream gets exactly what explain printed.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeConfig, runCli, repoRoot } from '../support/proxy.mjs';
import { schemaProperties, validateBody } from '../fake-mistral/validate.mjs';
import { chatSemanticError } from '../fake-mistral/fake-mistral.mjs';

const corpusDir = join(repoRoot, 'tests', 'conformance');
const files = readdirSync(corpusDir).filter((f) => f.endsWith('.json')).sort();

const ENDPOINTS = {
  chat: { path: '/v1/chat/completions', schema: 'ChatCompletionRequest' },
  fim: { path: '/v1/fim/completions', schema: 'FIMCompletionRequest' },
  embeddings: { path: '/v1/embeddings', schema: 'EmbeddingRequest' },
  // The schema is the target's: FIM for codestral models, chat otherwise.
  completions: { path: '/v1/completions', schema: (url) => (url.endsWith('/fim/completions') ? 'FIMCompletionRequest' : 'ChatCompletionRequest') },
  moderations: { path: '/v1/moderations', schema: 'ClassificationRequest' },
  speech: { path: '/v1/audio/speech', schema: 'SpeechRequest' },
  responses: { path: '/v1/responses', schema: 'ChatCompletionRequest' },
};
const RULE_IDS = new Set(['model_rewrite', 'model_alias', 'tool_choice_any', 'params', 'ranges', 'messages', 'tool_call_ids',
  'role_order', 'tools', 'tool_capable', 'json_mode_hint', 'vision_route', 'documents']);

// Requests of the corpus that neither OpenAI nor Mistral serves: refused with a 400
// naming `param`, by `rule`, rather than sent with a part of them dropped.
const REFUSED = {
  'chat-tool-orphan-result.json': { param: 'messages[1]', code: 'unsupported_content', rule: 'role_order' },
  // Mistral embeds text only: token ids cannot be turned back into text.
  'embeddings-token-ids.json': { param: 'input', code: null },
  'embeddings-token-id-arrays.json': { param: 'input', code: null },
  // Mistral's moderation classifies text only.
  'moderations-image-part.json': { param: 'input[1]', code: 'unsupported_content' },
  // Mistral's speech has no AAC output.
  'speech-aac.json': { param: 'response_format', code: null },
};

// The content a chat request carries (texts, image and document URLs, file ids,
// audio data, refusals, tool call arguments): each must still be in the body sent.
function contentOf(body) {
  const out = [];
  const push = (v) => {
    if (typeof v === 'string' && v !== '') out.push(v);
  };
  for (const m of body.messages ?? []) {
    push(m.refusal);
    push(m.function_call?.arguments);
    for (const call of m.tool_calls ?? []) push(call.function?.arguments);
    if (typeof m.content === 'string') push(m.content);
    for (const part of Array.isArray(m.content) ? m.content : []) {
      push(part.text);
      push(part.refusal);
      push(typeof part.image_url === 'string' ? part.image_url : part.image_url?.url);
      push(part.document_url);
      push(typeof part.input_audio === 'string' ? part.input_audio : part.input_audio?.data);
      push(part.file?.file_data ?? part.file?.file_id);
      push(part.file_id);
    }
  }
  return out;
}

// The same for a Responses API request (CreateResponse): instructions, the
// input as a string or items (message contents, function_call arguments,
// function_call_output outputs). Reasoning items are dropped by design.
function responsesContentOf(body) {
  const out = [];
  const push = (v) => {
    if (typeof v === 'string' && v !== '') out.push(v);
  };
  push(body.instructions);
  if (typeof body.input === 'string') push(body.input);
  for (const item of Array.isArray(body.input) ? body.input : []) {
    if (item.type === 'reasoning') continue;
    push(item.arguments);
    push(item.output);
    if (typeof item.content === 'string') push(item.content);
    for (const part of Array.isArray(item.content) ? item.content : []) {
      push(part.text);
      push(part.image_url);
      push(part.file_data ?? part.file_id);
    }
  }
  return out;
}

function stringsOf(value, out = []) {
  if (typeof value === 'string') out.push(value);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) stringsOf(v, out);
  return out;
}

// Each assistant message with tool calls is followed by exactly one tool result per call.
function toolCountError(messages) {
  for (let i = 0; i < messages.length; i++) {
    const calls = messages[i].role === 'assistant' ? messages[i].tool_calls ?? [] : [];
    const results = [];
    let j = i + 1;
    while (j < messages.length && messages[j].role === 'tool') results.push(messages[j++]);
    if (calls.length === 0) {
      if (results.length > 0 && messages[i].role !== 'tool') return `tool results at ${i + 1} answer no call`;
      continue;
    }
    if (results.length !== calls.length) return `message ${i}: ${calls.length} tool calls but ${results.length} results`;
    const ids = new Set(calls.map((c) => c.id));
    for (const r of results) if (!ids.has(r.tool_call_id)) return `result ${r.tool_call_id} answers no call of message ${i}`;
  }
  return null;
}

let config;
before(async () => {
  config = await writeConfig();
});
after(async () => {
  await rm(config.dir, { recursive: true, force: true });
});

describe('conformance corpus through explain', () => {
  test('the corpus holds at least 50 requests', () => {
    assert.ok(files.length >= 50, `${files.length} files in ${corpusDir}`);
  });

  for (const file of files) {
    test(file, async () => {
      const kind = file.split('-')[0];
      const endpoint = ENDPOINTS[kind];
      assert.ok(endpoint, `${file}: name must start with chat-, fim-, embeddings-, completions-, moderations-, speech- or responses-`);
      const r = await runCli(['explain', '--config', config.file, '--endpoint', endpoint.path, join(corpusDir, file)]);
      if (REFUSED[file]) {
        assert.equal(r.code, 1, `${file}: must be refused: ${r.stdout}${r.stderr}`);
        const { error } = JSON.parse(r.stdout);
        assert.equal(error.param, REFUSED[file].param, r.stdout);
        assert.equal(error.code, REFUSED[file].code, r.stdout);
        if (REFUSED[file].rule) assert.ok(error.message.endsWith(`(mistral-proxy rule ${REFUSED[file].rule})`), error.message);
        return;
      }
      assert.equal(r.code, 0, `${file}: explain refused it: ${r.stdout}${r.stderr}`);
      const out = JSON.parse(r.stdout);
      for (const id of out.rules) assert.ok(RULE_IDS.has(id), `unknown rule id ${id}`);
      const schema = typeof endpoint.schema === 'function' ? endpoint.schema(out.url) : endpoint.schema;
      const invalid = validateBody(schema, out.body);
      assert.equal(invalid, null, `${file}: Mistral would answer 422: ${JSON.stringify(invalid)}\nbody: ${JSON.stringify(out.body)}`);
      assert.doesNotMatch(out.body.model, /^(gpt-|o\d|text-embedding-|chatgpt-|omni-moderation|text-moderation|tts-)/, `${file}: OpenAI model name sent`);
      if (kind === 'chat' || kind === 'responses') {
        const sent = stringsOf(out.body).join('\u0000');
        const request = JSON.parse(readFileSync(join(corpusDir, file), 'utf8'));
        for (const piece of kind === 'chat' ? contentOf(request) : responsesContentOf(request)) {
          assert.ok(sent.includes(piece), `${file}: ${JSON.stringify(piece.slice(0, 80))} is lost: ${JSON.stringify(out.body)}`);
        }
        const semantic = chatSemanticError(out.body);
        assert.equal(semantic, null, `${file}: Mistral would answer 400: ${JSON.stringify(semantic)}`);
        const counts = toolCountError(out.body.messages);
        assert.equal(counts, null, `${file}: ${counts}`);
        const last = out.body.messages.at(-1);
        assert.ok(!last || last.role !== 'assistant' || last.prefix === true, `${file}: last message is an assistant without prefix`);
      }
      const original = JSON.parse(readFileSync(join(corpusDir, file), 'utf8'));
      // A legacy completion, a moderation, a speech and a Responses request are
      // always translated: their own rows, not rules.
      if (out.rules.length === 0 && !['completions', 'moderations', 'speech', 'responses'].includes(kind)) assert.deepEqual(out.body, original, `${file}: changed without naming a rule`);
      if (kind === 'completions') {
        const prompt = original.prompt;
        assert.ok(JSON.stringify(out.body).includes(JSON.stringify(prompt)), `${file}: the prompt is lost: ${JSON.stringify(out.body)}`);
      }
      if (kind === 'moderations') {
        const texts = [original.input].flat().map((item) => (typeof item === 'string' ? item : item.text));
        assert.deepEqual([out.body.input].flat(), texts, `${file}: the texts to classify changed`);
      }
      if (kind === 'speech') {
        // SpeechRequest allows extra fields: the proxy must still send only those it names.
        const known = schemaProperties('SpeechRequest');
        for (const key of Object.keys(out.body)) assert.ok(known.includes(key), `${file}: ${key} sent to Mistral`);
        assert.equal(out.body.input, original.input, `${file}: the text to speak changed`);
        assert.equal(typeof out.body.voice_id, 'string', `${file}: no voice_id`);
        assert.equal(out.body.stream, true);
      }
    });
  }
});
