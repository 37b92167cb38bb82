#!/usr/bin/env node
// Post-processing of the SDK's wasm module, in place:
//
//   node wasm-fix.mjs stub-panics FILE    make core's panic-message formatting trap at once
//   node wasm-fix.mjs check-formatting FILE   fail if formatting code is left (needs names)
//   node wasm-fix.mjs strip-custom FILE   drop every custom section (names, producers, ...)
//   node wasm-fix.mjs minify-imports FILE JS   give the imports and exports short names, in the
//                                           module and in wasm-bindgen's JS glue JS
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
// unchanged; wasm-opt then drops what only they called. It also stubs wasm-bindgen's
// closure adapters (`convert::closures::invoke`) that the glue does not export: one is
// instantiated for each closure type any js-sys or web-sys binding describes, and the
// descriptions leave them all in the exported function table, where wasm-opt cannot
// see that nothing calls them (43 of 44 here, 2 KB); and js-sys's JSPI task machinery
// when wasm-bindgen has deleted its poll export (no task can exist). It needs the name
// section, so it runs before wasm-opt.
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

// The module with the body of its section `sectionId` replaced by `rewrite(body)`.
function rewriteSection(buf, sectionId, rewrite) {
  const parts = [buf.subarray(0, 8)];
  for (const { id, whole, body } of sections(buf)) parts.push(id === sectionId ? section(id, rewrite(body)) : whole);
  return Buffer.concat(parts);
}

// Skips a limits structure (flags, min, optional max) and returns the next position.
function limits(body, p) {
  const flags = body[p];
  let [, q] = leb(body, p + 1);
  if (flags & 1) [, q] = leb(body, q);
  return q;
}

// The entries of an import section's body: module and field names, the kind, where
// the kind's descriptor starts (`desc`, the kind byte) and where the entry ends.
function* importEntries(body) {
  let [count, p] = leb(body, 0);
  while (count--) {
    const names = [];
    for (let k = 0; k < 2; k++) {
      let n;
      [n, p] = leb(body, p);
      names.push(body.subarray(p, p + n).toString('utf8'));
      p += n;
    }
    const desc = p;
    const kind = body[p++];
    if (kind === 0) [, p] = leb(body, p);
    else if (kind === 1) p = limits(body, p + 1);
    else if (kind === 2) p = limits(body, p);
    else if (kind === 3) p += 2;
    else [, p] = leb(body, p + 1);
    yield { module: names[0], field: names[1], kind, desc, end: p };
  }
}

