// The @org/tracking package in headless Chromium: the ESM entry (calls before the
// module is ready, a module that cannot load, a CSP without wasm-unsafe-eval), the
// legacy <script> bundle (window.Logger, window.OrgTracking), a real reload, and a
// navigation right after a burst. Needs `js/build.sh` to have built js/dist.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startServer } from './server.mjs';
import { launch, until } from './browser.mjs';

let srv;
let browser;

before(async () => {
  assert.ok(existsSync(new URL('../dist/index.js', import.meta.url)), 'run js/build.sh first');
  srv = await startServer();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await srv?.close();
});

beforeEach(() => {
  srv.reset();
  srv.hooks.length = 0;
});

const delayWasm = (ms) => srv.hooks.push(async (req, res, url) => {
  if (url.pathname.endsWith('.wasm')) await new Promise((r) => setTimeout(r, ms));
  return false;
});

async function esmPage(path = '/esm.html') {
  const page = await browser.page();
  await page.goto(srv.url + path);
  await page.waitForFunction(() => window.T);
  return page;
}

const eventsIn = (scenario) => srv.events.filter((e) => e.scenario === scenario);

test('calls made before the module is ready are captured and replayed in order', async () => {
  delayWasm(800);
  const page = await esmPage();
  const before = await page.evaluate(() => {
    const { T } = window;
    const t0 = Date.now();
    T.configure({ endpoint: '/s/preinit', flushInterval: 20, storageKey: 'preinit' });
    T.identifyAuthenticatedUser(42, { plan: 'pro' });
    location.hash = '#first';
    const props = { courseId: 'course-v1:edX+DemoX+Demo', nested: { innerKey: 1 } };
    const p = T.sendTrackingLogEvent('edx.test.preinit.logged', props);
    props.courseId = 'mutated after the call';
    location.hash = '#second';
    T.sendTrackEvent('edx.test.preinit.tracked', { n: 2 });
    T.sendPageEvent('course', 'Course Home', { tab: 'home' });
    return p.then(() => ({ t0, stats: T.getStats() }));
  });
  assert.equal(before.stats.ready, false);
  assert.equal(before.stats.loading, true);
  assert.equal(before.stats.pending, 5);
  const ok = await page.evaluate(() => window.T.ready());
  assert.equal(ok, true);
  await page.evaluate(() => window.T.flush());
  const events = await until(() => eventsIn('preinit').length >= 4 && eventsIn('preinit'));
  assert.deepEqual(events.map((e) => e.type), ['identify', 'tracking_log', 'track', 'page']);
  const [identify, log, track, pageEvent] = events;
  assert.equal(identify.user_id, '42');
  // Snapshot at the call: properties, page and time as they were then.
  assert.deepEqual(log.data, { course_id: 'course-v1:edX+DemoX+Demo', nested: { inner_key: 1 } });
  assert.ok(log.page.endsWith('#first'), log.page);
  assert.ok(track.page.endsWith('#second'), track.page);
  assert.equal(track.user_id, '42');
  assert.equal(pageEvent.name, 'Course Home');
  assert.equal(pageEvent.category, 'course');
  const stamp = Date.parse(log.timestamp);
  assert.ok(stamp >= before.t0 - 5 && stamp < before.t0 + 500, `timestamp ${log.timestamp} is the call's, not the replay's`);
  const stats = await page.evaluate(() => window.T.getStats());
  assert.equal(stats.ready, true);
  assert.equal(stats.sent, 4);
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('configure options reach the tracker; calls before configure wait for it', async () => {
  const page = await esmPage();
  await page.evaluate(() => window.T.ready());
  const before = await page.evaluate(() => {
    const { T } = window;
    localStorage.clear();
    // Ready but not configured yet: held by the entry, not dropped.
    T.sendTrackEvent('edx.test.options.early', { n: 0 });
    const stats = T.getStats();
    T.configure({
      endpoint: '/s/options/', batchSize: 3, flushInterval: 60000, storageKey: false,
      sensitiveKeys: ['pin'], nameValidation: 'reject', maxEventBytes: 2000,
    });
    for (let i = 1; i <= 5; i++) T.sendTrackEvent('edx.test.options.sent', { n: i, pin: 1234 });
    T.sendTrackEvent('Not A Name', {});
    T.sendTrackEvent('edx.test.options.big', { f: 'x'.repeat(3000) });
    return stats;
  });
  assert.equal(before.configured, false);
  assert.equal(before.pending, 1);
  const events = await until(() => eventsIn('options').length >= 6 && eventsIn('options'));
  assert.deepEqual(events.map((e) => e.data.n), [0, 1, 2, 3, 4, 5]);
  assert.ok(events.slice(1).every((e) => e.data.pin === '********'), 'sensitiveKeys masks `pin`');
  const requests = srv.scenario('options').requests.map((r) => JSON.parse(r.body).events.length);
  assert.deepEqual(requests, [3, 3], 'batchSize 3, trailing slash of the endpoint ignored');
  const stats = await page.evaluate(() => ({ stats: window.T.getStats(), keys: Object.keys(localStorage) }));
  assert.equal(stats.stats.dropped.invalid_name, 1);
  assert.equal(stats.stats.dropped.size_limit, 1);
  assert.equal(stats.stats.configured, true);
  assert.deepEqual(stats.keys, [], 'storageKey: false writes nothing');
  await page.close();
});

test('a module that cannot load: calls are counted and dropped, never thrown', async () => {
  srv.hooks.push(async (req, res, url) => {
    if (!url.pathname.endsWith('.wasm')) return false;
    res.writeHead(404);
    res.end();
    return true;
  });
  const page = await esmPage();
  const result = await page.evaluate(async () => {
    const { T } = window;
    T.configure({ endpoint: '/s/broken' });
    const resolved = await T.sendTrackingLogEvent('edx.test.broken.logged', { a: 1 }).then(() => 'resolved');
    T.sendTrackEvent('edx.test.broken.tracked', {});
    const ready = await T.ready();
    T.sendTrackEvent('edx.test.broken.tracked', {});
    T.sendPageEvent('c', 'n', {});
    await T.identifyAnonymousUser();
    await T.flush();
    let threw = null;
    try {
      T.identifyAuthenticatedUser();
    } catch (e) {
      threw = e.message;
    }
    return { resolved, ready, threw, stats: T.getStats() };
  });
  assert.equal(result.resolved, 'resolved');
  assert.equal(result.ready, false);
  assert.equal(result.threw, 'UserId is required for identifyAuthenticatedUser.');
  assert.equal(result.stats.failed, true);
  assert.equal(result.stats.dropped.load_failed, 5, JSON.stringify(result.stats));
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('a CSP without wasm-unsafe-eval: quiet failure, the page keeps working', async () => {
  srv.hooks.push(async (req, res, url) => {
    if (url.pathname !== '/csp.html') return false;
    res.setHeader('Content-Security-Policy', "script-src 'self'; connect-src 'self'");
    return false;
  });
  const page = await browser.page();
  const violations = [];
  page.on('console', (m) => violations.push(m.text()));
  await page.goto(`${srv.url}/csp.html`);
  await page.waitForFunction(() => window.T);
  const result = await page.evaluate(async () => {
    const { T } = window;
    T.configure({ endpoint: '/s/csp' });
    T.sendTrackEvent('edx.test.csp.tracked', {});
    await T.sendTrackingLogEvent('edx.test.csp.logged', {});
    return { ready: await T.ready(), stats: T.getStats() };
  });
  assert.equal(result.ready, false);
  assert.equal(result.stats.failed, true);
  assert.match(result.stats.error, /WebAssembly|unsafe-eval|Content Security Policy/i);
  assert.equal(result.stats.dropped.load_failed, 2);
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('the legacy bundle: data- attributes, window.Logger.log reaches the server', async () => {
  const page = await browser.page();
  await page.goto(`${srv.url}/legacy.html`);
  await page.click('#play');
  const listened = await page.evaluate(() => {
    const seen = [];
    window.Logger.listen('seq_goto', null, (type, data) => seen.push([type, data]));
    const p = window.Logger.log('seq_goto', { old: 1, new: 2, id: 'block-v1:x' });
    return p.then(() => ({ seen, api: Object.keys(window.OrgTracking).sort() }));
  });
  assert.deepEqual(listened.seen, [['seq_goto', { old: 1, new: 2, id: 'block-v1:x' }]]);
  for (const fn of ['configure', 'sendTrackingLogEvent', 'sendTrackEvent', 'sendPageEvent', 'identifyAuthenticatedUser',
    'identifyAnonymousUser', 'flush', 'getStats', 'reset']) {
    assert.ok(listened.api.includes(fn), fn);
  }
  // identify (data-user-id), play_video, seq_goto
  const events = await until(() => eventsIn('legacy').length >= 3 && eventsIn('legacy'));
  assert.ok(events, 'Logger.log events reached the server');
  const play = events.find((e) => e.name === 'play_video');
  assert.equal(play.type, 'tracking_log');
  // Legacy data is kept as given: research tooling reads `currentTime`.
  assert.deepEqual(play.data, { id: 'i4x-video', currentTime: 12.5, code: 'html5' });
  assert.equal(play.user_id, '7', 'data-user-id identifies the user');
  assert.ok(play.page.endsWith('/legacy.html'));
  assert.ok(events.find((e) => e.name === 'seq_goto'));
  assert.equal(events.find((e) => e.type === 'identify').user_id, '7');
  const request = srv.scenario('legacy').requests[0];
  assert.match(request.contentType, /^text\/plain/);
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('events persist across a real reload and arrive once', async () => {
  const control = srv.scenario('reload');
  control.responses.push({ status: 503, headers: { 'Retry-After': '2' } });
  const page = await esmPage();
  const ids = await page.evaluate(async () => {
    const { T } = window;
    T.configure({ endpoint: '/s/reload', flushInterval: 10, persistDelay: 10, storageKey: 'reload', unloadBytes: 0 });
    for (let i = 0; i < 5; i++) T.sendTrackEvent('edx.test.reload.sent', { i });
    await T.ready();
    await T.flush();
    await new Promise((r) => setTimeout(r, 100));
    return T.getStats();
  });
  assert.equal(ids.persisted, 5, JSON.stringify(ids));
  assert.equal(control.requests.length, 1, 'one 503 so far');
  // Reload: unloadBytes 0 keeps the unload flush from beaconing, so only storage carries them.
  await page.reload();
  await page.waitForFunction(() => window.T);
  await page.evaluate(() => window.T.configure({ endpoint: '/s/reload', flushInterval: 10, storageKey: 'reload' }));
  const events = await until(() => eventsIn('reload').length >= 5 && eventsIn('reload'));
  assert.equal(events.length, 5);
  assert.deepEqual(events.map((e) => e.data.i), [0, 1, 2, 3, 4]);
  const stats = await page.evaluate(() => window.T.ready().then(() => window.T.getStats()));
  assert.equal(stats.restored, 5);
  assert.equal(srv.duplicates, 0);
  await page.close();
});

test('50 events followed at once by navigation: 50 delivered, once each', async () => {
  const page = await esmPage();
  await page.evaluate(() => window.T.ready());
  await page.evaluate(() => {
    const { T } = window;
    T.configure({ endpoint: '/s/navigate', flushInterval: 5000 });
    for (let i = 0; i < 50; i++) T.sendTrackEvent('edx.test.navigate.clicked', { i, target: 'next page' });
    location.href = '/blank.html';
  });
  await page.waitForURL('**/blank.html');
  const events = await until(() => eventsIn('navigate').length >= 50 && eventsIn('navigate'), 5000);
  assert.ok(events, `only ${eventsIn('navigate').length} of 50 arrived`);
  assert.equal(new Set(events.map((e) => e.id)).size, 50);
  assert.equal(srv.duplicates, 0);
  await page.close();
});

test('10,000 events, navigation at once, the next page of the site: all 10,000 delivered once', async () => {
  const page = await esmPage();
  await page.evaluate(() => window.T.ready());
  const props = { course_id: 'course-v1:edX+DemoX+Demo_Course', block_id: 'block-v1:edX+DemoX+Demo_Course+type@problem+block@1', label: 'burst' };
  await page.evaluate((p) => {
    const { T } = window;
    T.configure({ endpoint: '/s/burst', storageKey: 'burst' });
    for (let i = 0; i < 10000; i++) T.sendTrackEvent('edx.test.burst.sent', { ...p, i });
    location.href = '/esm.html?next';
  }, props);
  await page.waitForURL('**/esm.html?next');
  await page.waitForFunction(() => window.T);
  // The next page starts the SDK: it restores what the last one stored and sends it.
  await page.evaluate(() => window.T.configure({ endpoint: '/s/burst', storageKey: 'burst' }));
  const events = await until(() => eventsIn('burst').length >= 10000 && eventsIn('burst'), 60000);
  assert.ok(events, `only ${eventsIn('burst').length} of 10000 arrived`);
  assert.equal(new Set(events.map((e) => e.id)).size, 10000);
  assert.deepEqual([...new Set(events.map((e) => e.data.i))].length, 10000);
  const stats = await page.evaluate(() => window.T.getStats());
  assert.equal(stats.dropped.total, 0, JSON.stringify(stats));
  await page.close();
});

test('a page whose Date.now throws while the module works: the module stops, nothing is thrown into the page', async () => {
  const page = await esmPage();
  await page.evaluate(() => window.T.ready());
  const result = await page.evaluate(async () => {
    const { T } = window;
    T.configure({ endpoint: '/s/trap', flushInterval: 20, storageKey: false });
    T.sendTrackEvent('edx.test.trap.before', {});
    await T.flush();
    // A page (a fake-timer library, say) replaces Date.now with one that throws, while a
    // call is waiting to be recorded by the module's own timer task.
    const realNow = Date.now;
    T.sendTrackEvent('edx.test.trap.during', {});
    Date.now = () => { throw new Error('the page broke Date.now'); };
    await new Promise((r) => setTimeout(r, 100));
    Date.now = realNow;
    // The module's state is unknown after that: later calls are counted and dropped.
    T.sendTrackEvent('edx.test.trap.after', {});
    const resolved = await T.sendTrackingLogEvent('edx.test.trap.after', {}).then(() => 'resolved');
    await T.flush();
    return { resolved, stats: T.getStats() };
  });
  assert.deepEqual(page.errors.map((e) => e.message), []);
  assert.equal(result.resolved, 'resolved');
  assert.equal(result.stats.failed, true, JSON.stringify(result.stats));
  assert.match(result.stats.error, /Date\.now/);
  assert.equal(result.stats.dropped.load_failed, 2, JSON.stringify(result.stats));
  assert.deepEqual(eventsIn('trap').map((e) => e.name), ['edx.test.trap.before']);
  await page.close();
});
