// The SDK's benchmark: what a page downloads, what a call costs, what arrives.
//
//   node js/bench/run.mjs        (after js/build.sh; `npm run bench` in js/)
//
// 1. Size: raw, gzip -9 and brotli (quality 11) of what a page downloads for the SDK:
//    the ESM entry + the wasm module, and the legacy <script> bundle + the wasm module.
// 2. Speed: 10,000 sendTrackEvent calls in one synchronous burst in headless Chromium.
//    The page is cross-origin isolated (COOP/COEP), so performance.now() has a 5 µs
//    resolution; calls are timed in chunks of 100 and the median of the chunk means is
//    reported (0.05 µs resolution), with the p95 chunk and the whole burst's mean.
//    The longest main-thread task: the burst itself is one task of the caller's; after
//    it, a MessageChannel heartbeat measures the longest gap the SDK's own work (timers,
//    batch sends, localStorage writes) leaves the main thread blocked, plus any
//    `longtask` entries (tasks over 50 ms) the browser reports.
// 3. Delivery: how many of the 10,000 events reach a local server (the fake ingest
//    server of js/test/server.mjs), each once, and the bytes per event on the wire
//    (gzip with CompressionStream) against the same batches uncompressed.
// 4. A burst then navigation: 10,000 events, the page left at once, the next page of
//    the site: how many arrive, each once.
import { readFileSync } from 'node:fs';
import { gzipSync, brotliCompressSync, constants } from 'node:zlib';
import { startServer } from '../test/server.mjs';
import { launch, until } from '../test/browser.mjs';

const N = 10000;
const CHUNK = 100;
const dist = new URL('../dist/', import.meta.url);

