// Stored responses of the Responses API (README "Stored
// responses"), from the outside: raw HTTP against the real binary in front of
// the fake Mistral, every answer checked against OpenAI's schemas (http.mjs).
// - a completed response survives a kill -9 of the proxy (embedded SQLite store
//   in state_dir), read back and continued through the next process;
// - two proxies sharing one redis-server see each other's responses;
// - responses.store: off keeps nothing; max_bytes keeps the newest;
// - a broken store file stops `serve` at start, naming the file;
// - the chat rules fire on a Responses request and are counted under
//   endpoint="responses";
// - `explain --endpoint /v1/responses` reads previous_response_id from the same
//   store serve wrote.
import { test, describe, before, after } from 'node:test';
import { waitUntil } from '../support/procfs.mjs';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeMistral } from '../fake-mistral/fake-mistral.mjs';
import { runCli, startProxy, writeConfig } from '../support/proxy.mjs';
import { KEYS } from '../support/stack.mjs';
import { assertOpenAiError, openStream, postJson, request, withTimeout } from '../support/http.mjs';
import { haveRedis, startRedis } from '../support/redis.mjs';

const MODEL = 'mistral-small-latest';

const dirs = [];
async function tempDir() {
  const dir = await mkdtemp(join(tmpdir(), 'mistral-proxy-responses-'));
  dirs.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** A proxy whose only upstream is `fake`; `stateDir` and `responsesYaml` (the `responses:` block) as given. */
function proxyFor(fake, { stateDir, responses } = {}) {
  return startProxy({
    upstreams: { mistral: { base_url: fake.url } },
    env: { MISTRAL_API_KEY: KEYS.mistral },
    state_dir: stateDir,
    extraYaml: responses ? `responses:\n${Object.entries(responses).map(([k, v]) => `  ${k}: ${v}`).join('\n')}\n` : undefined,
  });
}

const create = (proxy, body) => postJson(`${proxy.baseURL}/responses`, { model: MODEL, ...body });
const retrieve = (proxy, id) => request(`${proxy.baseURL}/responses/${id}`);
const remove = (proxy, id) => request(`${proxy.baseURL}/responses/${id}`, { method: 'DELETE' });

/** The chat body the fake received last, parsed. */
function lastUpstreamBody(fake) {
  assert.ok(fake.requests.length > 0, 'nothing reached the fake Mistral');
  return JSON.parse(fake.requests.at(-1).body);
}

// The messages of a chat body as "role: text" lines. A turn read back from the
// store was a string input: it is stored as OpenAI lists it (an input_text
// part), and sent as text parts.
const textOf = (content) =>
  typeof content === 'string' ? content : content.map((part) => (part.type === 'text' ? part.text : JSON.stringify(part))).join('');
const transcript = (chat) => chat.messages.map((m) => `${m.role}: ${textOf(m.content)}`);

function assertCompleted(res) {
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.object, 'response');
  assert.equal(res.json.status, 'completed', res.text);
  assert.match(res.json.id, /^resp_/);
  return res.json;
}

describe('kill -9 after a completed stored response (embedded store)', () => {
  let fake;
  let stateDir;
  let first;
  let second;
  before(async () => {
    fake = await startFakeMistral({ name: 'mistral', apiKey: KEYS.mistral });
    stateDir = await tempDir();
  });
  after(async () => {
    await first?.stop();
    await second?.stop();
    await fake?.close();
  });

  test('a stored response (whole and streamed) is read back and continued through the next process', async () => {
    first = await proxyFor(fake, { stateDir });
    const whole = await create(first, { input: 'durable whole turn', instructions: 'be brief' });
    const wholeResponse = assertCompleted(whole);
    assert.equal(wholeResponse.store, true);

    const stream = await openStream(`${first.baseURL}/responses`, { model: MODEL, input: 'durable streamed turn', stream: true });
    assert.equal(stream.status, 200);
    const { events, ended } = await withTimeout(stream.done, 15_000, 'streamed response');
    assert.ok(ended, 'the stream was cut');
    const completed = events.map((e) => JSON.parse(e.data)).find((e) => e.type === 'response.completed');
    assert.ok(completed, `no response.completed event in ${events.map((e) => e.data).join('\n')}`);
    const streamedResponse = completed.response;
    assert.equal(streamedResponse.status, 'completed');

    // The process dies without a chance to flush anything.
    const killed = await first.kill('SIGKILL');
    assert.equal(killed.signal, 'SIGKILL');

    second = await proxyFor(fake, { stateDir });
    const readWhole = await retrieve(second, wholeResponse.id);
    assert.equal(readWhole.status, 200, readWhole.text);
    assert.equal(readWhole.text, whole.text, 'the stored Response differs from the one answered');
    const readStreamed = await retrieve(second, streamedResponse.id);
    assert.equal(readStreamed.status, 200, readStreamed.text);
    assert.deepEqual(readStreamed.json, streamedResponse, 'the stored Response differs from the response.completed event');

    // Continued through the new process: the earlier turns go upstream.
    fake.reset();
    const next = await create(second, { previous_response_id: wholeResponse.id, input: 'after the crash' });
    assertCompleted(next);
    assert.equal(next.json.previous_response_id, wholeResponse.id);
    // As in OpenAI's API, the earlier request's instructions are not carried over.
    assert.deepEqual(transcript(lastUpstreamBody(fake)), [
      'user: durable whole turn',
      'assistant: echo: durable whole turn',
      'user: after the crash',
    ]);
    assert.equal(next.json.output.find((i) => i.type === 'message').content[0].text, 'echo: after the crash');

    fake.reset();
    const afterStream = await create(second, { previous_response_id: streamedResponse.id, input: 'after the streamed one' });
    assertCompleted(afterStream);
    assert.deepEqual(transcript(lastUpstreamBody(fake)), [
      'user: durable streamed turn',
      'assistant: echo: durable streamed turn',
      'user: after the streamed one',
    ]);
  });
});

