#!/usr/bin/env node
// Generates tests/support/openai-schemas.json: OpenAI's own schemas of the answers
// the proxy gives, taken from OpenAI's OpenAPI description, so that the suites can
// check every answer against what OpenAI's clients are written for.
//
//   node tests/support/gen-openai-schemas.mjs PATH/TO/openai-openapi.yaml [OUT.json]
//   (npm run gen-openai-schemas, from tests/)
//
// PATH is required: the OpenAPI file lives outside the repo (upstream it is
// github.com/openai/openai-openapi). The output is checked in so the tests run on a
// clone without that file; re-run this script and commit the result when the
// description changes. openai-validate.mjs compiles it.
//
// What it does (the pattern of tests/fake-mistral/gen-schemas.mjs): takes the
// answer schemas in ROOTS plus every schema they reference, transitively; rewrites
// `$ref: '#/components/schemas/X'` to `#/$defs/X`; drops annotations; writes one
// JSON Schema 2020-12 document whose $defs hold them all. OpenAI's description mixes
// OpenAPI 3.0 and 3.1, so some keywords are translated for Ajv:
//   - `nullable: true` (3.0)  -> `null` added to `type` and `enum`, or the schema
//     wrapped as `anyOf: [schema, {type: null}]` when it has no `type` (e.g. a `$ref`);
//   - `oneOf`                 -> `anyOf`. An answer is checked for what a client
//     reads, not for the union being exclusive (several of OpenAI's unions overlap,
//     e.g. two open object shapes, and would fail `oneOf` on valid data);
//   - `discriminator`         -> when every branch is a `$ref` whose tag property has
//     one `enum`/`const` value: the tag must be one of the known values, and the
//     branch(es) of that tag are applied with `if`/`then`, so an error names the
//     fields of the branch the client would pick (not 50 alternatives). Otherwise
//     the union stays a plain `anyOf`;
//   - `$recursiveRef: '#'` (2019-09, in CompoundFilter) -> a `$ref` to the enclosing
//     schema; `$recursiveAnchor` dropped.
// Nothing else is changed: required fields, enums and types stay as OpenAI wrote them.
//
// DERIVED below adds shapes the description uses but does not name; each says why.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve, basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

// The answers the proxy gives today, and those of endpoints being built or planned
// (Responses API, moderations, transcriptions, batches, files).
export const ROOTS = [
  // chat, legacy completions, embeddings, models, errors
  'CreateChatCompletionResponse',
  'CreateChatCompletionStreamResponse',
  'CreateCompletionResponse',
  'CreateEmbeddingResponse',
  'ListModelsResponse',
  'Model',
  'DeleteModelResponse',
  'ErrorResponse',
  'Error',
  // Responses API. Each event of ResponseStreamEvent is a schema of its own name
  // (ResponseTextDeltaEvent, ResponseCompletedEvent, ...), pulled in by reference.
  // DELETE /responses/{id} has no answer schema in the description ("200: OK").
  'Response',
  'ResponseStreamEvent',
  'ResponseItemList',
  'TokenCountsResource',
  'CompactResource',
  // later work
  'CreateModerationResponse',
  'CreateTranscriptionResponseJson',
  'CreateTranscriptionResponseVerboseJson',
  'CreateTranscriptionResponseDiarizedJson',
  'CreateTranscriptionResponseStreamEvent',
  // POST /audio/speech with stream_format "sse" (its other answers are audio bytes)
  'CreateSpeechResponseStreamEvent',
  'SpeechAudioDeltaEvent',
  'SpeechAudioDoneEvent',
  'Batch',
  'ListBatchesResponse',
  'OpenAIFile',
  'ListFilesResponse',
  'DeleteFileResponse',
];

// Shapes OpenAI's description uses without naming them: name -> (defs) => schema.
export const DERIVED = {
  // POST /completions with stream:true sends CreateCompletionResponse objects as SSE
  // events (the description names no chunk schema), and OpenAI's own stream sends
  // `"finish_reason": null` on every chunk but the last, which the whole-answer
  // schema forbids. Same schema, finish_reason nullable.
  CreateCompletionStreamResponse: (defs) => {
    const schema = structuredClone(defs.CreateCompletionResponse);
    const reason = schema.properties.choices.items.properties.finish_reason;
    reason.type = [reason.type, 'null'];
    reason.enum = [...reason.enum, null];
    schema.$comment = 'CreateCompletionResponse with choices[].finish_reason nullable: the chunks of a streamed /completions answer';
    return schema;
  },
  // encoding_format "base64" (the openai SDKs' default): each embedding is a string,
  // base64 of little-endian float32, where the description only has the float array
  // (OpenAI's own answer is the same string; its SDKs decode it).
  CreateEmbeddingResponseBase64: (defs) => {
    const schema = structuredClone(defs.CreateEmbeddingResponse);
    schema.properties.data.items = structuredClone(defs.Embedding);
    schema.properties.data.items.properties.embedding = { type: 'string', pattern: '^[A-Za-z0-9+/]*={0,2}$' };
    schema.$comment = 'CreateEmbeddingResponse for encoding_format "base64": data[].embedding is a base64 string';
    return schema;
  },
};

