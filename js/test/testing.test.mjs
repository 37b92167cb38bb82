// The mock analytics service of @org/tracking/testing (plain node).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as real from '../src/index.js';
import * as mock from '../testing/index.js';

test('the mock has the package API, function for function', () => {
  for (const name of Object.keys(real)) {
    assert.equal(typeof mock[name], typeof real[name], name);
  }
});

test('records calls with the same signatures and return values', async () => {
  const m = mock.createMockAnalytics();
  m.configure({ endpoint: '/x' });
  assert.equal(await m.sendTrackingLogEvent('edx.ui.lms.link_clicked', { linkId: 1 }), undefined);
  assert.equal(m.sendTrackEvent('edx.bi.course.upgrade', { price: 1 }), undefined);
  m.sendPageEvent('course', 'Course Home', { tab: 'home' });
  m.identifyAuthenticatedUser(42, { plan: 'pro' });
  assert.ok(m.identifyAnonymousUser() instanceof Promise);
  assert.throws(() => m.identifyAuthenticatedUser(), /UserId is required/);
  assert.deepEqual(m.calls[1], ['sendTrackingLogEvent', 'edx.ui.lms.link_clicked', { linkId: 1 }]);
  assert.deepEqual(m.events('sendPageEvent'), [['course', 'Course Home', { tab: 'home' }]]);
  assert.deepEqual(m.config, { endpoint: '/x' });
  assert.equal(m.getStats().enqueued, 4);
  m.clear();
  assert.equal(m.calls.length, 0);
});

test('the module functions share one mock (for jest.mock)', async () => {
  mock.mockAnalytics.clear();
  mock.sendTrackEvent('edx.test.event.sent', { a: 1 });
  await mock.sendTrackingLogEvent('edx.test.log.sent');
  assert.deepEqual(mock.mockAnalytics.events('sendTrackEvent'), [['edx.test.event.sent', { a: 1 }]]);
  assert.deepEqual(mock.mockAnalytics.events('sendTrackingLogEvent'), [['edx.test.log.sent', {}]]);
});
