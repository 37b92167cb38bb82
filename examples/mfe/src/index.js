// A course-outline micro-frontend: it tracks learner actions the way Open edX MFEs
// do with frontend-platform's analytics service.
import { configure, sendPageEvent, sendTrackEvent, sendTrackingLogEvent } from '@org/tracking';

// The ingest server: same origin by default, or ?ingest=http://host:port.
const ingest = new URLSearchParams(location.search).get('ingest') || '';
configure({ endpoint: ingest, flushInterval: 250 });

sendPageEvent('learning', 'course-outline');

for (const button of document.querySelectorAll('#outline button')) {
  button.addEventListener('click', () => {
    // camelCase here, snake_case in the tracking log, as frontend-platform does.
    sendTrackingLogEvent('edx.ui.lms.outline.selected', {
      targetName: button.textContent,
      blockId: button.dataset.block,
      widgetPlacement: 'accordion',
    });
  });
}

let unit = 1;
document.getElementById('next').addEventListener('click', () => {
  sendTrackingLogEvent('edx.ui.lms.sequence.next_selected', { currentTab: unit, tabCount: 5, targetTab: unit + 1, widgetPlacement: 'top' });
  unit += 1;
});

document.getElementById('upgrade').addEventListener('click', () => {
  sendTrackEvent('edx.bi.ecommerce.upsell_links_clicked', { linkCategory: 'green_upgrade', linkName: 'course_outline' });
});

document.getElementById('status').textContent = 'ready';
