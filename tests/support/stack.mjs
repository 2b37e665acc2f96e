// A proxy in front of three fake Mistral hosts, the usual setup of the suites.
//
//   const stack = await startStack({ proxy: { region: 'eu' } });
//   stack.fakes.mistral / stack.fakes.mistral_eu / stack.fakes.codestral
//   stack.proxy.baseURL
//   await stack.stop()
import { startFakeMistral } from '../fake-mistral/fake-mistral.mjs';
import { startProxy } from './proxy.mjs';

export const KEYS = Object.freeze({
  mistral: 'test-key-mistral-7f3a9c', // mistral and mistral_eu share MISTRAL_API_KEY, as in SPEC §2
  codestral: 'test-key-codestral-51be2d',
});

/**
 * @param {object} [options]
 * @param {object} [options.proxy]  passed to startProxy; its upstreams/env are merged over the defaults
 * @param {object} [options.fake]   extra startFakeMistral options for all three fakes (e.g. stream)
 * @param {boolean} [options.withEnvKeys]  default true: MISTRAL_API_KEY / CODESTRAL_API_KEY set
 */
export async function startStack(options = {}) {
  const fakeOptions = options.fake ?? {};
  const [mistral, mistral_eu, codestral] = await Promise.all([
    startFakeMistral({ ...fakeOptions, name: 'mistral', apiKey: KEYS.mistral }),
    startFakeMistral({ ...fakeOptions, name: 'mistral_eu', apiKey: KEYS.mistral }),
    startFakeMistral({ ...fakeOptions, name: 'codestral', apiKey: KEYS.codestral }),
  ]);
  const fakes = { mistral, mistral_eu, codestral };
  const p = options.proxy ?? {};
  const upstreams = {};
  for (const [name, fake] of Object.entries(fakes)) upstreams[name] = { base_url: fake.url, ...(p.upstreams?.[name] ?? {}) };
  const env = options.withEnvKeys === false ? { ...(p.env ?? {}) } : { MISTRAL_API_KEY: KEYS.mistral, CODESTRAL_API_KEY: KEYS.codestral, ...(p.env ?? {}) };
  let proxy;
  try {
    proxy = await startProxy({ ...p, upstreams, env });
  } catch (error) {
    await Promise.all(Object.values(fakes).map((f) => f.close()));
    throw error;
  }
  return {
    fakes,
    proxy,
    /** Requests every fake received. */
    allRequests: () => Object.values(fakes).flatMap((f) => f.requests),
    reset() {
      for (const f of Object.values(fakes)) f.reset();
    },
    async stop() {
      try {
        await proxy.stop();
      } finally {
        await Promise.all(Object.values(fakes).map((f) => f.close()));
      }
    },
  };
}