describe('two proxies sharing one redis-server (responses.store: redis://)', { skip: haveRedis ? false : 'redis-server is not installed' }, () => {
  let fake;
  let redis;
  let a;
  let b;
  before(async () => {
    fake = await startFakeMistral({ name: 'mistral', apiKey: KEYS.mistral });
    redis = await startRedis();
    a = await proxyFor(fake, { responses: { store: redis.url } });
    b = await proxyFor(fake, { responses: { store: redis.url } });
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await redis?.stop();
    await fake?.close();
  });

  test('a chain started on A continues on B; B reads and deletes A\'s response; then A gets 404', async () => {
    const one = await create(a, { input: 'one on A' });
    assertCompleted(one);
    const two = await create(a, { previous_response_id: one.json.id, input: 'two on A' });
    assertCompleted(two);

    fake.reset();
    const three = await create(b, { previous_response_id: two.json.id, input: 'three on B' });
    assertCompleted(three);
    assert.deepEqual(transcript(lastUpstreamBody(fake)), [
      'user: one on A',
      'assistant: echo: one on A',
      'user: two on A',
      'assistant: echo: two on A',
      'user: three on B',
    ]);

    // And back: A continues B's response.
    fake.reset();
    assertCompleted(await create(a, { previous_response_id: three.json.id, input: 'four on A' }));
    assert.deepEqual(transcript(lastUpstreamBody(fake)).slice(-3), ['user: three on B', 'assistant: echo: three on B', 'user: four on A']);

    const read = await retrieve(b, one.json.id);
    assert.equal(read.status, 200, read.text);
    assert.equal(read.text, one.text, 'B reads another Response than A answered');

    const deleted = await remove(b, one.json.id);
    assert.equal(deleted.status, 200, deleted.text);
    assert.deepEqual(deleted.json, { id: one.json.id, object: 'response', deleted: true });

    assertOpenAiError(await retrieve(a, one.json.id), 404, { messageIncludes: one.json.id });
    assertOpenAiError(await remove(a, one.json.id), 404, { messageIncludes: one.json.id });
    // The rest of the chain is still there.
    assert.equal((await retrieve(a, two.json.id)).status, 200);
  });

  test('SIGTERM stops both proxies cleanly: their Redis clients do not keep them running', async () => {
    for (const proxy of [a, b]) {
      const stopped = await proxy.stop(3000); // SIGKILL after 3 s
      assert.deepEqual(stopped, { code: 0, signal: null }, proxy.logs().slice(-2000));
    }
  });
});

describe('responses.store: off', () => {
  let fake;
  let proxy;
  before(async () => {
    fake = await startFakeMistral({ name: 'mistral', apiKey: KEYS.mistral });
    proxy = await proxyFor(fake, { responses: { store: 'off' } });
  });
  after(async () => {
    await proxy?.stop();
    await fake?.close();
  });

  test('store: true keeps nothing; previous_response_id is a 400 naming it, and nothing is sent', async () => {
    const answered = await create(proxy, { input: 'kept nowhere', store: true });
    assertCompleted(answered);
    assertOpenAiError(await retrieve(proxy, answered.json.id), 404, { messageIncludes: answered.json.id });

    fake.reset();
    const continued = await create(proxy, { previous_response_id: answered.json.id, input: 'and then?' });
    const error = assertOpenAiError(continued, 400, { messageIncludes: ['previous_response_id', 'responses.store: off'] });
    assert.equal(error.param, 'previous_response_id');
    assert.equal(fake.requests.length, 0, 'a request that cannot be continued went upstream');
    assert.ok(!existsSync(join(proxy.dir, 'state', 'responses.sqlite3')), 'store: off created the embedded store file');
  });
});

