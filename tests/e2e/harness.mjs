// A real tracking-server process, a static server for the MFE example, headless
// Chromium, and HS256 tokens as the LMS issues them.
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const JWT_SECRET = 'e2e-only-jwt-secret';
const BIN = process.env.TRACKING_SERVER_BIN || join(ROOT, 'target', 'debug', 'tracking-server');

/** Starts the ingest server; `extra` is appended to its TOML configuration. */
export async function startServer(extra = '', env = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tracking-e2e-'));
  const server = { dir, data: join(dir, 'data'), url: '', port: 0, child: null, extra, env };
  writeConfig(server, 0);
  await spawnServer(server);
  // Restarts reuse the port the system chose, so pages keep their endpoint.
  writeConfig(server, server.port);
  return server;
}

function writeConfig(server, port) {
  // The legacy-page example and the SDK files are served by the demo.
  writeFileSync(join(server.dir, 'server.toml'), `listen = "127.0.0.1:${port}"\ndata_dir = "${server.data}"\ndemo = true\n${server.extra}\n`);
}

function spawnServer(server) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(BIN, ['--config', join(server.dir, 'server.toml')], {
      env: { ...process.env, TRACKING_LOG: 'warn', TRACKING_JWT_SECRET: JWT_SECRET, TRACKING_SESSION_KEY: 'e2e', ...server.env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    server.child = child;
    let buffer = '';
    const timer = setTimeout(() => reject(new Error('server did not start')), 30000);
    child.stdout.on('data', (chunk) => {
      buffer += chunk;
      const match = buffer.match(/listening on (http:\/\/[^\s]+)/);
      if (match && !server.url) {
        clearTimeout(timer);
        server.url = match[1];
        server.port = Number(new URL(match[1]).port);
        resolvePromise(server);
      }
    });
    child.on('exit', (code) => {
      if (!server.url) reject(new Error(`server exited with ${code}`));
    });
  }).then(() => server);
}

/** SIGKILL, no cleanup: a crash or an outage. */
export async function killServer(server) {
  const child = server.child;
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

export async function restartServer(server) {
  server.url = '';
  await spawnServer(server);
}

export async function stopServer(server) {
  await killServer(server);
  rmSync(server.dir, { recursive: true, force: true });
}

/** The lines of the tracking log, parsed. */
export function logLines(server) {
  try {
    return readFileSync(join(server.data, 'tracking.log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  } catch {
    return [];
  }
}

/** Waits until `predicate(lines)` holds (or fails after `timeout` ms); returns the lines. */
export async function waitForLines(server, predicate, timeout = 20000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const lines = logLines(server);
    if (predicate(lines)) return lines;
    if (Date.now() > deadline) throw new Error(`timed out waiting for the tracking log; it holds ${lines.length} lines:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Serves examples/mfe/dist for every path, as an MFE host does. */
export function serveMfe() {
  const dist = join(ROOT, 'examples', 'mfe', 'dist');
  const types = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html; charset=utf-8' };
  const http = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    const file = ['/app.js', '/tracking_bg.wasm'].includes(path) ? path : '/index.html';
    res.writeHead(200, { 'Content-Type': types[extname(file)], 'Cache-Control': 'no-store' });
    res.end(readFileSync(join(dist, file)));
  });
  return new Promise((r) => http.listen(0, '127.0.0.1', () => r({ http, url: `http://127.0.0.1:${http.address().port}` })));
}

/** Headless Chromium; playwright gives each launch a fresh, temporary profile directory. */
export async function launch() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  return { browser, close: () => browser.close() };
}

function base64url(value) {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

/** An HS256 JWT as the LMS issues it. */
export function jwt(claims, secret = JWT_SECRET) {
  const unsigned = `${base64url({ alg: 'HS256', typ: 'JWT' })}.${base64url(claims)}`;
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
}

/** Open edX's split JWT cookie pair, for 127.0.0.1 (every port). */
export function jwtCookies(token) {
  const at = token.lastIndexOf('.');
  return [
    { name: 'edx-jwt-cookie-header-payload', value: token.slice(0, at), domain: '127.0.0.1', path: '/' },
    { name: 'edx-jwt-cookie-signature', value: token.slice(at + 1), domain: '127.0.0.1', path: '/' },
  ];
}
