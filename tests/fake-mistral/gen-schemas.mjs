#!/usr/bin/env node
// Generates tests/fake-mistral/mistral-schemas.json from Mistral's OpenAPI description.
//
//   node tests/fake-mistral/gen-schemas.mjs PATH/TO/mistral-openapi.yaml [OUT.json]
//
// PATH is required: the OpenAPI file lives outside the repo (upstream it is
// public/openapi.yaml of github.com/mistralai/platform-docs-public). The output is
// checked in so the tests run on a clone without that file; re-run this script
// and commit the result when the description changes.
//
// What it does: takes the request schemas the fake Mistral validates bodies
// against (ROOTS below) plus every schema they reference, transitively, via
// `$ref: '#/components/schemas/X'`; rewrites those refs to `#/$defs/X`; drops
// annotations that do not affect validation (description, examples, example,
// title, deprecated, x-*); and writes one JSON Schema 2020-12 document whose
// $defs hold them all. The fake compiles `{"$ref": "<$id>#/$defs/<Root>"}` with
// ajv/dist/2020. Nothing else is changed: `additionalProperties: false` stays,
// so unknown fields get Mistral's 422 "Extra inputs are not permitted".
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve, basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

// ClassificationRequest: the body of POST /v1/moderations. AudioTranscriptionRequest(Stream):
// the form of POST /v1/audio/transcriptions (the fake validates its fields as an object).
// SpeechRequest: the body of POST /v1/audio/speech.
export const ROOTS = ['ChatCompletionRequest', 'FIMCompletionRequest', 'EmbeddingRequest', 'ClassificationRequest',
  'AudioTranscriptionRequest', 'AudioTranscriptionRequestStream', 'SpeechRequest',
  // batch jobs: the job request, a batch file's lines, an upload's purpose
  'CreateBatchJobRequest', 'BatchRequest', 'FilePurpose'];
export const SCHEMA_ID = 'https://mistral-proxy.test/mistral-schemas.json';

const ANNOTATIONS = new Set(['description', 'examples', 'example', 'title', 'deprecated', 'externalDocs', 'xml']);
// Keywords whose value is a map from names to schemas (the names must be kept as they are).
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas']);
const REF_PREFIX = '#/components/schemas/';

function refTarget(ref) {
  if (typeof ref !== 'string' || !ref.startsWith(REF_PREFIX)) {
    throw new Error(`unsupported $ref ${JSON.stringify(ref)} (only ${REF_PREFIX}X is handled)`);
  }
  return decodeURIComponent(ref.slice(REF_PREFIX.length)).replaceAll('~1', '/').replaceAll('~0', '~');
}

// Copies a schema without annotations, with refs rewritten; calls onRef(name) for each ref.
function cleanSchema(node, onRef) {
  if (Array.isArray(node)) return node.map((item) => cleanSchema(item, onRef));
  if (node === null || typeof node !== 'object') return node;
  const out = {};
  for (const [key, value] of Object.entries(node)) {
    if (ANNOTATIONS.has(key) || key.startsWith('x-')) continue;
    if (key === '$ref') {
      const name = refTarget(value);
      onRef(name);
      out.$ref = `#/$defs/${name}`;
    } else if (key === 'discriminator') {
      // Kept for readers (it says which branch of a oneOf applies); Ajv ignores it
      // with strict:false. Its mapping values are refs too.
      const mapping = {};
      for (const [tag, ref] of Object.entries(value.mapping ?? {})) {
        const name = refTarget(ref);
        onRef(name);
        mapping[tag] = `#/$defs/${name}`;
      }
      out.discriminator = { propertyName: value.propertyName, ...(value.mapping ? { mapping } : {}) };
    } else if (SCHEMA_MAPS.has(key) && value && typeof value === 'object' && !Array.isArray(value)) {
      out[key] = Object.fromEntries(Object.entries(value).map(([name, sub]) => [name, cleanSchema(sub, onRef)]));
    } else if (key === 'enum' || key === 'const' || key === 'default' || key === 'required') {
      out[key] = value; // data, not schemas
    } else {
      out[key] = cleanSchema(value, onRef);
    }
  }
  return out;
}

export function extractSchemas(openapi, roots = ROOTS) {
  const all = openapi?.components?.schemas;
  if (!all) throw new Error('no components.schemas in the OpenAPI document');
  const defs = {};
  const queue = [...roots];
  while (queue.length > 0) {
    const name = queue.shift();
    if (defs[name]) continue;
    if (!all[name]) throw new Error(`schema ${name} is referenced but not defined`);
    defs[name] = cleanSchema(all[name], (ref) => {
      if (!defs[ref]) queue.push(ref);
    });
  }
  const sorted = Object.fromEntries(Object.keys(defs).sort().map((name) => [name, defs[name]]));
  return sorted;
}

// One $defs entry per line: small enough to read in a diff, and a diff names the schema that changed.
function render(doc) {
  const head = {
    $schema: doc.$schema,
    $id: doc.$id,
    $comment: doc.$comment,
    roots: doc.roots,
  };
  const lines = ['{'];
  for (const [key, value] of Object.entries(head)) lines.push(`  ${JSON.stringify(key)}: ${JSON.stringify(value)},`);
  lines.push('  "$defs": {');
  const names = Object.keys(doc.$defs);
  names.forEach((name, i) => {
    lines.push(`    ${JSON.stringify(name)}: ${JSON.stringify(doc.$defs[name])}${i + 1 < names.length ? ',' : ''}`);
  });
  lines.push('  }', '}', '');
  return lines.join('\n');
}

function main(argv) {
  const [input, outputArg] = argv;
  if (!input || input === '-h' || input === '--help') {
    process.stderr.write('usage: node gen-schemas.mjs PATH/TO/mistral-openapi.yaml [OUT.json]\n');
    process.exit(input ? 0 : 2);
  }
  const here = dirname(fileURLToPath(import.meta.url));
  const output = resolve(outputArg ?? join(here, 'mistral-schemas.json'));
  const openapi = parse(readFileSync(input, 'utf8'), { maxAliasCount: -1 });
  const defs = extractSchemas(openapi);
  const doc = {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: SCHEMA_ID,
    $comment:
      `Generated by tests/fake-mistral/gen-schemas.mjs from ${basename(input)} ` +
      `(OpenAPI ${openapi.openapi}, "${openapi.info?.title}" ${openapi.info?.version}). Do not edit by hand.`,
    roots: ROOTS,
    $defs: defs,
  };
  writeFileSync(output, render(doc));
  process.stdout.write(`wrote ${output}: ${Object.keys(defs).length} schemas\n`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2));
}
