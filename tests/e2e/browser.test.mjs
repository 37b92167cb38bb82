// The system as users use it: headless Chromium, the MFE and legacy-page examples,
// and a real ingest server process on loopback.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { assertEventMatches } from './matches.mjs';
import {
  jwt, jwtCookies, killServer, launch, logLines, restartServer, serveMfe, startServer, stopServer, waitForLines,
} from './harness.mjs';

const COURSE = 'course-v1:edX+DemoX+Demo_Course';
const WRITE_KEY = 'e2e-segment-write-key';
let server;
let mfe;
let segment;
let chromium;

/** A stand-in for Segment's HTTP Tracking API: checks the write key, keeps the messages. */
function fakeSegment() {
  const messages = [];
  const http = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      const auth = `Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}`;
      if (req.method !== 'POST' || req.url !== '/v1/batch' || req.headers.authorization !== auth) {
        res.writeHead(401).end('{"success": false}');
        return;
      }
      messages.push(...JSON.parse(body).batch);
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"success": true}');
    });
  });
  return new Promise((r) => http.listen(0, '127.0.0.1', () => r({ http, messages, url: `http://127.0.0.1:${http.address().port}` })));
}

const routing = (segmentUrl) => `
[routing.backends.tracking_logs]
processors = [{ type = "event_types", keep = ["tracking_log"] }, { type = "internal_events" }, { type = "legacy_field_mapping" }]
[routing.backends.tracking_logs.backends.logger]
type = "tracking_log"
[routing.backends.segment]
processors = [{ type = "segment_filter", allowlist = [] }, { type = "google_analytics" }]
[routing.backends.segment.backends.api]
type = "segment"
endpoint = "${segmentUrl}"
flush_ms = 100
`;

before(async () => {
  mfe = await serveMfe();
  segment = await fakeSegment();
  server = await startServer(
    `[security]\nallowed_origins = ["${mfe.url}"]\n[limits]\nrate_per_second = 0\n${routing(segment.url)}`,
    { TRACKING_SEGMENT_WRITE_KEY: WRITE_KEY },
  );
  chromium = await launch();
});

after(async () => {
  await chromium?.close();
  await stopServer(server);
  mfe?.http.close();
  segment?.http.close();
});

/** A fresh browser profile (own cookies and localStorage) with a signed-in learner. */
async function newLearnerPage(run) {
  const context = await chromium.browser.newContext();
  await context.addCookies(jwtCookies(jwt({ user_id: 42, preferred_username: 'ada', exp: Math.floor(Date.now() / 1000) + 3600 })));
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  // Each test works on its own course run, so its lines are told apart from the others'.
  const url = `${mfe.url}/learning/course/course-v1:edX+E2E+${run}/home?ingest=${encodeURIComponent(server.url)}`;
  return { context, page, errors, url };
}

const linesOf = (run) => logLines(server).filter((l) => l.context.course_id === `course-v1:edX+E2E+${run}`);

/** Waits for `count` next-unit events of `run` and checks each arrived once. */
async function expectNextUnits(run, count) {
  await waitForLines(server, () => linesOf(run).length >= count, 60000);
  await new Promise((r) => setTimeout(r, 500)); // a late duplicate would show up now
  const lines = linesOf(run);
  const tabs = lines.map((l) => JSON.parse(l.event).current_tab).sort((a, b) => a - b);
  assert.deepEqual(tabs, Array.from({ length: count }, (_, i) => i + 1), 'every event once, none twice');
  assert.equal(new Set(lines.map((l) => l.id)).size, count);
  for (const line of lines) {
    assertEventMatches(
      {
        name: 'edx.ui.lms.sequence.next_selected', event_type: 'edx.ui.lms.sequence.next_selected', event_source: 'browser',
        username: 'ada', context: { user_id: 42, org_id: 'edX' },
        event: { current_tab: JSON.parse(line.event).current_tab, tab_count: 5, target_tab: JSON.parse(line.event).current_tab + 1, widget_placement: 'top' },
      },
      line,
    );
  }
}