function sizes(files) {
  const data = Buffer.concat(files.map((f) => readFileSync(new URL(f, dist))));
  const each = files.map((f) => {
    const d = readFileSync(new URL(f, dist));
    return { file: f, raw: d.length, gzip: gzipSync(d, { level: 9 }).length, brotli: brotliCompressSync(d, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length };
  });
  const sum = (k) => each.reduce((a, e) => a + e[k], 0);
  return { files: each, raw: data.length, gzip: sum('gzip'), brotli: sum('brotli') };
}

const kb = (n) => `${(n / 1000).toFixed(1)} KB`;

const esm = sizes(['index.js', 'tracking_bg.wasm']);
const legacy = sizes(['tracking.legacy.js', 'tracking_bg.wasm']);
console.log('# What a page downloads (each file compressed on its own, as served)');
for (const [label, s] of [['ESM entry + wasm', esm], ['legacy <script> bundle + wasm', legacy]]) {
  console.log(`${label}: raw ${kb(s.raw)}, gzip -9 ${kb(s.gzip)}, brotli ${kb(s.brotli)}`);
  for (const f of s.files) console.log(`  ${f.file}: raw ${f.raw} B, gzip -9 ${f.gzip} B, brotli ${f.brotli} B`);
}

const srv = await startServer({
  headers: { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' },
});
const browser = await launch();
let result;
try {
  const page = await browser.page();
  await page.goto(`${srv.url}/esm.html`);
  await page.waitForFunction(() => window.T);
  result = await page.evaluate(async ({ n, chunk }) => {
    const { T } = window;
    const isolated = window.crossOriginIsolated;
    T.configure({ endpoint: '/s/bench', storageKey: 'bench' });
    T.identifyAuthenticatedUser(42);
    await T.ready();
    // Warm up (JIT, allocator), then let it drain.
    for (let i = 0; i < 500; i++) T.sendTrackEvent('edx.bench.warmup.sent', { i });
    await T.flush();
    await new Promise((r) => setTimeout(r, 300));

    const longtasks = [];
    let observer;
    try {
      observer = new PerformanceObserver((list) => list.getEntries().forEach((e) => longtasks.push(e.duration)));
      observer.observe({ type: 'longtask' });
    } catch (e) { /* not supported */ }

    const chunks = [];
    const props = { course_id: 'course-v1:edX+DemoX+Demo_Course', block_id: 'block-v1:edX+DemoX+Demo_Course+type@problem+block@1', label: 'burst' };
    const start = performance.now();
    for (let c = 0; c < n / chunk; c++) {
      const t = performance.now();
      for (let i = 0; i < chunk; i++) {
        props.i = c * chunk + i;
        T.sendTrackEvent('edx.bench.event.sent', props);
      }
      chunks.push(((performance.now() - t) * 1000) / chunk);
    }
    const burstMs = performance.now() - start;

    // Heartbeat until the queue is empty: the longest gap is the longest task.
    const gaps = await new Promise((resolve) => {
      const ch = new MessageChannel();
      let last = performance.now();
      let max = 0;
      let lastStats = last;
      const deadline = last + 30000;
      ch.port1.onmessage = () => {
        const now = performance.now();
        max = Math.max(max, now - last);
        last = now;
        // getStats() first records every call still captured, in one go, so it is
        // read only every 250 ms: the gaps measured are the SDK's own tasks.
        const s = now - lastStats >= 250 ? ((lastStats = now), T.getStats()) : undefined;
        if ((s && s.queued === 0 && now - start > 200) || now > deadline) resolve({ max, drainedMs: now - start });
        else setTimeout(() => ch.port2.postMessage(0), 0);
      };
      ch.port2.postMessage(0);
    });
    if (observer) observer.disconnect();
    chunks.sort((a, b) => a - b);
    return {
      medianUs: chunks[chunks.length / 2],
      p95Us: chunks[Math.floor(chunks.length * 0.95)],
      meanUs: (burstMs * 1000) / n,
      burstMs,
      longestTaskAfterMs: gaps.max,
      drainedMs: gaps.drainedMs,
      longtasks,
      isolated,
      stats: T.getStats(),
    };
  }, { n: N, chunk: CHUNK });
  const events = await until(() => {
    const got = srv.events.filter((e) => e.name === 'edx.bench.event.sent');
    return got.length >= N && got;
  }, 60000) || srv.events.filter((e) => e.name === 'edx.bench.event.sent');
  result.delivered = new Set(events.map((e) => e.id)).size;
  result.duplicates = srv.duplicates;
  const requests = srv.scenario('bench').requests;
  result.requests = requests.length;
  const sent = requests.reduce((n, r) => n + JSON.parse(r.body).events.length, 0);
  result.wirePerEvent = requests.reduce((n, r) => n + r.wireBytes, 0) / sent;
  result.plainPerEvent = requests.reduce((n, r) => n + Buffer.byteLength(r.body), 0) / sent;
  result.gzipped = requests.filter((r) => r.contentEncoding === 'gzip').length;
  await page.close();

  // A burst, then at once the next page of the site, which sends what the last one stored.
  const nav = await browser.page();
  await nav.goto(`${srv.url}/esm.html`);
  await nav.waitForFunction(() => window.T);
  await nav.evaluate(async ({ n }) => {
    const { T } = window;
    await T.ready();
    T.configure({ endpoint: '/s/navigate', storageKey: 'navigate' });
    const props = { course_id: 'course-v1:edX+DemoX+Demo_Course', block_id: 'block-v1:edX+DemoX+Demo_Course+type@problem+block@1', label: 'burst' };
    for (let i = 0; i < n; i++) T.sendTrackEvent('edx.bench.navigate.sent', { ...props, i });
    location.href = '/esm.html?next';
  }, { n: N });
  await nav.waitForURL('**/esm.html?next');
  await nav.waitForFunction(() => window.T);
  await nav.evaluate(() => window.T.configure({ endpoint: '/s/navigate', storageKey: 'navigate' }));
  const arrived = await until(() => {
    const got = srv.events.filter((e) => e.name === 'edx.bench.navigate.sent');
    return got.length >= N && got;
  }, 60000) || srv.events.filter((e) => e.name === 'edx.bench.navigate.sent');
  result.navigated = new Set(arrived.map((e) => e.id)).size;
  await nav.close();
} finally {
  await browser.close();
  await srv.close();
}

console.log(`\n# ${N} sendTrackEvent calls in one burst, headless Chromium`);
console.log(`cross-origin isolated (5 µs timer): ${result.isolated}`);
console.log(`median ${result.medianUs.toFixed(2)} µs per call (chunks of ${CHUNK}; p95 ${result.p95Us.toFixed(2)} µs; mean ${result.meanUs.toFixed(2)} µs)`);
console.log(`the burst: ${result.burstMs.toFixed(1)} ms (one task of the caller's)`);
console.log(`longest main-thread task after it (SDK timers, sends, storage): ${result.longestTaskAfterMs.toFixed(1)} ms; queue drained in ${result.drainedMs.toFixed(0)} ms`);
console.log(`longtask entries (>50 ms): ${result.longtasks.length ? result.longtasks.map((d) => d.toFixed(0)).join(', ') : 'none'}`);
console.log(`delivered to the local server: ${result.delivered} of ${N} (duplicates seen by the server: ${result.duplicates}; ${result.requests} requests, ${result.gzipped} gzipped)`);
console.log(`bytes per event on the wire: ${result.wirePerEvent.toFixed(1)} (the same batches uncompressed: ${result.plainPerEvent.toFixed(1)}; ratio ${(result.wirePerEvent / result.plainPerEvent).toFixed(3)})`);
console.log(`\n# ${N} events, then navigation at once, then the next page of the site`);
console.log(`delivered: ${result.navigated} of ${N}`);
console.log(`SDK stats: enqueued ${result.stats.enqueued}, sent ${result.stats.sent}, retried ${result.stats.retried}, dropped ${result.stats.dropped.total}`);
console.log(`\n${JSON.stringify({ esm: { raw: esm.raw, gzip: esm.gzip, brotli: esm.brotli }, legacy: { raw: legacy.raw, gzip: legacy.gzip, brotli: legacy.brotli }, ...result, stats: undefined })}`);
