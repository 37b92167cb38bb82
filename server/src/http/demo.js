// The demo page: each button calls the SDK; the lists show what the server accepted.
import * as tracking from '/sdk/index.js';

tracking.configure({ endpoint: '', flushInterval: 200 });
// As frontend-platform does at start-up: identify first, then track.
tracking.identifyAnonymousUser();

const log = document.getElementById('log');
const stats = document.getElementById('stats');
let clicks = 0;

const actions = {
  'tracking-log': () => tracking.sendTrackingLogEvent('edx.ui.lms.outline.selected', { targetName: `Week ${++clicks}`, widgetPlacement: 'accordion' }),
  track: () => tracking.sendTrackEvent('edx.bi.demo.button.clicked', { button: 'track', clicks: ++clicks }),
  page: () => tracking.sendPageEvent('demo', 'Tracking demo', { clicks: ++clicks }),
  identify: () => tracking.identifyAnonymousUser({ demo: true }),
  flush: () => tracking.flush(),
};

for (const [id, action] of Object.entries(actions)) {
  document.getElementById(id).addEventListener('click', () => {
    action();
    setTimeout(refresh, 600);
  });
}

async function refresh() {
  stats.textContent = JSON.stringify(tracking.getStats(), null, 2);
  try {
    const events = await (await fetch('/demo/events')).json();
    log.textContent = events.length
      ? events.slice().reverse().map((e) => `${e.timestamp}  ${e.type || 'tracking_log'}  ${e.name}  ${JSON.stringify(e.data)}`).join('\n')
      : '(nothing yet)';
  } catch (error) {
    log.textContent = `could not read /demo/events: ${error}`;
  }
}

refresh();
setInterval(refresh, 2000);
