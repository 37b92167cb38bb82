// The real @edx/frontend-platform (8.x, from npm) with TrackingAnalyticsService plugged
// in: its sendTrackEvent, sendTrackingLogEvent, sendPageEvent and identify calls reach a
// real tracking-server, from headless Chromium.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';

import { build } from 'esbuild';

import { assertEventMatches } from './matches.mjs';
import { jwt, jwtCookies, launch, logLines, startServer, stopServer, waitForLines } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
let dir;
let site;
let server;
let chromium;

/** Every event the server took, in its own shape (a second log without the legacy mapping). */
const allEvents = () => {
  try {
    return readFileSync(join(server.data, 'all.log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  } catch {
    return [];
  }
};

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tracking-fp-'));
  await build({ entryPoints: [join(here, 'frontend-platform', 'app.js')], bundle: true, format: 'esm', outfile: join(dir, 'app.js'), logLevel: 'warning' });
  copyFileSync(join(dirname(require.resolve('@org/tracking/package.json')), 'dist', 'tracking_bg.wasm'), join(dir, 'tracking_bg.wasm'));
  copyFileSync(join(here, 'frontend-platform', 'index.html'), join(dir, 'index.html'));
  const types = { '.js': 'text/javascript', '.wasm': 'application/wasm' };
  const http = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    const file = ['/app.js', '/tracking_bg.wasm'].includes(path) ? path : '/index.html';
    res.writeHead(200, { 'Content-Type': types[file.slice(file.lastIndexOf('.'))] || 'text/html; charset=utf-8' });
    res.end(readFileSync(join(dir, file)));
  });
  await new Promise((r) => http.listen(0, '127.0.0.1', r));
  site = { http, url: `http://127.0.0.1:${http.address().port}` };
  server = await startServer(`[security]
allowed_origins = ["${site.url}"]
[routing.backends.tracking_logs]
processors = [{ type = "event_types", keep = ["tracking_log"] }, { type = "legacy_field_mapping" }]
[routing.backends.tracking_logs.backends.logger]
type = "tracking_log"
[routing.backends.everything.backends.all]
type = "tracking_log"
path = "all.log"
`);
  chromium = await launch();
});

after(async () => {
  await chromium?.close();
  if (server) await stopServer(server);
  site?.http.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("frontend-platform's analytics calls reach the server through TrackingAnalyticsService", async () => {
  const context = await chromium.browser.newContext();
  await context.addCookies(jwtCookies(jwt({ user_id: 42, preferred_username: 'ada', exp: Math.floor(Date.now() / 1000) + 3600 })));
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  const url = `${site.url}/courses/course-v1:edX+DemoX+Demo_Course/courseware?ingest=${encodeURIComponent(server.url)}`;
  await page.goto(url);
  await page.waitForFunction(() => window.ready);
  const result = await page.evaluate(() => window.run());
  assert.deepEqual(pageErrors, []);
  assert.ok(result.isService, 'configure() returned the service it built');
  assert.equal(result.thrown, 'UserId is required for identifyAuthenticatedUser.');
  assert.deepEqual(result.errors, ['Identify must be called before other tracking events.'], 'frontend-platform reported the early call');
  assert.equal(result.stats.dropped.total, 0, JSON.stringify(result.stats));

  // The research log: sendTrackingLogEvent, keys snake_cased as frontend-platform does.
  const lines = await waitForLines(server, (ls) => ls.some((l) => l.event_type === 'edx.ui.lms.sequence.tab_selected'));
  const line = lines.find((l) => l.event_type === 'edx.ui.lms.sequence.tab_selected');
  assertEventMatches(
    {
      name: 'edx.ui.lms.sequence.tab_selected', event_type: 'edx.ui.lms.sequence.tab_selected', event_source: 'browser',
      username: 'ada', page: url, context: { user_id: 42, course_id: 'course-v1:edX+DemoX+Demo_Course', org_id: 'edX' },
      event: { current_tab: 2, tab_count: 5, target_url: '/x?y=1' },
    },
    line,
  );
  assert.equal(logLines(server).filter((l) => l.event_type !== 'edx.ui.lms.sequence.tab_selected').length, 0, 'only tracking-log events in tracking.log');

  // Track, page and identify calls, as the server took them.
  const deadline = Date.now() + 20000;
  let events = allEvents();
  while (events.length < 5 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    events = allEvents();
  }
  const byName = (name) => events.find((e) => e.name === name);
  assert.ok(byName('edx.fp.before.identify'), JSON.stringify(events));
  const track = byName('edx.bi.course.upgrade.clicked');
  assert.deepEqual(track.data, { courseId: 'course-v1:edX+DemoX+Demo_Course' }, 'track properties are kept as given');
  assert.equal(track.context.user_id, 42);
  const pageView = events.find((e) => e.name === 'Unit 1');
  assert.ok(pageView, JSON.stringify(events));
  assert.equal(pageView.context.page, url);
  const identify = events.find((e) => e.type === 'identify');
  assert.deepEqual(identify?.data, { email: 'ada@example.com' }, JSON.stringify(events));
  assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'each event once');
  await context.close();
});
