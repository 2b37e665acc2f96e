#!/usr/bin/env node
// Generates rules/mistral-schema.yaml: which fields Mistral accepts where, derived
// from Mistral's OpenAPI description (public/openapi.yaml of
// github.com/mistralai/platform-docs-public).
//
//   node rules/gen-schema.mjs PATH/TO/mistral-openapi.yaml [OUT.yaml]
//
// The output is checked in (the proxy and its tests never read the OpenAPI file);
// re-run this and commit the result when Mistral's description changes. The
// normalizer's `params` and `messages` rules drop every field these lists do not
// name (Mistral's schemas have additionalProperties: false and answer 422
// "Extra inputs are not permitted").
//
// Only the `yaml` package is needed; it is taken from tests/node_modules (run
// `npm ci` in tests/ once) or from a global install.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, basename } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

async function loadYaml() {
  try {
    return createRequire(join(here, '..', 'tests', 'package.json'))('yaml');
  } catch {
    return import('yaml');
  }
}

const REF = '#/components/schemas/';

export function deriveSchema(openapi) {
  const all = openapi?.components?.schemas;
  if (!all) throw new Error('no components.schemas in the OpenAPI document');
  const named = (name) => {
    if (!all[name]) throw new Error(`schema ${name} is not defined`);
    return all[name];
  };
  const deref = (s) => {
    let node = s;
    for (let i = 0; node && node.$ref && i < 20; i++) node = named(node.$ref.slice(REF.length));
    return node;
  };
  // Every branch of anyOf/oneOf (flattened), refs resolved.
  const branches = (s) => {
    const node = deref(s);
    const alts = node?.anyOf ?? node?.oneOf;
    return alts ? alts.flatMap(branches) : [node];
  };
  const propsOf = (s) => {
    const node = deref(s);
    const keys = Object.keys(node?.properties ?? {});
    for (const part of node?.allOf ?? []) keys.push(...propsOf(part));
    return [...new Set(keys)];
  };
  const kindsOf = (s) => {
    const kinds = new Set();
    for (const b of branches(s)) {
      if (!b || (b.type === undefined && b.enum === undefined && b.const === undefined)) kinds.add('any');
      else if (b.type) for (const t of [b.type].flat()) kinds.add(t === 'integer' ? 'number' : t);
      else kinds.add(typeof (b.enum?.[0] ?? b.const) === 'string' ? 'string' : 'any');
    }
    return kinds.has('any') ? ['any'] : [...kinds].sort();
  };
  const enumOf = (s) => {
    const values = [];
    for (const b of branches(s)) {
      if (b?.enum) values.push(...b.enum.filter((v) => typeof v === 'string'));
      else if (b && b.type !== 'null') return []; // a free string or another type: no enum check
    }
    return [...new Set(values)];
  };
  // `open`: a schema that does not forbid extra fields (a multipart form, whose
  // fields FastAPI reads by name and others it ignores; SpeechRequest, which
  // says additionalProperties: true). The normalizer still drops what it does
  // not name (params), so that nothing goes to Mistral unread.
  const requestFields = (name, open = false) => {
    const schema = named(name);
    if (!open && schema.additionalProperties !== false) throw new Error(`${name} no longer forbids extra fields; review the normalizer`);
    const out = {};
    for (const [field, sub] of Object.entries(schema.properties)) {
      const spec = { kinds: kindsOf(sub) };
      const values = enumOf(sub);
      if (values.length > 0) spec.enum = values;
      out[field] = spec;
    }
    return out;
  };
  // The branch of a tagged union: discriminator mapping tag -> schema.
  const mapping = (s) => {
    for (const b of [deref(s), ...branches(s)]) {
      const d = b?.discriminator ?? deref(b?.items)?.discriminator;
      if (d?.mapping) return Object.fromEntries(Object.entries(d.mapping).map(([tag, ref]) => [tag, ref.slice(REF.length)]));
    }
    for (const b of branches(s)) {
      if (b?.type === 'array') return mapping(b.items);
    }
    throw new Error('no discriminator mapping found');
  };
  const requestBodySchema = (path, type = 'application/json') => {
    const ref = openapi.paths?.[path]?.post?.requestBody?.content?.[type]?.schema?.$ref;
    if (!ref?.startsWith(REF)) throw new Error(`POST ${path} has no ${type} request body schema`);
    return ref.slice(REF.length);
  };
  const objectBranch = (s) => branches(s).find((b) => b?.type === 'object' || b?.properties);
  const arrayItems = (s) => branches(s).find((b) => b?.type === 'array')?.items;

  const chat = named('ChatCompletionRequest');
  const roles = mapping(chat.properties.messages.items);
  const assistant = named(roles.assistant);
  const toolCall = deref(arrayItems(assistant.properties.tool_calls));
  const userContentParts = mapping(arrayItems(named(roles.user).properties.content));
  const systemParts = mapping(arrayItems(named(roles.system).properties.content));
  const toolTypes = mapping(arrayItems(chat.properties.tools));
  const tool = named(toolTypes.function);
  const toolChoice = chat.properties.tool_choice;
  const responseFormat = deref(chat.properties.response_format);
  const imageChunk = named(userContentParts.image_url);

  const contentParts = {};
  for (const [type, schemaName] of Object.entries(userContentParts)) contentParts[type] = propsOf(named(schemaName));

  return {
    chat_request: requestFields('ChatCompletionRequest'),
    fim_request: requestFields('FIMCompletionRequest'),
    embedding_request: requestFields('EmbeddingRequest'),
    // POST /v1/moderations takes ClassificationRequest: named by the path, not by a "Moderation" schema.
    moderation_request: requestFields(requestBodySchema('/v1/moderations')),
    // POST /v1/audio/transcriptions: a multipart form (AudioTranscriptionRequest).
    transcription_request: requestFields(requestBodySchema('/v1/audio/transcriptions', 'multipart/form-data'), true),
    // POST /v1/audio/speech: SpeechRequest (additionalProperties: true upstream).
    speech_request: requestFields(requestBodySchema('/v1/audio/speech'), true),
    system_message: propsOf(named(roles.system)),
    user_message: propsOf(named(roles.user)),
    assistant_message: propsOf(assistant),
    tool_message: propsOf(named(roles.tool)),
    content_parts: contentParts,
    system_content_part_types: Object.keys(systemParts),
    image_url: propsOf(objectBranch(imageChunk.properties.image_url)),
    tool: propsOf(tool),
    function: propsOf(tool.properties.function),
    tool_call: propsOf(toolCall),
    function_call: propsOf(toolCall.properties.function),
    tool_choice: propsOf(objectBranch(toolChoice)),
    tool_choice_values: branches(toolChoice).flatMap((b) => b?.enum ?? []),
    response_format: propsOf(responseFormat),
    response_format_types: enumOf(responseFormat.properties.type),
    json_schema: propsOf(objectBranch(responseFormat.properties.json_schema)),
  };
}

