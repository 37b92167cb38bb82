#!/usr/bin/env node
// Post-processing of the SDK's wasm module, in place:
//
//   node wasm-fix.mjs stub-panics FILE    make core's panic-message formatting trap at once
//   node wasm-fix.mjs check-formatting FILE   fail if formatting code is left (needs names)
//   node wasm-fix.mjs strip-custom FILE   drop every custom section (names, producers, ...)
//
// stub-panics is `panic_immediate_abort` for stable Rust, at the wasm level. The
// browser build's panic handler traps without looking at the message
// (sdk-wasm/src/wasm_rt.rs), yet core's panicking paths still build those messages
// (`Debug` for `char` and ranges, `Display` for integers, Unicode printability tables)
// before calling it: a sixth of the module. This replaces the bodies of core's
// `panicking::*` functions, its formatting functions (`core::fmt::*`, `Debug`/`Display`
// impls) and its out-of-line failure paths (`slice_error_fail*`, `slice_index_fail`,
// `unwrap_failed`, ...) with `unreachable`. Nothing in the SDK formats anything: those
// functions only run on the way to a panic, which traps either way, so behaviour is
// unchanged; wasm-opt then drops what only they called. It needs the name section, so
// it runs before wasm-opt.
//
// It matches rustc's symbol names, so it fails loudly instead of silently doing
// nothing: stub-panics exits 1 when it finds none of core's panicking functions, and
// check-formatting (run on the optimized module, names kept) exits 1 when any of
// core's formatting machinery is still there.
import { readFileSync, writeFileSync } from 'node:fs';

const STUB = [
  /^core(\[[0-9a-f]+\])?::panicking::/,
  /^core(\[[0-9a-f]+\])?::fmt::/,
  /^<core(\[[0-9a-f]+\])?::fmt::/,
  / as core(\[[0-9a-f]+\])?::fmt::(Debug|Display|Write)>::/,
  /^core(\[[0-9a-f]+\])?::unicode::printable::/,
  /^<char>::escape_debug/,
  /^core(\[[0-9a-f]+\])?::str::slice_error_fail/,
  /^core(\[[0-9a-f]+\])?::slice::index::slice_(start_|end_)?index_(len_)?fail/,
  /^core(\[[0-9a-f]+\])?::option::(unwrap|expect)_failed/,
  /^core(\[[0-9a-f]+\])?::result::unwrap_failed/,
  /^core(\[[0-9a-f]+\])?::cell::panic_already_(mutably_)?borrowed/,
  /^__rustc(\[[0-9a-f]+\])?::__rdl_alloc_error_handler/,
];

function leb(buf, i) {
  let value = 0;
  let shift = 0;
  for (;;) {
    const b = buf[i++];
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if (b < 0x80) return [value, i];
  }
}

function uleb(n) {
  const out = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return Buffer.from(out);
}

function* sections(buf) {
  let i = 8;
  while (i < buf.length) {
    const id = buf[i];
    const [size, body] = leb(buf, i + 1);
    yield { id, whole: buf.subarray(i, body + size), body: buf.subarray(body, body + size) };
    i = body + size;
  }
}

const customName = (body) => {
  const [n, p] = leb(body, 0);
  return body.subarray(p, p + n).toString('utf8');
};

const section = (id, content) => Buffer.concat([Buffer.from([id]), uleb(content.length), content]);

// Skips a limits structure (flags, min, optional max) and returns the next position.
function limits(body, p) {
  const flags = body[p];
  let [, q] = leb(body, p + 1);
  if (flags & 1) [, q] = leb(body, q);
  return q;
}

// The imports: how many functions, and the element types of imported tables.
function imports(buf) {
  let functions = 0;
  const tables = [];
  for (const { id, body } of sections(buf)) {
    if (id !== 2) continue;
    let [count, p] = leb(body, 0);
    while (count--) {
      let n;
      [n, p] = leb(body, p);
      p += n;
      [n, p] = leb(body, p);
      p += n;
      const kind = body[p++];
      if (kind === 0) {
        [, p] = leb(body, p);
        functions += 1;
      } else if (kind === 1) {
        tables.push(body[p]);
        p = limits(body, p + 1);
      } else if (kind === 2) {
        p = limits(body, p);
      } else if (kind === 3) {
        p += 2;
      } else {
        [, p] = leb(body, p + 1);
      }
    }
  }
  return { functions, tables };
}