describe('retention: responses.max_bytes keeps the newest', () => {
  let fake;
  let proxy;
  before(async () => {
    fake = await startFakeMistral({ name: 'mistral', apiKey: KEYS.mistral });
    // Each response below holds its 4000-character input about six times (its
    // input items, the Response's output, the conversation, the item index):
    // one fits in 40000 bytes, two do not.
    proxy = await proxyFor(fake, { responses: { max_bytes: 40000 } });
  });
  after(async () => {
    await proxy?.stop();
    await fake?.close();
  });

  test('a second response over max_bytes pushes the first out', async () => {
    const first = assertCompleted(await create(proxy, { input: `first ${'a'.repeat(4000)}` }));
    assert.equal((await retrieve(proxy, first.id)).status, 200, 'one response alone must fit in max_bytes');
    const second = assertCompleted(await create(proxy, { input: `second ${'b'.repeat(4000)}` }));
    assertOpenAiError(await retrieve(proxy, first.id), 404, { messageIncludes: first.id });
    const kept = await retrieve(proxy, second.id);
    assert.equal(kept.status, 200, kept.text);
    assert.deepEqual(kept.json, second);
  });
});

describe('a broken store file stops serve at start', () => {
  for (const [what, breakIt] of [
    ['a directory', (file) => mkdir(file)],
    ['a file that is not SQLite', (file) => writeFile(file, 'this is not a database, just some bytes\n'.repeat(100))],
  ]) {
    test(`state_dir/responses.sqlite3 is ${what}: exit 1 naming the file`, async () => {
      const stateDir = await tempDir();
      const file = join(stateDir, 'responses.sqlite3');
      await breakIt(file);
      const config = await writeConfig({ state_dir: stateDir });
      dirs.push(config.dir);
      const r = await runCli(['serve', '--config', config.file, '--listen', '127.0.0.1:0'], { timeoutMs: 10_000 });
      assert.equal(r.code, 1, `serve started or failed otherwise (code ${r.code}): ${r.stdout}${r.stderr}`);
      assert.ok(r.stderr.includes(file), `the message does not name ${file}: ${r.stderr}`);
      assert.doesNotMatch(r.stdout + r.stderr, /listening on/);
    });
  }
});

describe('chat rules on a Responses request', () => {
  let fake;
  let proxy;
  before(async () => {
    fake = await startFakeMistral({ name: 'mistral', apiKey: KEYS.mistral });
    proxy = await proxyFor(fake);
  });
  after(async () => {
    await proxy?.stop();
    await fake?.close();
  });

  const metric = (text, name, labels) => {
    const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
  };

  test('x-mistral-proxy-rules names the rules that fired; /metrics counts the request under endpoint="responses"', async () => {
    const before = (await request(`${proxy.url}/metrics`)).text;
    const res = await postJson(`${proxy.baseURL}/responses`, {
      model: 'gpt-4o',
      input: 'call the tool',
      tools: [{ type: 'function', name: 'lookup', parameters: { type: 'object', properties: { q: { type: 'string' } } } }],
      tool_choice: 'required',
    });
    assert.equal(res.status, 200, res.text);
    const fired = (res.headers['x-mistral-proxy-rules'] ?? '').split(',');
    for (const rule of ['model_alias', 'tool_choice_any']) assert.ok(fired.includes(rule), `x-mistral-proxy-rules "${fired}" lacks ${rule}`);
    const sent = lastUpstreamBody(fake);
    assert.equal(sent.tool_choice, 'any');
    assert.notEqual(sent.model, 'gpt-4o');
    assert.equal(res.json.output[0].type, 'function_call', res.text);

    const requests = 'mistral_proxy_requests_total';
    const labels = 'endpoint="responses",upstream="mistral",status="200"';
    // A request is counted once answered, which the client may see first: wait for it.
    const afterText = await waitUntil(async () => {
      const text = (await request(`${proxy.url}/metrics`)).text;
      return metric(text, requests, labels) > metric(before, requests, labels) ? text : null;
    }, { label: 'the request in /metrics' });
    assert.equal(metric(afterText, requests, labels) - metric(before, requests, labels), 1, afterText);
    for (const rule of ['model_alias', 'tool_choice_any']) {
      const rl = `rule="${rule}"`;
      assert.equal(metric(afterText, 'mistral_proxy_rules_fired_total', rl) - metric(before, 'mistral_proxy_rules_fired_total', rl), 1, `${rule}: ${afterText}`);
    }
  });
});