// YAML that is also readable: one line per schema, flow style, every string quoted.
function render(schema, source) {
  const q = (v) => JSON.stringify(v);
  const list = (items) => `[${items.map(q).join(', ')}]`;
  const lines = [
    '# GENERATED by rules/gen-schema.mjs from Mistral\'s OpenAPI description — do not edit by hand.',
    `# Source: ${source}`,
    '# Refresh: node rules/gen-schema.mjs PATH/TO/mistral-openapi.yaml  (then commit this file)',
    '#',
    '# The fields each Mistral request schema accepts (additionalProperties: false upstream).',
    '# rules/mistral.yaml includes this file; the normalizer drops anything not listed here.',
    'schema:',
  ];
  for (const [key, value] of Object.entries(schema)) {
    if (Array.isArray(value)) {
      lines.push(`  ${key}: ${list(value)}`);
    } else if (key.endsWith('_request')) {
      lines.push(`  ${key}:`);
      for (const [field, spec] of Object.entries(value)) {
        const parts = [`kinds: ${list(spec.kinds)}`];
        if (spec.enum) parts.push(`enum: ${list(spec.enum)}`);
        lines.push(`    ${q(field)}: {${parts.join(', ')}}`);
      }
    } else {
      lines.push(`  ${key}:`);
      for (const [type, keys] of Object.entries(value)) lines.push(`    ${q(type)}: ${list(keys)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [input, output = join(here, 'mistral-schema.yaml')] = process.argv.slice(2);
  if (!input) {
    console.error('usage: node rules/gen-schema.mjs PATH/TO/mistral-openapi.yaml [OUT.yaml]');
    process.exit(2);
  }
  const { parse } = await loadYaml();
  const openapi = parse(readFileSync(input, 'utf8'), { maxAliasCount: -1 });
  const version = openapi?.info?.version ? ` (info.version ${openapi.info.version})` : '';
  writeFileSync(output, render(deriveSchema(openapi), `${basename(input)}${version}`));
  console.log(`wrote ${output}`);
}
