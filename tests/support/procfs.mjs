// Watching a running proxy from the outside (Linux /proc), bounded polling, and
// starting the binary exactly as a config file says (no --listen override).
//
//   fdCount(pid), rssBytes(pid), peakRssBytes(pid), threadCount(pid)
//   await waitUntil(() => fdCount(pid) <= n, { timeoutMs: 5000, label: 'fds back' })
//   const p = await serveConfig(configFile, { env });  p.port, p.pid, p.logs(), p.signal('SIGHUP'), await p.stop()
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { proxyBinary } from './proxy.mjs';

/** Number of open file descriptors of `pid`. */
export function fdCount(pid) {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** What the descriptors of `pid` point at (for failure messages): {"socket": n, "anon_inode:[eventfd]": n, ...}. */
export function fdKinds(pid) {
  const kinds = {};
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    const kind = target.replace(/\[\d+\]$/, '').replace(/^\/.*/, 'file');
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  }
  return kinds;
}

function statusField(pid, name) {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text);
  if (!m) throw new Error(`no ${name} in /proc/${pid}/status`);
  return Number(m[1]);
}

/** Resident set size of `pid` in bytes (VmRSS). */
export const rssBytes = (pid) => statusField(pid, 'VmRSS') * 1024;
/** The largest resident set size `pid` has had, in bytes (VmHWM). */
export const peakRssBytes = (pid) => statusField(pid, 'VmHWM') * 1024;
export const threadCount = (pid) => statusField(pid, 'Threads');

/** The soft limit on open files of `pid` (what the proxy may really open). */
export function openFilesLimit(pid) {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.split(/\s{2,}/)[1];
  return soft === 'unlimited' ? Infinity : Number(soft);
}

/**
 * Polls `probe` until it returns a truthy value (returned), every `intervalMs`, for at most
 * `timeoutMs`; then rejects with `label` and the last value seen (`describe(last)` if given).
 */
export async function waitUntil(probe, { timeoutMs = 5000, intervalMs = 25, label = 'condition', describe } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${label}${describe ? `: ${describe()}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Runs `mistral-proxy serve --config FILE` with exactly `env` (plus PATH) and without a
 * --listen override, so the config's `listen` is the one in force (reload tests).
 * Resolves once it prints "listening on".
 */
export async function serveConfig(configFile, { env = {}, args = [], startTimeoutMs = 10_000 } = {}) {
  const child = spawn(proxyBinary, ['serve', '--config', configFile, ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  // 'close', not 'exit': resolved once stdout/stderr are drained too, so logs() is complete.
  const exited = new Promise((res) => child.on('close', (code, signal) => res({ code, signal })));
  let exitInfo = null;
  exited.then((info) => (exitInfo = info));
  const listening = new Promise((res, rej) => {
    const onData = (d) => {
      output += d.toString();
      const m = /listening on (\S+):(\d+)/.exec(output);
      if (m) res({ host: m[1], port: Number(m[2]) });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', rej);
    exited.then(({ code, signal }) => rej(new Error(`mistral-proxy exited (code ${code}, signal ${signal}) before listening:\n${output}`)));
  });
  let timer;
  const guard = new Promise((_, rej) => {
    timer = setTimeout(() => rej(new Error(`no "listening on" within ${startTimeoutMs} ms:\n${output}`)), startTimeoutMs);
  });
  let address;
  try {
    address = await Promise.race([listening, guard]);
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return {
    pid: child.pid,
    port: address.port,
    url: `http://127.0.0.1:${address.port}`,
    baseURL: `http://127.0.0.1:${address.port}/v1`,
    logs: () => output,
    exited,
    get exitInfo() {
      return exitInfo;
    },
    signal: (name) => child.kill(name),
    /** SIGTERM, SIGKILL after graceMs; resolves {code, signal}. */
    async stop(graceMs = 5000) {
      if (exitInfo) return exitInfo;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const info = await exited;
      clearTimeout(killer);
      return info;
    },
  };
}
