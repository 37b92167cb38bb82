// assert_event_matches of event-model, for the end-to-end tests: the same four
// tolerances, dotted paths, sorted differences, lists compared whole.
import assert from 'node:assert/strict';

export const DEFAULT = { stringPayload: true, rootExtraFields: true, contextExtraFields: true, payloadExtraFields: false };
export const LENIENT = { ...DEFAULT, payloadExtraFields: true };
export const STRICT = { stringPayload: false, rootExtraFields: false, contextExtraFields: false, payloadExtraFields: false };

function parsePayload(event) {
  if (!event || typeof event !== 'object' || Array.isArray(event)) return event;
  const key = 'event' in event ? 'event' : 'data';
  if (typeof event[key] !== 'string') return event;
  try {
    return { ...event, [key]: JSON.parse(event[key]) };
  } catch {
    return event;
  }
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

function allowsExtra(path, t) {
  if (path.length === 0) return t.rootExtraFields;
  if (path.length === 1 && path[0] === 'context') return t.contextExtraFields;
  if (path.length === 1 && (path[0] === 'event' || path[0] === 'data')) return t.payloadExtraFields;
  return false;
}

function compare(expected, actual, t, path, out) {
  if (isObject(expected) && isObject(actual)) {
    for (const key of Object.keys(expected)) {
      if (!(key in actual)) out.push(`${[...path, key].join('.')}: not found in actual`);
      else compare(expected[key], actual[key], t, [...path, key], out);
    }
    if (!allowsExtra(path, t)) {
      for (const key of Object.keys(actual)) if (!(key in expected)) out.push(`${[...path, key].join('.')}: only defined in actual`);
    }
  } else if (JSON.stringify(expected) !== JSON.stringify(actual)) {
    out.push(`${path.join('.')}: ${JSON.stringify(expected)} != ${JSON.stringify(actual)} (expected != actual)`);
  }
}

export function eventDifferences(expected, actual, tolerate = DEFAULT) {
  const [e, a] = tolerate.stringPayload ? [parsePayload(expected), parsePayload(actual)] : [expected, actual];
  const out = [];
  compare(e, a, tolerate, [], out);
  return out.sort();
}

export function assertEventMatches(expected, actual, tolerate = DEFAULT) {
  const differences = eventDifferences(expected, actual, tolerate);
  if (differences.length) {
    assert.fail(`Unexpected differences found in structs:\n\n${differences.map((d) => `* ${d}`).join('\n')}\n\nExpected:\n${JSON.stringify(expected, null, 2)}\nActual:\n${JSON.stringify(actual, null, 2)}`);
  }
}
