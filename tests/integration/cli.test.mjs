// The commands (SPEC §1): --version/--help, check (FILE:LINE:COL messages, exit
// codes), explain (dry run, same code path as serve, no keys in its output).
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeConfig, runCli, repoRoot } from '../support/proxy.mjs';
import { startStack } from '../support/stack.mjs';
import { postJson } from '../support/http.mjs';

const dirs = [];
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function config(options = {}) {
  const c = await writeConfig(options);
  dirs.push(c.dir);
  return c;
}

/** 1-based line of the first line of `text` containing `needle`. */
const lineOf = (text, needle) => text.split('\n').findIndex((l) => l.includes(needle)) + 1;

describe('--version, --help, usage errors', () => {
  test('--version prints the version, exit 0', async () => {
    const r = await runCli(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /mistral-proxy \d+\.\d+\.\d+/);
  });

  test('--help names the commands, exit 0', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0, r.stderr);
    for (const word of ['serve', 'check', 'explain', '--config', '--listen']) assert.ok((r.stdout + r.stderr).includes(word), `--help lacks ${word}`);
  });

  test('an unknown command or option is a usage error, exit 2', async () => {
    for (const args of [['frobnicate'], ['serve', '--no-such-option'], ['check', '--config']]) {
      const r = await runCli(args);
      assert.equal(r.code, 2, `${args.join(' ')} -> exit ${r.code}; ${r.stderr}`);
      assert.ok(r.stderr.length > 0, 'a usage error says something on stderr');
    }
  });
});

