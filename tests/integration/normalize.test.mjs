// Normalizations (SPEC §6), end to end. The fake validates every body against
// Mistral's own schemas and semantic checks, so a 200 means Mistral would have
// accepted what the proxy sent; the tests then look at what was sent, and at the
// rule ids named in x-mistral-proxy-rules.
import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { startStack } from '../support/stack.mjs';
import { postJson, openStream, assertOpenAiError, chatBody, withTimeout } from '../support/http.mjs';

let stack;

before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});
beforeEach(() => stack.reset());

const rulesOf = (res) => (res.headers['x-mistral-proxy-rules'] ?? '').split(',').map((s) => s.trim()).filter(Boolean);

async function through(body, { path = '/chat/completions', upstream = 'mistral' } = {}) {
  const res = await postJson(`${stack.proxy.baseURL}${path}`, body);
  const record = stack.fakes[upstream].requests.at(-1);
  return { res, sent: record ? JSON.parse(record.body) : undefined, rules: rulesOf(res) };
}

function assertAccepted({ res, sent }, rule, rules) {
  assert.equal(res.status, 200, `Mistral (the fake) refused what the proxy sent: ${res.text}`);
  assert.ok(sent, 'nothing reached the fake');
  if (rule) assert.ok(rules.includes(rule), `x-mistral-proxy-rules "${rules.join(',')}" lacks ${rule}`);
}

const weatherTool = {
  type: 'function',
  function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
};

test('a request Mistral accepts as it is goes through unchanged, with an empty rules header', async () => {
  const body = chatBody('plain', { temperature: 0.3, max_tokens: 20 });
  const r = await through(body);
  assertAccepted(r);
  assert.deepEqual(r.sent, body);
  assert.equal(r.res.headers['x-mistral-proxy-rules'], '');
});

describe('model_rewrite and model_alias', () => {
  for (const [from, to] of [['mistral-tiny', 'open-mistral-nemo'], ['mistral-small', 'mistral-small-latest'], ['mistral-medium', 'mistral-small-latest']]) {
    test(`model_rewrite: ${from} -> ${to}`, async () => {
      const r = await through(chatBody('m', { model: from }));
      assertAccepted(r, 'model_rewrite', r.rules);
      assert.equal(r.sent.model, to);
    });
  }

  test('model_alias: gpt-4o -> mistral-large-latest', async () => {
    const r = await through(chatBody('m', { model: 'gpt-4o' }));
    assertAccepted(r, 'model_alias', r.rules);
    assert.equal(r.sent.model, 'mistral-large-latest');
  });

  test('model_alias: text-embedding-3-small -> mistral-embed', async () => {
    const r = await through({ model: 'text-embedding-3-small', input: 'x', encoding_format: 'float' }, { path: '/embeddings' });
    assertAccepted(r, 'model_alias', r.rules);
    assert.equal(r.sent.model, 'mistral-embed');
  });
});

describe('params, ranges, tool_choice_any', () => {
  test('params: renames and drops what ChatCompletionRequest does not accept', async () => {
    const r = await through(chatBody('p', {
      max_completion_tokens: 50,
      seed: 7,
      user: 'user-1234',
      store: false,
      logit_bias: { 50256: -100 },
      logprobs: false,
      top_logprobs: 0,
    }));
    assertAccepted(r, 'params', r.rules);
    assert.equal(r.sent.max_tokens, 50);
    assert.equal(r.sent.random_seed, 7);
    for (const gone of ['max_completion_tokens', 'seed', 'user', 'store', 'logit_bias', 'logprobs', 'top_logprobs']) assert.ok(!(gone in r.sent), `${gone} was sent`);
  });

  test('params: stream_options dropped from a streamed request', async () => {
    const s = await openStream(`${stack.proxy.baseURL}/chat/completions`, chatBody('s', { stream: true, stream_options: { include_usage: true } }));
    assert.equal(s.status, 200);
    const { events } = await withTimeout(s.done, 10_000, 'stream');
    assert.equal(events.at(-1).data, '[DONE]');
    assert.ok(!('stream_options' in JSON.parse(stack.fakes.mistral.requests[0].body)));
  });

  test('params: functions/function_call become tools/tool_choice', async () => {
    const r = await through(chatBody('f', { functions: [weatherTool.function], function_call: { name: 'get_weather' } }));
    assertAccepted(r, 'params', r.rules);
    assert.deepEqual(r.sent.tools, [{ type: 'function', function: weatherTool.function }]);
    assert.deepEqual(r.sent.tool_choice, { type: 'function', function: { name: 'get_weather' } });
    assert.ok(!('functions' in r.sent) && !('function_call' in r.sent));
  });

  test('params: embeddings dimensions -> output_dimension, user dropped', async () => {
    const r = await through({ model: 'mistral-embed', input: ['a'], dimensions: 256, user: 'u', encoding_format: 'float' }, { path: '/embeddings' });
    assertAccepted(r, 'params', r.rules);
    assert.equal(r.sent.output_dimension, 256);
    assert.ok(!('dimensions' in r.sent) && !('user' in r.sent));
    assert.equal(r.res.json.data[0].embedding.length, 256);
  });

  test('ranges: temperature, top_p and seed clamped into Mistral\'s ranges', async () => {
    const r = await through(chatBody('r', { temperature: 2, top_p: 0, seed: -5 }));
    assertAccepted(r, 'ranges', r.rules);
    assert.ok(r.sent.temperature <= 1.5, `temperature ${r.sent.temperature}`);
    assert.ok(r.sent.top_p > 0, `top_p ${r.sent.top_p}`);
    assert.ok(r.sent.random_seed >= 0, `random_seed ${r.sent.random_seed}`);
  });

  test('tool_choice_any: "required" -> "any"', async () => {
    const r = await through(chatBody('t', { tools: [weatherTool], tool_choice: 'required' }));
    assertAccepted(r, 'tool_choice_any', r.rules);
    assert.equal(r.sent.tool_choice, 'any');
  });
});