describe('micro-frontend', () => {
  test('a click becomes the right legacy line', async () => {
    const { context, page, errors, url } = await newLearnerPage('click');
    const pageUrl = url.replace('E2E+click', 'DemoX+Demo_Course');
    await page.goto(pageUrl);
    await page.waitForFunction(() => document.getElementById('status').textContent === 'ready');
    await page.click('button[data-block="week-2"]');
    const lines = await waitForLines(server, (ls) => ls.some((l) => l.event_type === 'edx.ui.lms.outline.selected' && l.context.course_id === COURSE));
    const line = lines.find((l) => l.event_type === 'edx.ui.lms.outline.selected' && l.context.course_id === COURSE);
    assertEventMatches(
      {
        name: 'edx.ui.lms.outline.selected',
        context: { user_id: 42, course_id: COURSE, org_id: 'edX', path: '/v1/batch' },
        username: 'ada', ip: '127.0.0.1', host: new URL(server.url).host,
        event: { target_name: 'Week 2: Sequences', block_id: 'week-2', widget_placement: 'accordion' },
        event_type: 'edx.ui.lms.outline.selected', event_source: 'browser', page: pageUrl,
      },
      line,
    );
    assert.equal(typeof line.event, 'string', 'browser payloads are JSON strings in the tracking log');
    assert.match(line.session, /^$|^[0-9a-f]{32}$/);
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('sendTrackEvent reaches Segment, not the research log', async () => {
    const { context, page, errors, url } = await newLearnerPage('segment');
    await page.goto(url);
    await page.waitForFunction(() => document.getElementById('status').textContent === 'ready');
    await page.click('#upgrade');
    const deadline = Date.now() + 20000;
    let message;
    while (!message && Date.now() < deadline) {
      message = segment.messages.find((m) => m.event === 'edx.bi.ecommerce.upsell_links_clicked' && m.context?.page?.url === url);
      if (!message) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(message, `Segment received: ${JSON.stringify(segment.messages)}`);
    assertEventMatches(
      {
        type: 'track', event: 'edx.bi.ecommerce.upsell_links_clicked', userId: '42',
        properties: { linkCategory: 'green_upgrade', linkName: 'course_outline', label: 'course-v1:edX+E2E+segment', nonInteraction: 1 },
        context: { ip: '127.0.0.1', page: { url, path: new URL(url).pathname } },
      },
      message,
      { stringPayload: false, rootExtraFields: true, contextExtraFields: true, payloadExtraFields: false },
    );
    assert.match(message.messageId, /^[0-9a-f-]{36}$/);
    // The page view went to Segment too; neither reached the research tracking log.
    assert.ok(segment.messages.some((m) => m.type === 'page' && m.context?.page?.url === url));
    assert.equal(linesOf('segment').length, 0);
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('50 events then an immediate navigation: all 50 arrive', async () => {
    const { context, page, url } = await newLearnerPage('unload');
    await page.goto(url);
    await page.waitForFunction(() => document.getElementById('status').textContent === 'ready');
    await page.evaluate(() => {
      for (let i = 0; i < 50; i += 1) document.getElementById('next').click();
      location.href = 'about:blank';
    });
    await page.waitForURL('about:blank');
    await expectNextUnits('unload', 50);
    await context.close();
  });

  test('offline for 20 events, then online: all 20 arrive once', async () => {
    const { context, page, url } = await newLearnerPage('offline');
    await page.goto(url);
    await page.waitForFunction(() => document.getElementById('status').textContent === 'ready');
    await context.setOffline(true);
    await page.evaluate(() => { for (let i = 0; i < 20; i += 1) document.getElementById('next').click(); });
    await page.waitForTimeout(1500);
    assert.equal(linesOf('offline').length, 0, 'nothing can arrive while offline');
    await context.setOffline(false);
    await expectNextUnits('offline', 20);
    await context.close();
  });

  test('a reload with events still queued: they arrive after the reload, once', async () => {
    const { context, page, url } = await newLearnerPage('reload');
    await page.goto(url);
    await page.waitForFunction(() => document.getElementById('status').textContent === 'ready');
    // The ingest server is unreachable for this page: events stay queued (and persisted).
    await context.route('**/v1/batch', (route) => route.abort('connectionrefused'));
    await page.evaluate(() => { for (let i = 0; i < 10; i += 1) document.getElementById('next').click(); });
    await page.waitForTimeout(1000);
    await context.unroute('**/v1/batch');
    await page.reload();
    await page.waitForFunction(() => document.getElementById('status').textContent === 'ready');
    await expectNextUnits('reload', 10);
    await context.close();
  });

  test('the ingest server down for 10 s: everything arrives after it restarts, once', async () => {
    const { context, page, url } = await newLearnerPage('outage');
    await page.goto(url);
    await page.waitForFunction(() => document.getElementById('status').textContent === 'ready');
    await killServer(server);
    for (let i = 0; i < 10; i += 1) {
      await page.click('#next');
      await page.waitForTimeout(1000);
    }
    await restartServer(server);
    await expectNextUnits('outage', 10);
    await context.close();
  });

  test('a page that blocks the wasm module keeps working, with no error', async () => {
    const context = await chromium.browser.newContext();
    await context.route('**/*.wasm', (route) => route.abort('blockedbyclient'));
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${mfe.url}/learning/course/course-v1:edX+E2E+blocked/home?ingest=${encodeURIComponent(server.url)}`);
    await page.waitForFunction(() => document.getElementById('status').textContent === 'ready');
    for (const selector of ['#next', '#upgrade', 'button[data-block="week-1"]']) await page.click(selector);
    // The host page's own script still runs after the SDK failed to load.
    assert.equal(await page.evaluate(() => { document.getElementById('status').textContent = 'still alive'; return document.getElementById('status').textContent; }), 'still alive');
    await page.waitForTimeout(500);
    assert.deepEqual(errors, []);
    assert.equal(linesOf('blocked').length, 0);
    await context.close();
  });
});

describe('legacy page', () => {
  test("Logger.log from one <script> tag becomes its line", async () => {
    const context = await chromium.browser.newContext();
    await context.addCookies(jwtCookies(jwt({ user_id: 7, preferred_username: 'staff', exp: Math.floor(Date.now() / 1000) + 3600 })));
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    const pageUrl = `${server.url}/examples/legacy-page/courses/course-v1:MITx+6.002x+2026/courseware`;
    await page.goto(pageUrl);
    await page.waitForFunction(() => typeof window.Logger?.log === 'function');
    await page.click('a[href="#week-1"]');
    const lines = await waitForLines(server, (ls) => ls.some((l) => l.context.course_id === 'course-v1:MITx+6.002x+2026'));
    const line = lines.find((l) => l.context.course_id === 'course-v1:MITx+6.002x+2026');
    assertEventMatches(
      {
        name: 'edx.ui.lms.outline.selected', event_type: 'edx.ui.lms.outline.selected', event_source: 'browser',
        username: 'staff', context: { user_id: 7, course_id: 'course-v1:MITx+6.002x+2026', org_id: 'MITx' },
        event: { target_name: 'Week 1', target_url: `${pageUrl}#week-1`, widget_placement: 'accordion', block_id: 'block-v1:edX+DemoX+Demo_Course+type@chapter+block@week_1' },
      },
      line,
    );
    assert.ok(line.page.startsWith(pageUrl));
    assert.deepEqual(errors, []);
    await context.close();
  });
});

describe('one odd event costs only itself', () => {
  /** The legacy page on its own course run, with the SDK at window.OrgTracking. */
  async function isolationPage(run) {
    const context = await chromium.browser.newContext();
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${server.url}/examples/legacy-page/courses/course-v1:edX+Iso+${run}/courseware`);
    await page.waitForFunction(() => typeof window.OrgTracking?.sendTrackingLogEvent === 'function');
    return { context, page, errors, lines: () => logLines(server).filter((l) => l.context.course_id === `course-v1:edX+Iso+${run}`) };
  }

  test('a truncated emoji among 99 ordinary events: all 100 stored', async () => {
    const { context, page, errors, lines } = await isolationPage('emoji');
    const stats = await page.evaluate(async () => {
      for (let n = 0; n < 99; n += 1) window.OrgTracking.sendTrackingLogEvent('edx.test.isolation.sent', { n });
      // JSON.stringify writes a lone surrogate escape for half an emoji.
      window.OrgTracking.sendTrackingLogEvent('edx.test.isolation.sent', { n: 99, cut: '😀'.slice(0, 1) });
      await window.OrgTracking.flush();
      return window.OrgTracking.getStats();
    });
    const got = await waitForLines(server, () => lines().length >= 100).then(() => lines());
    assert.equal(got.length, 100);
    assert.deepEqual(got.map((l) => JSON.parse(l.event).n).sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i));
    // The tracking log keeps the lone surrogate as Python's writer does.
    const raw = readFileSync(join(server.data, 'tracking.log'), 'utf8').split('\n').find((l) => l.includes('\\"n\\": 99'));
    assert.ok(raw.includes('\\\\ud83d'), raw);
    assert.equal(stats.dropped.total, 0, JSON.stringify(stats));
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('data nested at the shared limit is stored; one level deeper is refused in the browser alone', async () => {
    const { context, page, lines } = await isolationPage('deep');
    const stats = await page.evaluate(async () => {
      const nested = (depth) => {
        let value = 'leaf';
        for (let d = 1; d < depth; d += 1) value = { d: value };
        return value;
      };
      for (let n = 0; n < 98; n += 1) window.OrgTracking.sendTrackingLogEvent('edx.test.isolation.sent', { n });
      // `data` itself is depth 1: `nested(d)` in it makes d levels in all.
      window.OrgTracking.sendTrackingLogEvent('edx.test.isolation.sent', { n: 98, deep: nested(64) });
      window.OrgTracking.sendTrackingLogEvent('edx.test.isolation.sent', { n: 99, deep: nested(65) });
      await window.OrgTracking.flush();
      return window.OrgTracking.getStats();
    });
    const got = await waitForLines(server, () => lines().length >= 99).then(() => lines());
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(lines().length, 99);
    assert.ok(got.some((l) => JSON.parse(l.event).n === 98), 'the event at the limit is stored');
    assert.equal(stats.dropped.invalid_data, 1, JSON.stringify(stats));
    assert.equal(stats.dropped.rejected, 0, 'the server refused nothing');
    await context.close();
  });
});