describe('check', () => {
  test('a valid config: exit 0', async () => {
    const c = await config();
    const r = await runCli(['check', '--config', c.file]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  test('the shipped configs pass check', async () => {
    for (const file of ['config/mistral-proxy.yaml', 'config/mistral-proxy-eu.yaml']) {
      const r = await runCli(['check', '--config', join(repoRoot, file)]);
      assert.equal(r.code, 0, `${file}: ${r.stdout}${r.stderr}`);
    }
  });

  const broken = [
    ['an unknown top-level key', 'colour_scheme: blue', 'colour_scheme'],
    ['an unknown key inside an upstream', null, 'base_ur:'],
    ['a duplicate key', 'region: eu', 'region'],
    ['a bad duration', null, 'read_timeout'],
    ['a bad region', null, 'region'],
  ];
  for (const [name, extra, needle] of broken) {
    test(`${name}: exit 1 with FILE:LINE:COL pointing at it`, async () => {
      let c;
      if (name.includes('inside an upstream')) c = await config({ upstreams: { mistral: { base_ur: 'http://x/v1' } } });
      else if (name.includes('bad duration')) c = await config({ upstreams: { mistral: { base_url: 'http://127.0.0.1:9/v1', read_timeout: 'soon' } } });
      else if (name.includes('bad region')) c = await config({ region: 'mars' });
      else c = await config({ extraYaml: extra });
      const r = await runCli(['check', '--config', c.file]);
      assert.equal(r.code, 1, `exit ${r.code}; ${r.stdout}${r.stderr}`);
      const out = r.stdout + r.stderr;
      const m = new RegExp(`${c.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:(\\d+):(\\d+): `).exec(out);
      assert.ok(m, `no ${c.file}:LINE:COL: in ${out}`);
      const wanted = name.includes('duplicate') ? c.text.split('\n').findLastIndex((l) => l.startsWith('region:')) + 1 : lineOf(c.text, needle === 'region' ? 'region: mars' : needle);
      assert.equal(Number(m[1]), wanted, `line number in ${out.trim()} (config:\n${c.text})`);
    });
  }

  test('a broken rule file: exit 1 naming the rule file with LINE:COL', async () => {
    const c = await config();
    const rules = join(c.dir, 'broken-rules.yaml');
    await writeFile(rules, 'models:\n  - match: "codestral-*"\n    hots: codestral\n');
    const c2 = await config({ rules: [rules] });
    const r = await runCli(['check', '--config', c2.file]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, new RegExp(`${rules.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3:\\d+: `));
  });

  test('serve refuses a broken config with exit 1', async () => {
    const c = await config({ extraYaml: 'colour_scheme: blue' });
    const r = await runCli(['serve', '--config', c.file, '--listen', '127.0.0.1:0']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /colour_scheme/);
  });
});

describe('explain', () => {
  const SECRET = 'sk-explain-secret-0f9e8d';
  const env = { MISTRAL_API_KEY: SECRET, CODESTRAL_API_KEY: `${SECRET}-cs` };

  async function explain(request, { options = {}, endpoint, viaStdin = false } = {}) {
    const c = await config(options);
    const args = ['explain', '--config', c.file];
    if (endpoint) args.push('--endpoint', endpoint);
    let input;
    if (viaStdin) {
      args.push('-');
      input = JSON.stringify(request);
    } else {
      const file = join(c.dir, 'request.json');
      await writeFile(file, typeof request === 'string' ? request : JSON.stringify(request));
      args.push(file);
    }
    const r = await runCli(args, { env, input });
    assert.ok(!(r.stdout + r.stderr).includes(SECRET), 'a key appears in explain output');
    return r;
  }

  test('prints {upstream, url, rules, body} for a chat request', async () => {
    const r = await explain({ model: 'mistral-small-latest', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(out).sort(), ['body', 'rules', 'upstream', 'url']);
    assert.equal(out.upstream, 'mistral');
    assert.equal(out.url, 'http://127.0.0.1:9/v1/chat/completions');
    assert.deepEqual(out.rules, []);
    assert.deepEqual(out.body, { model: 'mistral-small-latest', messages: [{ role: 'user', content: 'hi' }] });
  });

  test('prints the fallback chain of the model it would send, from the rule files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mistral-proxy-fallbacks-'));
    try {
      const extra = join(dir, 'fallbacks.yaml');
      await writeFile(extra, 'fallbacks:\n  "mistral-large-*": [mistral-medium-latest, mistral-small-latest]\n  mistral-medium-latest: [open-mistral-nemo]\n');
      const rules = [join(repoRoot, 'rules', 'mistral.yaml'), extra];
      // gpt-4o is aliased to mistral-large-latest first: the chain is the sent model's.
      const r = await explain({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }, { options: { rules } });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout).fallbacks, ['mistral-medium-latest', 'mistral-small-latest', 'open-mistral-nemo']);
      const none = await explain({ model: 'mistral-small-latest', messages: [{ role: 'user', content: 'hi' }] }, { options: { rules } });
      assert.ok(!('fallbacks' in JSON.parse(none.stdout)), none.stdout);
      // A loop is refused at load, at FILE:LINE:COL.
      await writeFile(extra, 'fallbacks:\n  a: [b]\n  b: [a]\n');
      const loop = await runCli(['check', '--config', (await config({ rules })).file], { env });
      assert.equal(loop.code, 1);
      assert.ok(loop.stderr.includes(`${extra}:2:3: fallbacks 'a' -> 'b' -> 'a' loops`), loop.stderr);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('reads the request from stdin with -', async () => {
    const r = await explain({ model: 'mistral-small-latest', messages: [{ role: 'user', content: 'stdin' }] }, { viaStdin: true });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).body.messages[0].content, 'stdin');
  });

  test('--endpoint /v1/fim/completions goes to codestral; region eu sends chat to mistral_eu', async () => {
    const fim = await explain({ model: 'codestral-latest', prompt: 'def' }, { endpoint: '/v1/fim/completions' });
    assert.equal(fim.code, 0, fim.stderr);
    const out = JSON.parse(fim.stdout);
    assert.equal(out.upstream, 'codestral');
    assert.match(out.url, /\/fim\/completions$/);
    const eu = await explain({ model: 'mistral-small-latest', messages: [{ role: 'user', content: 'x' }] }, { options: { region: 'eu' } });
    assert.equal(JSON.parse(eu.stdout).upstream, 'mistral_eu');
  });

  test('shows the normalizations with their rule ids', async () => {
    const r = await explain({ model: 'gpt-4o', messages: [{ role: 'developer', content: 'be brief' }, { role: 'user', content: 'hi' }], user: 'u-1', max_completion_tokens: 9 });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.body.model, 'mistral-large-latest');
    assert.equal(out.body.messages[0].role, 'system');
    assert.equal(out.body.max_tokens, 9);
    assert.ok(!('user' in out.body));
    for (const id of ['model_alias', 'messages', 'params']) assert.ok(out.rules.includes(id), `rules ${out.rules} lack ${id}`);
  });

  test('a request that is not JSON: exit 1', async () => {
    const r = await explain('{not json');
    assert.equal(r.code, 1, r.stdout);
  });

  test('explain shows exactly what serve sends', async () => {
    const request = { model: 'gpt-4o', messages: [{ role: 'developer', content: 'x' }, { role: 'user', content: 'same path' }], seed: 3, user: 'u', temperature: 0.5 };
    const stack = await startStack();
    try {
      const res = await postJson(`${stack.proxy.baseURL}/chat/completions`, request);
      const sent = stack.fakes.mistral.requests[0];
      assert.ok(sent, `nothing sent (status ${res.status}: ${res.text})`);
      const c = await config({ upstreams: { mistral: { base_url: stack.fakes.mistral.url } } });
      const file = join(c.dir, 'request.json');
      await writeFile(file, JSON.stringify(request));
      const r = await runCli(['explain', '--config', c.file, file], { env });
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      assert.deepEqual(out.body, JSON.parse(sent.body));
      assert.equal(out.url, `${stack.fakes.mistral.url}/chat/completions`);
      const headerRules = (res.headers['x-mistral-proxy-rules'] ?? '').split(',').filter(Boolean);
      assert.deepEqual([...out.rules].sort(), [...headerRules].sort());
    } finally {
      await stack.stop();
    }
  });
});
