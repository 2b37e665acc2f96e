// A real redis-server on loopback for the suites that share state between
// proxies through it (limits.backend, responses.store). CI installs
// redis-server (scripts/install-deps); a suite skips itself when it is missing:
//
//   describe('...', { skip: haveRedis ? false : 'redis-server is not installed' }, () => {
//     const redis = await startRedis();   redis.url -> "redis://127.0.0.1:PORT/0"
//     await redis.stop();
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { withTimeout } from './http.mjs';

export const haveRedis = spawnSync('redis-server', ['--version']).status === 0;

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts redis-server (no persistence) on a free loopback port; resolves {url, stop()}. */
export async function startRedis() {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  await withTimeout(
    new Promise((resolve, reject) => {
      child.stdout.on('data', (data) => {
        output += data;
        if (output.includes('Ready to accept connections')) resolve();
      });
      child.on('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${output}`)));
    }),
    10_000,
    'redis-server start',
  );
  return {
    url: `redis://127.0.0.1:${port}/0`,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.on('exit', resolve);
        child.kill('SIGTERM');
      }),
  };
}