// The imports: how many functions, and the element types of imported tables.
function imports(buf) {
  let functions = 0;
  const tables = [];
  for (const { id, body } of sections(buf)) {
    if (id !== 2) continue;
    for (const { kind, desc } of importEntries(body)) {
      if (kind === 0) functions += 1;
      else if (kind === 1) tables.push(body[desc + 1]);
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

// wasm-bindgen's closure adapters, one per closure type that any binding describes;
// the glue calls the ones it uses through an export of their own.
const INVOKE = /^wasm_bindgen(\[[0-9a-f]+\])?::convert::closures::.*::invoke::h[0-9a-f]+$/;

// js-sys's JSPI task machinery. wasm-bindgen deletes its poll export
// (`__wbg_jspi_task_poll`) from a module with no `#[wasm_bindgen(jspi)]` export, so
// no such task is ever made; its waker's functions stay in the table only because
// the waker's vtable names them.
const JSPI = /^(core::ptr::drop_in_place<alloc::rc::Rc<)?js_sys(\[[0-9a-f]+\])?::futures::jspi::/;
const JSPI_POLL = '__wbg_jspi_task_poll';

/** The indices of the functions the module exports. */
function exportedFunctions(buf) {
  const exported = new Set();
  for (const { id, body } of sections(buf)) {
    if (id !== 7) continue;
    let [count, p] = leb(body, 0);
    while (count--) {
      let n;
      [n, p] = leb(body, p);
      const kind = body[p + n];
      const [index, end] = leb(body, p + n + 1);
      if (kind === 0) exported.add(index);
      p = end;
    }
  }
  return exported;
}

function stubPanics(buf) {
  const names = functionNames(buf);
  if (!names.size) throw new Error('stub-panics: the module has no name section');
  const first = imports(buf).functions;
  // Exported functions by name, a shim (`<name> externref shim`) as what it wraps.
  const used = new Set([...exportedFunctions(buf)].map((i) => (names.get(i) || '').split(' ')[0]));
  const jspi = used.has(JSPI_POLL);
  let stubbed = 0;
  let invokes = 0;
  let tasks = 0;
  const kept = [];
  const out = rewriteSection(buf, 10, (body) => {
    let [count, p] = leb(body, 0);
    const bodies = [uleb(count)];
    for (let i = 0; i < count; i++) {
      const [size, q] = leb(body, p);
      const name = names.get(first + i) || '';
      // A closure adapter the glue does not export (itself, or through the shim
      // wasm-bindgen wraps it in) is in the function table only because a binding's
      // description took its address: nothing calls it.
      const unusedInvoke = INVOKE.test(name) && !used.has(name);
      const deadTask = !jspi && JSPI.test(name);
      if (STUB.some((re) => re.test(name)) || unusedInvoke || deadTask) {
        bodies.push(Buffer.from([3, 0x00, 0x00, 0x0b])); // size 3: no locals; unreachable; end
        stubbed += 1;
        invokes += unusedInvoke ? 1 : 0;
        tasks += deadTask ? 1 : 0;
      } else {
        if (INVOKE.test(name)) kept.push(name.slice(name.lastIndexOf('::') + 2));
        bodies.push(body.subarray(p, q + size));
      }
      p = q + size;
    }
    return Buffer.concat(bodies);
  });
  const panicking = [...names.values()].filter((n) => STUB[0].test(n)).length;
  if (!panicking || stubbed < 10) {
    console.error(`stub-panics: found ${panicking} of core's panicking functions and stubbed ${stubbed}: `
      + "rustc's symbol names changed, update STUB in js/wasm-fix.mjs");
    process.exit(1);
  }
  console.error(`stub-panics: ${stubbed} functions now trap at once (${tasks} JSPI task functions, ${invokes} unused closure adapters; kept: ${kept.join(' ')})`);
  return out;
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

// A short name for the n-th import: a JS identifier (the glue writes it as a key).
function shortName(n) {
  const letters = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
  let name = '';
  do {
    name += letters[n % letters.length];
    n = Math.floor(n / letters.length);
  } while (n);
  return name;
}

const GLUE_MODULE = './tracking_bg.js';

// wasm-bindgen names each import of its glue `__wbg_<what>_<16 hex digits>` (or
// `__wbindgen_<what>`) in module './tracking_bg.js': about 3 KB of names in the module
// and again in the JS, whose hash digits gzip cannot shrink. Each becomes a name of
// one or two letters, in both files, and the exports follow. Fails loudly when the glue does not have
// each name exactly once as a key of its imports object, so a change in wasm-bindgen's
// output cannot leave the two files disagreeing.
function minifyImports(buf, jsFile) {
  let js = readFileSync(jsFile, 'utf8');
  const renamed = new Map();
  const module = rewriteSection(buf, 2, (body) => {
    const out = [uleb(leb(body, 0)[0])];
    for (const { module: from, field, desc, end } of importEntries(body)) {
      let names = [from, field];
      if (from === GLUE_MODULE) {
        if (!renamed.has(field)) renamed.set(field, shortName(renamed.size));
        names = ['a', renamed.get(field)];
      }
      for (const text of names) {
        const bytes = Buffer.from(text, 'utf8');
        out.push(uleb(bytes.length), bytes);
      }
      out.push(body.subarray(desc, end));
    }
    return Buffer.concat(out);
  });
  const moduleKey = `"${GLUE_MODULE}": import0`;
  const problems = [];
  if (js.split(moduleKey).length !== 2) problems.push(`the glue has not one ${moduleKey}`);
  for (const [field, name] of renamed) {
    const uses = js.match(new RegExp(`\\b${field}\\b`, 'g')) || [];
    const keys = js.match(new RegExp(`\\n\\s+${field}: function`, 'g')) || [];
    if (uses.length !== 1 || keys.length !== 1) problems.push(`${field}: ${uses.length} uses, ${keys.length} keys`);
    else js = js.replace(new RegExp(`\\b${field}\\b`), name);
  }
  if (!renamed.size || problems.length) {
    console.error(`minify-imports: wasm-bindgen's glue is not as expected (${renamed.size} imports): ${problems.slice(0, 3).join('; ')}`);
    process.exit(1);
  }
  js = js.replace(moduleKey, 'a: import0');
  const [out, exported] = minifyExports(module, js);
  writeFileSync(jsFile, exported);
  console.error(`minify-imports: ${renamed.size} imports and the exports renamed`);
  return out;
}

// The exports too: the glue reaches them only as `wasm.<name>` (`wasm` is the
// instance's exports), which is checked: no computed access, no other alias. (Its
// `init()` also returns the exports object, which the npm entry does not use.)
function minifyExports(buf, js) {
  // `wasm[...]`, or `wasm` assigned to something else (`x = wasm`, `{ a } = wasm`).
  if (/\bwasm\s*\[/.test(js) || (js.match(/= instance\.exports/g) || []).length !== 1 || /[^=!<>]=\s*wasm\b(?!\.)/.test(js)) {
    console.error("minify-imports: the glue reaches the module's exports in a way other than wasm.<name>");
    process.exit(1);
  }
  let glue = js;
  let renamed = 0;
  const out = rewriteSection(buf, 7, (body) => {
    let [count, p] = leb(body, 0);
    const parts = [uleb(count)];
    for (let i = 0; i < count; i++) {
      let n;
      [n, p] = leb(body, p);
      const field = body.subarray(p, p + n).toString('utf8');
      p += n;
      const kind = body[p];
      const [, end] = leb(body, p + 1);
      const name = `x${shortName(i)}`;
      glue = glue.replace(new RegExp(`\\bwasm\\.${field.replace(/\$/g, '\\$')}\\b`, 'g'), `wasm.${name}`);
      renamed += 1;
      const bytes = Buffer.from(name, 'utf8');
      parts.push(uleb(bytes.length), bytes, Buffer.from([kind]), body.subarray(p + 1, end));
      p = end;
    }
    return Buffer.concat(parts);
  });
  if (!renamed) {
    console.error('minify-imports: the module has no exports');
    process.exit(1);
  }
  return [out, glue];
}

const [command, file, extra] = process.argv.slice(2);
const run = {
  'stub-panics': stubPanics,
  'check-formatting': checkFormatting,
  'strip-custom': stripCustom,
  'minify-imports': (buf) => minifyImports(buf, extra),
}[command];
if (!run || !file || (command === 'minify-imports' && !extra)) {
  console.error('usage: node wasm-fix.mjs stub-panics|check-formatting|strip-custom FILE | minify-imports FILE JS');
  process.exit(2);
}
const out = run(readFileSync(file));
if (out) writeFileSync(file, out);
