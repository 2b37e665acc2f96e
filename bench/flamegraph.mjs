#!/usr/bin/env node
// A flame graph (SVG) from `perf script` output, with no other tool: stacks
// are folded (root first, one line per distinct stack with its sample count)
// and drawn as nested boxes whose widths are shares of the samples. Hovering
// a box shows its function, samples and share (the SVG's <title>).
//
//   perf record -F 999 --call-graph dwarf -p PID -o perf.data -- sleep 5
//   perf script -i perf.data | node bench/flamegraph.mjs --title "chat c32" > flame.svg
//
// Options: --title TEXT, --width PX (default 1200), --min-width PX (boxes
// narrower than this are left out, default 0.3), --folded (print the folded
// stacks instead of the SVG).
import { createInterface } from 'node:readline';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const title = option('--title', 'mistral-proxy');
const width = Number(option('--width', '1200'));
const minWidth = Number(option('--min-width', '0.3'));
const foldedOnly = args.includes('--folded');

// Function names as perf prints them, shortened: template arguments and
// parameter lists say little in a box a few pixels wide (the title keeps more).
function shorten(name) {
  let out = '';
  let depth = 0;
  for (const c of name) {
    if (c === '<' || c === '(') {
      if (depth === 0) out += c === '<' ? '<…>' : '()';
      ++depth;
    } else if (c === '>' || c === ')') {
      depth = Math.max(0, depth - 1);
    } else if (depth === 0) {
      out += c;
    }
  }
  return out.replace(/\s+/g, ' ').trim();
}

// perf script: a header line per sample, then one frame per line
// ("\t addr symbol+off (dso)"), then a blank line.
const folded = new Map();
let frames = [];
let comm = '';
const flush = () => {
  if (frames.length > 0 || comm) {
    const stack = [comm || '?', ...frames.reverse()].join(';');
    folded.set(stack, (folded.get(stack) ?? 0) + 1);
  }
  frames = [];
  comm = '';
};
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (line.trim() === '') {
    flush();
  } else if (/^\s/.test(line)) {
    const m = /^\s+[0-9a-f]+\s+(.+?)\s+\((.*)\)$/.exec(line);
    let symbol = m ? m[1] : line.trim();
    symbol = symbol.replace(/\+0x[0-9a-f]+$/, '');
    if (symbol === '[unknown]' && m) symbol = `[${m[2].split('/').pop()}]`;
    frames.push(shorten(symbol).replaceAll(';', ':'));
  } else {
    flush();
    comm = line.trim().split(/\s+/)[0];
  }
}
flush();

if (foldedOnly) {
  for (const [stack, count] of folded) process.stdout.write(`${stack} ${count}\n`);
  process.exit(0);
}

// The tree of stacks: each node's value is the samples under it.
const root = { name: 'all', value: 0, children: new Map() };
for (const [stack, count] of folded) {
  root.value += count;
  let node = root;
  for (const frame of stack.split(';')) {
    let child = node.children.get(frame);
    if (!child) {
      child = { name: frame, value: 0, children: new Map() };
      node.children.set(frame, child);
    }
    child.value += count;
    node = child;
  }
}

const rowHeight = 16;
const pad = 10;
let maxDepth = 0;
const boxes = [];
const escape = (text) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
function layout(node, x, depth) {
  const w = (node.value / root.value) * (width - 2 * pad);
  if (w < minWidth) return;
  maxDepth = Math.max(maxDepth, depth);
  boxes.push({ name: node.name, value: node.value, x, depth, w });
  let childX = x;
  for (const child of [...node.children.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    layout(child, childX, depth + 1);
    childX += (child.value / root.value) * (width - 2 * pad);
  }
}
layout(root, pad, 0);

// Warm colours by name, so the same function has the same colour in every graph.
const colour = (name) => {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `rgb(${205 + (h % 50)},${80 + ((h >> 8) % 130)},${40 + ((h >> 16) % 50)})`;
};
const height = (maxDepth + 1) * rowHeight + 3 * pad + 20;
const out = [];
out.push(`<?xml version="1.0" standalone="no"?>`);
out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="monospace" font-size="11">`);
out.push(`<rect width="100%" height="100%" fill="#fafafa"/>`);
out.push(`<text x="${pad}" y="${pad + 12}" font-size="14">${escape(title)} — ${root.value} samples</text>`);
for (const box of boxes) {
  const y = height - pad - (box.depth + 1) * rowHeight;
  const share = ((100 * box.value) / root.value).toFixed(2);
  const chars = Math.floor((box.w - 4) / 6.6);
  const label = chars >= 3 ? (box.name.length > chars ? `${box.name.slice(0, chars - 1)}…` : box.name) : '';
  out.push(
    `<g><title>${escape(box.name)} (${box.value} samples, ${share}%)</title>` +
      `<rect x="${box.x.toFixed(2)}" y="${y}" width="${box.w.toFixed(2)}" height="${rowHeight - 1}" fill="${colour(box.name)}" rx="2"/>` +
      (label ? `<text x="${(box.x + 3).toFixed(2)}" y="${y + 11}">${escape(label)}</text>` : '') +
      `</g>`,
  );
}
out.push('</svg>');
process.stdout.write(`${out.join('\n')}\n`);