describe('messages, tool_call_ids, role_order, tools', () => {
  test('messages: developer -> system, name dropped (kept on tool messages), system parts -> string', async () => {
    const r = await through({
      model: 'mistral-small-latest',
      messages: [
        { role: 'developer', content: 'Be brief.' },
        { role: 'system', content: [{ type: 'text', text: 'Part one.' }, { type: 'text', text: 'Part two.' }] },
        { role: 'user', content: 'hi', name: 'alice' },
      ],
    });
    assertAccepted(r, 'messages', r.rules);
    assert.deepEqual(r.sent.messages.map((m) => m.role), ['system', 'system', 'user']);
    assert.equal(r.sent.messages[0].content, 'Be brief.');
    assert.equal(typeof r.sent.messages[1].content, 'string');
    assert.match(r.sent.messages[1].content, /Part one\.[\s\S]*Part two\./);
    assert.ok(!('name' in r.sent.messages[2]));
    assert.equal(r.res.json.choices[0].message.content, 'echo: hi');
  });

  const conversation = (id1, id2) => [
    { role: 'user', content: 'weather in Paris and Lyon?' },
    {
      role: 'assistant',
      content: null,
      tool_calls: [
        { id: id1, type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
        { id: id2, type: 'function', function: { name: 'get_weather', arguments: '{"city":"Lyon"}' } },
      ],
    },
    { role: 'tool', tool_call_id: id1, content: 'sunny', name: 'get_weather' },
    { role: 'tool', tool_call_id: id2, content: 'rain' },
  ];

  test('tool_call_ids: OpenAI ids mapped to 9 alphanumerics, consistently and deterministically', async () => {
    const body = chatBody('x', { messages: conversation('call_Ab3dEf9hIjKlMnOp', 'call_Zz9yXw8vUt7sRq6p'), tools: [weatherTool] });
    const r1 = await through(body);
    assertAccepted(r1, 'tool_call_ids', r1.rules);
    const [a, b] = r1.sent.messages[1].tool_calls.map((c) => c.id);
    assert.match(a, /^[a-zA-Z0-9]{9}$/);
    assert.match(b, /^[a-zA-Z0-9]{9}$/);
    assert.notEqual(a, b);
    assert.equal(r1.sent.messages[2].tool_call_id, a);
    assert.equal(r1.sent.messages[3].tool_call_id, b);
    assert.equal(r1.sent.messages[2].name, 'get_weather', 'name is kept on tool messages');
    const r2 = await through(body);
    assert.deepEqual(r2.sent.messages[1].tool_calls.map((c) => c.id), [a, b], 'same ids map the same way on the next turn');
  });

  test('tool_call_ids: ids that are already valid are left alone', async () => {
    const r = await through(chatBody('x', { messages: conversation('abcDEF123', 'XYZ987abc'), tools: [weatherTool] }));
    assertAccepted(r);
    assert.deepEqual(r.sent.messages[1].tool_calls.map((c) => c.id), ['abcDEF123', 'XYZ987abc']);
    assert.ok(!r.rules.includes('tool_call_ids'));
  });

  test('role_order: user right after tool gets an assistant bridge', async () => {
    const r = await through(chatBody('x', { messages: [...conversation('abcDEF123', 'XYZ987abc'), { role: 'user', content: 'and tomorrow?' }], tools: [weatherTool] }));
    assertAccepted(r, 'role_order', r.rules);
    assert.deepEqual(r.sent.messages.map((m) => m.role), ['user', 'assistant', 'tool', 'tool', 'assistant', 'user']);
  });

  test('role_order: a trailing assistant message gets prefix: true; empty assistant messages are dropped', async () => {
    const r = await through(chatBody('x', {
      messages: [
        { role: 'user', content: 'first' },
        { role: 'assistant', content: '' },
        { role: 'user', content: 'write a haiku' },
        { role: 'assistant', content: 'Autumn' },
      ],
    }));
    assertAccepted(r, 'role_order', r.rules);
    assert.deepEqual(r.sent.messages.map((m) => m.role), ['user', 'user', 'assistant']);
    assert.equal(r.sent.messages.at(-1).prefix, true);
  });

  test('tools: empty tools removed with tool_choice; missing parameters defaulted; $schema/$id stripped', async () => {
    let r = await through(chatBody('x', { tools: [], tool_choice: 'auto' }));
    assertAccepted(r, 'tools', r.rules);
    assert.ok(!('tools' in r.sent) && !('tool_choice' in r.sent));

    r = await through(chatBody('x', {
      tools: [
        { type: 'function', function: { name: 'no_params' } },
        { type: 'function', function: { name: 'with_schema', parameters: { $schema: 'http://json-schema.org/draft-07/schema#', $id: 'urn:x', type: 'object', properties: {} } } },
      ],
    }));
    assertAccepted(r, 'tools', r.rules);
    assert.equal(typeof r.sent.tools[0].function.parameters, 'object');
    assert.ok(!('$schema' in r.sent.tools[1].function.parameters) && !('$id' in r.sent.tools[1].function.parameters));
  });
});

describe('capabilities: tool_capable, vision_route, json_mode_hint', () => {
  test('tool_capable: tools for a model that cannot call them -> 400 naming capable models, or a reroute', async () => {
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('x', { model: 'open-mistral-nemo', tools: [weatherTool] }));
    if (res.status === 200) {
      const sent = JSON.parse(stack.fakes.mistral.requests.at(-1).body);
      assert.notEqual(sent.model, 'open-mistral-nemo');
      assert.ok(rulesOf(res).includes('tool_capable'));
    } else {
      assertOpenAiError(res, 400, { messageIncludes: /mistral-|codestral-/ });
      assert.deepEqual(stack.allRequests(), [], 'a refused request is not sent');
    }
  });

  test('vision_route: image parts to a model without vision go to pixtral-12b-2409', async () => {
    const r = await through(chatBody('x', {
      model: 'open-mistral-nemo',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this?' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }] }],
    }));
    assertAccepted(r, 'vision_route', r.rules);
    assert.equal(r.sent.model, 'pixtral-12b-2409');
  });

  test('json_mode_hint: json_object without "json" in any message adds an instruction', async () => {
    const r = await through(chatBody('give me the data', { response_format: { type: 'json_object' } }));
    assertAccepted(r, 'json_mode_hint', r.rules);
    assert.ok(r.sent.messages.length > 1);
    assert.ok(r.sent.messages.some((m) => typeof m.content === 'string' && /json/i.test(m.content)), JSON.stringify(r.sent.messages));
    assert.deepEqual(r.sent.response_format, { type: 'json_object' });
  });

  test('json_mode_hint does not fire when a message already mentions JSON', async () => {
    const r = await through(chatBody('answer in JSON please', { response_format: { type: 'json_object' } }));
    assertAccepted(r);
    assert.equal(r.sent.messages.length, 1);
    assert.ok(!r.rules.includes('json_mode_hint'));
  });
});

describe('finish_reason', () => {
  test('model_length -> length, not streamed', async () => {
    stack.fakes.mistral.setFinishReason('model_length');
    const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, chatBody('long'));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.choices[0].finish_reason, 'length');
    assert.ok(rulesOf(res).includes('finish_reason'));
  });

  test('model_length -> length, streamed', async () => {
    stack.fakes.mistral.setFinishReason('model_length');
    const s = await openStream(`${stack.proxy.baseURL}/chat/completions`, chatBody('long', { stream: true }));
    const { events } = await withTimeout(s.done, 10_000, 'stream');
    const reasons = events.filter((e) => e.data !== '[DONE]').map((e) => JSON.parse(e.data).choices?.[0]?.finish_reason).filter(Boolean);
    assert.deepEqual(reasons, ['length']);
  });
});
