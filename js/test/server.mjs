// A fake ingest server for the SDK's tests and benchmark: the `/v1/batch` endpoint of
// sdk-wasm/README.md, scripted failures, a request log, and static files.
//
//   POST [/s/<scenario>]/v1/batch   the batch endpoint (text/plain or application/json)
//   POST /control/<scenario>        {"responses": [{"status": 503, "headers": {...},
//                                   "delay": ms}, ...]}: answers for the next requests
//   GET  /control/<scenario>        {"requests": [{"t", "contentType", "contentEncoding",
//                                   "wireBytes", "cookie", "body"}]}
//   GET  /events                    {"events": [...accepted events...], "duplicates": n}
//   GET  /<path>                    files under the static roots (js/dist, js/test/pages)
//
// Every response carries CORS headers for the request's Origin with credentials, and
// exposes Retry-After. Start it from a test (`startServer()`), or as a process:
// `node js/test/server.mjs [port]` prints `listening <url>` and runs until killed.

import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const TYPES = {
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.wasm': 'application/wasm',
  '.html': 'text/html; charset=utf-8',
  '.json': 'application/json',
};

export async function startServer({ port = 0, host = '127.0.0.1', roots = [join(here, '..', 'dist'), join(here, 'pages')], headers = {} } = {}) {
  const scenarios = new Map();
  const seen = new Set();
  const events = [];
  let duplicates = 0;
  const scenario = (name) => {
    if (!scenarios.has(name)) scenarios.set(name, { responses: [], requests: [] });
    return scenarios.get(name);
  };
  // Per-path hooks for tests: (req, res) => true when handled.
  const hooks = [];

  const cors = (req, res) => {
    const origin = req.headers.origin;
    if (origin) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      res.setHeader('Access-Control-Expose-Headers', 'Retry-After');
      res.setHeader('Vary', 'Origin');
    }
  };

  // The body as text (gunzipped when it came compressed); `wire` gets the bytes sent.
  const body = (req, wire = {}) => new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let buf = Buffer.concat(chunks);
      wire.bytes = buf.length;
      if (req.headers['content-encoding'] === 'gzip') buf = gunzipSync(buf);
      resolve(buf.toString('utf8'));
    });
    req.on('error', reject);
  });

  const json = (res, status, value, extra = {}) => {
    res.writeHead(status, { 'Content-Type': 'application/json', ...extra });
    res.end(JSON.stringify(value));
  };

  async function batch(req, res, name) {
    const wire = {};
    const text = await body(req, wire);
    const sc = scenario(name);
    sc.requests.push({
      t: Date.now(), contentType: req.headers['content-type'] || '', contentEncoding: req.headers['content-encoding'] || '',
      wireBytes: wire.bytes, cookie: req.headers.cookie || '', origin: req.headers.origin || '', body: text,
    });
    const scripted = sc.responses.shift();
    if (scripted) {
      if (scripted.delay) await new Promise((r) => setTimeout(r, scripted.delay));
      if (scripted.status !== 200) {
        res.writeHead(scripted.status, { 'Content-Type': 'text/plain', ...(scripted.headers || {}) });
        res.end(scripted.body || 'scripted');
        return;
      }
    }
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      return json(res, 400, { error: 'body is not JSON' });
    }
    if (!parsed || !Array.isArray(parsed.events)) return json(res, 400, { error: 'no events array' });
    const results = parsed.events.map((ev) => {
      if (!ev || typeof ev.id !== 'string' || !ev.type) return { id: ev && ev.id, status: 'rejected', reason: 'invalid_event' };
      if (typeof ev.name === 'string' && ev.name.includes('please.reject')) return { id: ev.id, status: 'rejected', reason: 'name_rejected' };
      if (seen.has(ev.id)) {
        duplicates += 1;
        return { id: ev.id, status: 'duplicate' };
      }
      seen.add(ev.id);
      events.push({ ...ev, scenario: name, received_at: Date.now() });
      return { id: ev.id, status: 'accepted' };
    });
    json(res, 200, { results });
  }

  async function serveFile(req, res, path) {
    const rel = normalize(decodeURIComponent(path)).replace(/^(\.\.[/\\])+/, '');
    for (const root of roots) {
      try {
        const data = await readFile(join(root, rel));
        res.writeHead(200, { 'Content-Type': TYPES[extname(rel)] || 'application/octet-stream', 'Cache-Control': 'no-store', ...headers });
        res.end(data);
        return;
      } catch (e) { /* next root */ }
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found');
  }

  const server = createServer(async (req, res) => {
    try {
      cors(req, res);
      const url = new URL(req.url, 'http://x');
      for (const hook of hooks) {
        if (await hook(req, res, url)) return;
      }
      if (req.method === 'OPTIONS') {
        res.setHeader('Access-Control-Allow-Methods', 'GET, POST, DELETE');
        // Compressed batches carry Content-Encoding, which needs a pre-flight.
        res.setHeader('Access-Control-Allow-Headers', 'Content-Type, Content-Encoding');
        res.setHeader('Access-Control-Max-Age', '7200');
        res.writeHead(204);
        res.end();
        return;
      }
      const m = url.pathname.match(/^(?:\/s\/([\w-]+))?\/v1\/batch$/);
      if (m && req.method === 'POST') return await batch(req, res, m[1] || 'default');
      const c = url.pathname.match(/^\/control\/([\w-]+)$/);
      if (c) {
        const sc = scenario(c[1]);
        if (req.method === 'POST') {
          const script = JSON.parse((await body(req)) || '{}');
          sc.responses.push(...(script.responses || []));
          return json(res, 200, { ok: true });
        }
        if (req.method === 'DELETE') {
          scenarios.delete(c[1]);
          return json(res, 200, { ok: true });
        }
        return json(res, 200, { requests: sc.requests, pending: sc.responses.length });
      }
      if (url.pathname === '/events') return json(res, 200, { events, duplicates });
      if (req.method === 'GET') return await serveFile(req, res, url.pathname);
      res.writeHead(405);
      res.end();
    } catch (e) {
      res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(String(e && e.stack));
    }
  });
  await new Promise((resolve) => server.listen(port, host, resolve));
  const url = `http://${host}:${server.address().port}`;
  return {
    url,
    events,
    hooks,
    scenario,
    get duplicates() {
      return duplicates;
    },
    reset() {
      scenarios.clear();
      seen.clear();
      events.length = 0;
      duplicates = 0;
    },
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(resolve);
    }),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const srv = await startServer({ port: Number(process.argv[2] || 0) });
  console.log(`listening ${srv.url}`);
  const stop = () => srv.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
