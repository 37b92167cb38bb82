// js/wasm-fix.mjs on the built package: each rewrite either applies or fails the build
// loudly. Needs `js/build.sh` to have built js/pkg and js/dist.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const here = (p) => new URL(p, import.meta.url).pathname;
const fix = (...args) => spawnSync(process.execPath, [here('../wasm-fix.mjs'), ...args], { encoding: 'utf8' });

function scratch(t) {
  const dir = mkdtempSync(join(tmpdir(), 'orgtracking-wasm-fix-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('every import of the shipped module is a key of the bundled glue, every name short', () => {
  const module = new WebAssembly.Module(readFileSync(here('../dist/tracking_bg.wasm')));
  const entry = readFileSync(here('../dist/index.js'), 'utf8');
  const imports = WebAssembly.Module.imports(module);
  assert.ok(imports.length > 50, `${imports.length} imports`);
  for (const { module: from, name } of imports) {
    assert.equal(from, 'a');
    assert.ok(name.length <= 2, name);
    assert.match(entry, new RegExp(`[{,]${name}:`), `the glue has no key ${name}`);
  }
  for (const { name } of WebAssembly.Module.exports(module)) assert.ok(name.length <= 3, name);
});

test('minify-imports fails the build when the glue does not match the module', (t) => {
  const dir = scratch(t);
  // The module as wasm-bindgen wrote it, beside glue whose names were already changed
  // (as if wasm-bindgen had changed how it names them): nothing may be half renamed.
  const wasm = join(dir, 'm.wasm');
  const js = join(dir, 'glue.js');
  copyFileSync(here('../pkg/tracking_bg.wasm'), wasm);
  copyFileSync(here('../pkg/tracking.js'), js);
  const before = readFileSync(js, 'utf8');
  const run = fix('minify-imports', wasm, js);
  assert.equal(run.status, 1, run.stderr);
  assert.match(run.stderr, /not as expected/);
  assert.equal(readFileSync(js, 'utf8'), before, 'the glue is left as it was');
  writeFileSync(js, 'export {};');
  assert.equal(fix('minify-imports', wasm, js).status, 1);
});

test('stub-panics fails the build on a module without names', (t) => {
  const dir = scratch(t);
  const wasm = join(dir, 'm.wasm');
  copyFileSync(here('../dist/tracking_bg.wasm'), wasm);
  const run = fix('stub-panics', wasm);
  assert.notEqual(run.status, 0);
  assert.match(run.stderr, /no name section/);
});

test('stub-panics stubs the closure adapters the glue does not export, and only those', (t) => {
  const dir = scratch(t);
  const wasm = join(dir, 'm.wasm');
  copyFileSync(here('../pkg/tracking_bg.wasm'), wasm);
  const run = fix('stub-panics', wasm);
  assert.equal(run.status, 0, run.stderr);
  const [, adapters, kept] = run.stderr.match(/ (\d+) unused closure adapters; kept: ([^)]*)\)/) || [];
  // No `#[wasm_bindgen(jspi)]` export, so wasm-bindgen deleted the JSPI poll export.
  assert.match(run.stderr, /\(([1-9]\d*) JSPI task functions,/);
  assert.ok(Number(adapters) > 0, run.stderr);
  // Each adapter the glue calls is kept: the glue's wrapper has the name of its export
  // (`wasm_bindgen__convert__closures_____invoke__h<hash>`), the function `invoke::h<hash>`.
  const glue = readFileSync(here('../pkg/tracking.js'), 'utf8');
  const called = [...glue.matchAll(/function wasm_bindgen__convert__closures_\w+invoke__(h[0-9a-f]+)\(/g)].map((m) => m[1]);
  assert.ok(called.length > 0, 'the glue calls a closure adapter');
  for (const hash of called) assert.ok(kept.split(' ').includes(hash), `${hash} stubbed: ${run.stderr}`);
  assert.ok(readFileSync(wasm).length < readFileSync(here('../pkg/tracking_bg.wasm')).length);
});