describe('explain --endpoint /v1/responses', () => {
  let fake;
  let proxy;
  let stateDir;
  let config;
  before(async () => {
    fake = await startFakeMistral({ name: 'mistral', apiKey: KEYS.mistral });
    stateDir = await tempDir();
    proxy = await proxyFor(fake, { stateDir });
    config = proxy.configFile;
  });
  after(async () => {
    await proxy?.stop();
    await fake?.close();
  });

  const explain = (body, configFile = config) =>
    runCli(['explain', '--config', configFile, '--endpoint', '/v1/responses', '-'], { input: JSON.stringify(body) });

  test('a plain Responses body: the chat body, model alias applied, instructions first as a system message', async () => {
    const r = await explain({ model: 'gpt-4o', instructions: 'answer in French', input: 'hello' });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const out = JSON.parse(r.stdout);
    assert.ok(out.url.endsWith('/chat/completions'), out.url);
    assert.ok(out.rules.includes('model_alias'), out.rules);
    assert.notEqual(out.body.model, 'gpt-4o');
    assert.deepEqual(out.body.messages, [
      { role: 'system', content: 'answer in French' },
      { role: 'user', content: 'hello' },
    ]);
  });

  test('previous_response_id stored by serve (the proxy still running, same state_dir): the earlier turns are printed', async () => {
    const stored = assertCompleted(await create(proxy, { input: 'remember this' }));
    const r = await explain({ model: MODEL, previous_response_id: stored.id, input: 'and now?' });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(transcript(JSON.parse(r.stdout).body), ['user: remember this', 'assistant: echo: remember this', 'user: and now?']);
    // What explain printed is what serve sends.
    fake.reset();
    assertCompleted(await create(proxy, { previous_response_id: stored.id, input: 'and now?' }));
    assert.equal(fake.requests.at(-1).body.trimEnd(), r.stdout.slice(r.stdout.indexOf(',"body":') + 8, r.stdout.lastIndexOf('}')));
  });

  test('an item_reference to a stored item is resolved too', async () => {
    const stored = assertCompleted(await create(proxy, { input: 'referenced turn' }));
    const message = stored.output.find((i) => i.type === 'message');
    const r = await explain({ model: MODEL, input: [{ type: 'item_reference', id: message.id }, { role: 'user', content: 'next' }] });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(transcript(JSON.parse(r.stdout).body), ['assistant: echo: referenced turn', 'user: next']);
  });

  test('an unknown previous_response_id: exit 1 with the 404 serve answers', async () => {
    const body = { model: MODEL, previous_response_id: 'resp_0123456789abcdef', input: 'hi' };
    const r = await explain(body);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const served = await create(proxy, body);
    assertOpenAiError(served, 404, { messageIncludes: 'resp_0123456789abcdef' });
    assert.deepEqual(JSON.parse(r.stdout), served.json);
    assert.match(r.stderr, /refused with 404/);
  });

  test('no store file yet: previous_response_id is unknown, and explain does not create the file', async () => {
    const emptyState = join(await tempDir(), 'state');
    const c = await writeConfig({ state_dir: emptyState });
    dirs.push(c.dir);
    const r = await explain({ model: MODEL, previous_response_id: 'resp_abc', input: 'hi' }, c.file);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.equal(JSON.parse(r.stdout).error.param, 'previous_response_id');
    assert.equal(JSON.parse(r.stdout).error.message, "Previous response with id 'resp_abc' not found.");
    assert.ok(!existsSync(emptyState) || (await readdir(emptyState)).length === 0, `explain wrote state files: ${existsSync(emptyState) ? await readdir(emptyState) : ''}`);
  });

  test('a Redis store: exit 1, asking for the whole conversation', async () => {
    const c = await writeConfig({ extraYaml: 'responses:\n  store: redis://127.0.0.1:9/0\n' });
    dirs.push(c.dir);
    const r = await explain({ model: MODEL, previous_response_id: 'resp_abc', input: 'hi' }, c.file);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /explain cannot read a Redis responses store/);
    assert.match(r.stderr, /send the whole conversation/);
    // Without a reference there is nothing to read: explained as usual.
    const plain = await explain({ model: MODEL, input: 'hi' }, c.file);
    assert.equal(plain.code, 0, plain.stdout + plain.stderr);
  });

  test('responses.store: off: the 400 serve answers', async () => {
    const c = await writeConfig({ extraYaml: 'responses:\n  store: off\n' });
    dirs.push(c.dir);
    const r = await explain({ model: MODEL, previous_response_id: 'resp_abc', input: 'hi' }, c.file);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const { error } = JSON.parse(r.stdout);
    assert.equal(error.code, 'store_disabled');
    assert.equal(error.param, 'previous_response_id');
  });
});
