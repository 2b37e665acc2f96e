// explain == serve (SPEC §1): every request of the conformance corpus, a few
// passthrough paths and other spellings of the known endpoints go once through
// `mistral-proxy explain` and once through `serve` in front of the fake Mistral
// hosts, with the same config. What the fake receives must be byte for byte
// the body explain printed, at the URL it printed, on the upstream it named;
// a request explain refuses must get the same error from serve, and nothing
// may reach an upstream. Both commands call plan_request (proxy/plan/).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, repoRoot } from '../support/proxy.mjs';
import { startStack } from '../support/stack.mjs';
import http from 'node:http';
import { withTimeout } from '../support/http.mjs';

const corpusDir = join(repoRoot, 'tests', 'conformance');
const PATHS = {
  chat: '/v1/chat/completions',
  fim: '/v1/fim/completions',
  embeddings: '/v1/embeddings',
  completions: '/v1/completions',
  moderations: '/v1/moderations',
  speech: '/v1/audio/speech',
  // Translated to a chat request. The translation draws random ids (resp_,
  // msg_, fc_) only for the Response and its stored items, never for the chat
  // body (tool call ids come from the client's call_id through the
  // tool_call_ids rule, deterministically): the bytes must match exactly.
  responses: '/v1/responses',
};

const corpus = (file) => readFileSync(join(corpusDir, file), 'utf8');
const cases = readdirSync(corpusDir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((file) => ({ name: file, path: PATHS[file.split('-')[0]], body: corpus(file) }));

// Other spellings of the known endpoints get their full treatment (SPEC §4
// "Path spelling"), or the same 400 from both commands.
cases.push(
  { name: 'double and trailing slash', path: '/v1//chat/completions/', body: corpus('chat-tools-required.json') },
  { name: 'encoded unreserved character', path: '/v1/%63hat/completions', body: corpus('chat-plain.json') },
  { name: 'embeddings with a trailing slash', path: '/v1/embeddings/', body: corpus('embeddings-sdk-default-base64.json') },
  { name: 'legacy completions, repeated slashes', path: '//v1/completions//', body: corpus('completions-chat.json') },
  { name: 'dot segment (refused)', path: '/v1/./chat/completions', body: corpus('chat-plain.json') },
  { name: 'encoded slash (refused)', path: '/v1/chat%2Fcompletions', body: corpus('chat-plain.json') },
  // Passthrough: sent as the client wrote it, query included, to the region's host.
  { name: 'passthrough with a query', path: '/v1/echo/agents?limit=2&order=desc', body: '{"name":"x","instructions":"be brief"}' },
  { name: 'passthrough, unknown body', path: '/v1/echo/batch', body: 'not json at all' },
  { name: 'not JSON (refused)', path: '/v1/chat/completions', body: '{"model": "gpt-4o", "messages": [' },
  // Responses: a built-in tool (400 naming it), and a previous_response_id the
  // store lacks (the 404 serve answers; explain reads the same state_dir).
  { name: 'Responses, built-in tool (refused)', path: '/v1/responses', body: '{"model":"gpt-4o","input":"x","tools":[{"type":"web_search"}]}' },
  { name: 'Responses, unknown previous_response_id (refused)', path: '/v1/responses', body: '{"model":"gpt-4o","input":"x","previous_response_id":"resp_unknown0"}' },
);

// explain's one line: {"upstream","url","rules",["fallbacks",]"body"} with the
// body as the raw bytes to send (its trailing white space trimmed), or as a
// JSON string when they are not JSON.
function explainParts(stdout) {
  const parsed = JSON.parse(stdout);
  const at = stdout.indexOf(',"body":');
  assert.ok(at > 0, stdout);
  return { ...parsed, rawBody: stdout.slice(at + ',"body":'.length, stdout.lastIndexOf('}')) };
}

// POST with the path exactly as written: a URL string would be normalized by
// the client (WHATWG URL drops "/./"), and the proxy must see the spelling.
function postRaw(port, path, body) {
  return withTimeout(new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      const parts = [];
      res.on('data', (c) => parts.push(c));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  }), 15_000, `POST ${path}`);
}

let stack;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

describe('explain prints exactly what serve sends', () => {
  for (const c of cases) {
    test(`${c.name} (${c.path})`, async () => {
      const explained = await runCli(['explain', '--config', stack.proxy.configFile, '--endpoint', c.path, '-'], { input: c.body });
      stack.reset();
      const served = await postRaw(stack.proxy.port, c.path, c.body);
      const sent = Object.entries(stack.fakes).flatMap(([name, fake]) => fake.requests.map((r) => ({ ...r, upstream: name, origin: fake.origin })));

      if (explained.code !== 0) {
        assert.equal(explained.code, 1, explained.stderr);
        assert.equal(sent.length, 0, `explain refuses it, but serve sent it to ${sent[0]?.upstream}`);
        assert.ok(served.status >= 400 && served.status < 500, `serve answered ${served.status}: ${served.text}`);
        assert.deepEqual(served.json, JSON.parse(explained.stdout), 'serve and explain refuse it with different errors');
        assert.match(explained.stderr, new RegExp(`refused with ${served.status}:`));
        return;
      }
      const plan = explainParts(explained.stdout);
      assert.equal(sent.length, 1, `serve answered ${served.status} ${served.text.slice(0, 300)} and sent ${sent.length} requests`);
      const [upstreamRequest] = sent;
      assert.equal(upstreamRequest.upstream, plan.upstream);
      assert.equal(`${upstreamRequest.origin}${upstreamRequest.path}`, plan.url);
      assert.equal(upstreamRequest.method, 'POST');
      // A body that is not JSON (relayed as it is) is printed as a JSON string.
      const printed = typeof plan.body === 'string' ? plan.body : plan.rawBody;
      assert.equal(upstreamRequest.body.trimEnd(), printed, 'the bytes sent differ from what explain printed');
      // The request rules head the header's list; answer rules may follow.
      const header = served.headers['x-mistral-proxy-rules'] ?? '';
      assert.ok(header === plan.rules.join(',') || header.startsWith(`${plan.rules.join(',')},`) || plan.rules.length === 0,
        `x-mistral-proxy-rules "${header}" does not start with explain's ${plan.rules}`);
    });
  }
});