// A line of a batch's output file (OpenAI's "The request output object",
// /docs/api-reference/batch/request-output): the description shows it in prose and
// examples only. `response` is null for a request that failed before any answer,
// `error` null for one that got an answer (its status may still be 4xx/5xx).
DERIVED.BatchRequestOutput = () => ({
  type: 'object',
  properties: {
    id: { type: 'string' },
    custom_id: { type: 'string' },
    response: {
      anyOf: [
        {
          type: 'object',
          properties: { status_code: { type: 'integer' }, request_id: { type: 'string' }, body: { type: 'object' } },
          required: ['status_code', 'request_id', 'body'],
        },
        { type: 'null' },
      ],
    },
    error: {
      anyOf: [
        { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } }, required: ['code', 'message'] },
        { type: 'null' },
      ],
    },
  },
  required: ['id', 'custom_id', 'response', 'error'],
  $comment: "OpenAI's batch output line (the request output object), from its documentation",
});

export const SCHEMA_ID = 'https://mistral-proxy.test/openai-schemas.json';

const ANNOTATIONS = new Set(['description', 'examples', 'example', 'title', 'deprecated', 'externalDocs', 'xml', 'readOnly', 'writeOnly']);
// Keywords whose value is a map from names to schemas (the names must be kept as they are).
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas']);
const REF_PREFIX = '#/components/schemas/';

function refTarget(ref) {
  if (typeof ref !== 'string' || !ref.startsWith(REF_PREFIX)) {
    throw new Error(`unsupported $ref ${JSON.stringify(ref)} (only ${REF_PREFIX}X is handled)`);
  }
  return decodeURIComponent(ref.slice(REF_PREFIX.length)).replaceAll('~1', '/').replaceAll('~0', '~');
}