function functionNames(buf) {
  const names = new Map();
  for (const { id, body } of sections(buf)) {
    if (id !== 0 || customName(body) !== 'name') continue;
    let [n, p] = leb(body, 0);
    p += n;
    while (p < body.length) {
      const sub = body[p];
      const [size, start] = leb(body, p + 1);
      if (sub === 1) {
        let [count, q] = leb(body, start);
        while (count--) {
          let idx;
          let len;
          [idx, q] = leb(body, q);
          [len, q] = leb(body, q);
          names.set(idx, body.subarray(q, q + len).toString('utf8'));
          q += len;
        }
      }
      p = start + size;
    }
  }
  return names;
}

function stubPanics(buf) {
  const names = functionNames(buf);
  if (!names.size) throw new Error('stub-panics: the module has no name section');
  const first = imports(buf).functions;
  const parts = [buf.subarray(0, 8)];
  let stubbed = 0;
  for (const { id, whole, body } of sections(buf)) {
    if (id !== 10) {
      parts.push(whole);
      continue;
    }
    let [count, p] = leb(body, 0);
    const out = [uleb(count)];
    for (let i = 0; i < count; i++) {
      const [size, q] = leb(body, p);
      const name = names.get(first + i) || '';
      if (STUB.some((re) => re.test(name))) {
        out.push(Buffer.from([3, 0x00, 0x00, 0x0b])); // size 3: no locals; unreachable; end
        stubbed += 1;
      } else {
        out.push(body.subarray(p, q + size));
      }
      p = q + size;
    }
    parts.push(section(10, Buffer.concat(out)));
  }
  const panicking = [...names.values()].filter((n) => STUB[0].test(n)).length;
  if (!panicking || stubbed < 10) {
    console.error(`stub-panics: found ${panicking} of core's panicking functions and stubbed ${stubbed}: `
      + "rustc's symbol names changed, update STUB in js/wasm-fix.mjs");
    process.exit(1);
  }
  console.error(`stub-panics: ${stubbed} functions now trap at once`);
  return Buffer.concat(parts);
}

// Formatting code that must not survive stub-panics and wasm-opt.
const FORMATTING = [/core(\[[0-9a-f]+\])?::fmt::/, /pad_integral/, /::fmt::Formatter/, /core(\[[0-9a-f]+\])?::unicode::printable/];

// The body size of each defined function, by function index.
function bodySizes(buf) {
  const first = imports(buf).functions;
  const sizes = new Map();
  for (const { id, body } of sections(buf)) {
    if (id !== 10) continue;
    let [count, p] = leb(body, 0);
    for (let i = 0; i < count; i++) {
      const [size, q] = leb(body, p);
      sizes.set(first + i, size);
      p = q + size;
    }
  }
  return sizes;
}

function checkFormatting(buf) {
  const byIndex = functionNames(buf);
  if (!byIndex.size) {
    console.error('check-formatting: the module has no name section');
    process.exit(1);
  }
  const sizes = bodySizes(buf);
  const names = [...byIndex.values()];
  // A stub that is still in the function table is a few bytes that trap: harmless.
  const left = [...byIndex].filter(([i, n]) => (sizes.get(i) || 0) > 8 && FORMATTING.some((re) => re.test(n))).map(([, n]) => n);
  if (left.length) {
    console.error(`check-formatting: ${left.length} formatting functions are left, e.g. ${left.slice(0, 3).join(', ')}`);
    process.exit(1);
  }
  console.error(`check-formatting: none of ${names.length} functions formats anything`);
  return null;
}

function stripCustom(buf) {
  const parts = [buf.subarray(0, 8)];
  for (const { id, whole } of sections(buf)) {
    if (id !== 0) parts.push(whole);
  }
  return Buffer.concat(parts);
}

const [command, file] = process.argv.slice(2);
const run = { 'stub-panics': stubPanics, 'check-formatting': checkFormatting, 'strip-custom': stripCustom }[command];
if (!run || !file) {
  console.error('usage: node wasm-fix.mjs stub-panics|check-formatting|strip-custom FILE');
  process.exit(2);
}
const out = run(readFileSync(file));
if (out) writeFileSync(file, out);
