// The installed Debian package, driven by tests/package/run after `dpkg -i`
// (root): MISTRAL_PROXY_BIN is the installed binary, MISTRAL_PROXY_INSTALLED_RULES
// the installed rule file. Not part of scripts/test (it needs the package installed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { startStack } from '../support/stack.mjs';
import { request, postJson, withTimeout } from '../support/http.mjs';

const bin = process.env.MISTRAL_PROXY_BIN;
const rules = process.env.MISTRAL_PROXY_INSTALLED_RULES;
const user = process.env.MISTRAL_PROXY_USER ?? 'mistral-proxy';

test('the installed binary and rule file proxy a chat request to the fake Mistral', async () => {
  assert.ok(bin && rules, 'MISTRAL_PROXY_BIN and MISTRAL_PROXY_INSTALLED_RULES are set by tests/package/run');
  const stack = await startStack({ proxy: { rules: [rules] } });
  try {
    const res = await postJson(`${stack.proxy.url}/v1/chat/completions`, {
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'hello from the package' }],
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.choices[0].message.content, 'echo: hello from the package');
    assert.match(res.headers['x-mistral-proxy-rules'] ?? '', /\bmodel_alias\b/);
    assert.equal(stack.fakes.mistral.requests.length, 1);
    assert.equal(JSON.parse(stack.fakes.mistral.requests[0].body).model, 'mistral-large-latest');
  } finally {
    await stack.stop();
  }
});

test('as the package user, with the installed config found without --config: /healthz, then a clean stop', async () => {
  // setpriv execs the proxy in its own place (same PID), so SIGTERM reaches it.
  // Only /healthz is asked: the installed config's upstreams are the real Mistral hosts.
  const child = spawn('setpriv', [`--reuid=${user}`, `--regid=${user}`, '--init-groups', '--', bin, 'serve', '--listen', '127.0.0.1:0'], {
    cwd: '/',
    env: { PATH: '/usr/bin:/bin' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const listening = new Promise((resolve, reject) => {
    const onData = (data) => {
      output += data.toString();
      const match = /listening on \S+:(\d+)/.exec(output);
      if (match) resolve(Number(match[1]));
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    exited.then(({ code, signal }) => reject(new Error(`exited (code ${code}, signal ${signal}) before listening:\n${output}`)));
  });
  try {
    const port = await withTimeout(listening, 10_000, `"listening on" from the installed proxy:\n${output}`);
    const res = await request(`http://127.0.0.1:${port}/healthz`);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { status: 'ok' });
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  }
  const { code, signal } = await withTimeout(exited, 10_000, 'the installed proxy to stop on SIGTERM');
  assert.equal(signal, null, output);
  assert.equal(code, 0, output);
});