// The values the tag property `tag` can take in `schema` (a `$ref` is followed), or undefined.
function tagsOf(all, schema, tag, depth = 0) {
  if (!schema || depth > 4) return undefined;
  if (schema.$ref) return tagsOf(all, all[refTarget(schema.$ref)], tag, depth + 1);
  const property = schema.properties?.[tag];
  if (property) {
    if (property.const !== undefined) return [property.const];
    if (Array.isArray(property.enum) && property.enum.length > 0) return property.enum;
    return undefined;
  }
  // The tag may come from an allOf part.
  for (const part of schema.allOf ?? []) {
    const found = tagsOf(all, part, tag, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

// Whether `schema` requires the tag property (a `$ref` is followed, allOf parts count).
function requiresTag(all, schema, tag, depth = 0) {
  if (!schema || depth > 4) return false;
  if (schema.$ref) return requiresTag(all, all[refTarget(schema.$ref)], tag, depth + 1);
  if (schema.required?.includes(tag)) return true;
  return (schema.allOf ?? []).some((part) => requiresTag(all, part, tag, depth + 1));
}

// A discriminated union as `if`/`then` per tag value; null when a branch has no tag to tell it by.
function discriminated(all, branches, discriminator, clean) {
  const tag = discriminator.propertyName;
  const byTag = new Map();
  const untagged = []; // branches that may leave the tag out (e.g. EasyInputMessage's optional "type")
  for (const branch of branches) {
    const values = tagsOf(all, branch, tag);
    if (values === undefined) return null;
    const cleaned = clean(branch);
    if (!requiresTag(all, branch, tag)) untagged.push(cleaned);
    for (const value of values) {
      if (!byTag.has(value)) byTag.set(value, []);
      byTag.get(value).push(cleaned);
    }
  }
  const tags = [...byTag.keys()];
  const one = (targets) => (targets.length === 1 ? targets[0] : { anyOf: targets });
  const cases = tags.map((value) => ({
    if: { properties: { [tag]: { const: value } }, required: [tag] },
    then: one(byTag.get(value)),
  }));
  if (untagged.length > 0) cases.push({ if: { not: { required: [tag] } }, then: one(untagged) });
  return {
    $comment: `discriminated by "${tag}"`,
    type: 'object',
    ...(untagged.length > 0 ? {} : { required: [tag] }),
    properties: { [tag]: { enum: tags } },
    allOf: cases,
  };
}

// Copies a schema without annotations, translated for Ajv (see the top); calls onRef(name) for each ref.
function cleanSchema(node, ctx) {
  if (Array.isArray(node)) return node.map((item) => cleanSchema(item, ctx));
  if (node === null || typeof node !== 'object') return node;
  const clean = (sub) => cleanSchema(sub, ctx);
  let out = {};
  for (const [key, value] of Object.entries(node)) {
    if (ANNOTATIONS.has(key) || key.startsWith('x-') || key === 'nullable' || key === '$recursiveAnchor' || key === 'discriminator') continue;
    if (key === '$ref') {
      const name = refTarget(value);
      ctx.onRef(name);
      out.$ref = `#/$defs/${name}`;
    } else if (key === '$recursiveRef') {
      if (value !== '#') throw new Error(`unsupported $recursiveRef ${JSON.stringify(value)} in ${ctx.name}`);
      out.$ref = `#/$defs/${ctx.name}`;
    } else if ((key === 'oneOf' || key === 'anyOf') && Array.isArray(value)) {
      const union = node.discriminator ? discriminated(ctx.all, value, node.discriminator, clean) : null;
      if (union) {
        // The union's own siblings (type, ...) stay; the union becomes an allOf part.
        out.allOf = [...(out.allOf ?? []), union];
      } else {
        out.anyOf = [...(out.anyOf ?? []), ...value.map(clean)];
      }
    } else if (key === 'allOf' && Array.isArray(value)) {
      out.allOf = [...value.map(clean), ...(out.allOf ?? [])];
    } else if (SCHEMA_MAPS.has(key) && value && typeof value === 'object' && !Array.isArray(value)) {
      out[key] = Object.fromEntries(Object.entries(value).map(([name, sub]) => [name, clean(sub)]));
    } else if (key === 'enum' || key === 'const' || key === 'default' || key === 'required') {
      out[key] = value; // data, not schemas
    } else {
      out[key] = clean(value);
    }
  }
  if (node.nullable === true) out = nullable(out);
  return out;
}

// OpenAPI 3.0 `nullable: true` in JSON Schema terms.
function nullable(schema) {
  if (schema.type !== undefined && Object.keys(schema).every((k) => k !== '$ref' && k !== 'allOf' && k !== 'anyOf')) {
    const out = { ...schema };
    out.type = [...new Set([...[schema.type].flat(), 'null'])];
    if (Array.isArray(schema.enum) && !schema.enum.includes(null)) out.enum = [...schema.enum, null];
    return out;
  }
  return { anyOf: [schema, { type: 'null' }] };
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
    defs[name] = cleanSchema(all[name], {
      all,
      name,
      onRef: (ref) => {
        if (!defs[ref]) queue.push(ref);
      },
    });
  }
  for (const [name, make] of Object.entries(DERIVED)) defs[name] = make(defs);
  return Object.fromEntries(Object.keys(defs).sort().map((name) => [name, defs[name]]));
}

// One $defs entry per line: small enough to read in a diff, and a diff names the schema that changed.
function render(doc) {
  const head = { $schema: doc.$schema, $id: doc.$id, $comment: doc.$comment, roots: doc.roots };
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

/** The text of openai-schemas.json for a parsed OpenAI description (`inputName` goes into $comment). */
export function generate(openapi, inputName) {
  const defs = extractSchemas(openapi);
  const doc = {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: SCHEMA_ID,
    $comment:
      `Generated by tests/support/gen-openai-schemas.mjs from ${inputName} ` +
      `(OpenAPI ${openapi.openapi}, "${openapi.info?.title}" ${openapi.info?.version}). Do not edit by hand.`,
    roots: [...ROOTS, ...Object.keys(DERIVED)],
    $defs: defs,
  };
  return render(doc);
}

export function readOpenApi(path) {
  return parse(readFileSync(path, 'utf8'), { maxAliasCount: -1 });
}

function main(argv) {
  const [input, outputArg] = argv;
  if (!input || input === '-h' || input === '--help') {
    process.stderr.write('usage: node gen-openai-schemas.mjs PATH/TO/openai-openapi.yaml [OUT.json]\n');
    process.exit(input ? 0 : 2);
  }
  const here = dirname(fileURLToPath(import.meta.url));
  const output = resolve(outputArg ?? join(here, 'openai-schemas.json'));
  const text = generate(readOpenApi(input), basename(input));
  writeFileSync(output, text);
  process.stdout.write(`wrote ${output}: ${Object.keys(JSON.parse(text).$defs).length} schemas\n`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2));
}
