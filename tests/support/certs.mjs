// Test PKI made with the openssl CLI in a temporary folder (EC P-256: fast).
//
//   const pki = await makeTestCerts();
//   pki.ca.cert            PEM file path of the test CA (give it to the proxy as ca_file)
//   pki.server.{key,cert}  localhost + 127.0.0.1, signed by the test CA
//   pki.wrongHost.{key,cert}  signed by the test CA, but for wrong.example only
//   pki.otherCa.cert       an unrelated CA
//   pki.otherServer.{key,cert}  localhost + 127.0.0.1, signed by the unrelated CA
//   pki.read(path)         file contents (Buffer)
//   await pki.cleanup()
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function openssl(args, cwd) {
  try {
    return await run('openssl', args, { cwd });
  } catch (error) {
    throw new Error(`openssl ${args.join(' ')} failed: ${error.stderr || error.message}`);
  }
}

async function makeCa(dir, name, subject) {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.pem`);
  await openssl([
    'req', '-x509', '-new', '-nodes',
    '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', subject,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ], dir);
  return { key, cert };
}

async function makeLeaf(dir, name, ca, commonName, altNames) {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.pem`);
  const ext = join(dir, `${name}.ext`);
  await writeFile(ext, [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=serverAuth',
    `subjectAltName=${altNames.join(',')}`,
    '',
  ].join('\n'));
  await openssl(['req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
    '-keyout', key, '-out', csr, '-subj', `/CN=${commonName}`], dir);
  await openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', `0x${randomBytes(8).toString('hex')}`,
    '-out', cert, '-days', '2', '-sha256', '-extfile', ext], dir);
  return { key, cert };
}

export async function makeTestCerts() {
  const dir = await mkdtemp(join(tmpdir(), 'mistral-proxy-pki-'));
  const ca = await makeCa(dir, 'test-ca', '/CN=mistral-proxy test CA');
  const otherCa = await makeCa(dir, 'other-ca', '/CN=unrelated test CA');
  const [server, wrongHost, otherServer] = await Promise.all([
    makeLeaf(dir, 'server', ca, 'localhost', ['DNS:localhost', 'IP:127.0.0.1']),
    makeLeaf(dir, 'wrong-host', ca, 'wrong.example', ['DNS:wrong.example']),
    makeLeaf(dir, 'other-server', otherCa, 'localhost', ['DNS:localhost', 'IP:127.0.0.1']),
  ]);
  return {
    dir,
    ca,
    otherCa,
    server,
    wrongHost,
    otherServer,
    read: (path) => readFileSync(path),
    /** {key, cert} file contents of a leaf, as startFakeMistral's `tls` option wants them. */
    tlsOptions: (leaf) => ({ key: readFileSync(leaf.key), cert: readFileSync(leaf.cert) }),
    readText: (path) => readFile(path, 'utf8'),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
