// Serves dist/ for any path (the MFE lives under /learning/course/<key>/…), on PORT
// (default 2000); pass ?ingest=http://127.0.0.1:8080 in the page URL.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { extname, join } from 'node:path';

const types = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html; charset=utf-8' };
const port = Number(process.env.PORT || 2000);
const server = createServer((req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  const file = ['/app.js', '/tracking_bg.wasm'].includes(path) ? path : '/index.html';
  try {
    const body = readFileSync(join('dist', file));
    res.writeHead(200, { 'Content-Type': types[extname(file)] });
    res.end(body);
  } catch {
    res.writeHead(404);
    res.end('build first: npm run build');
  }
});
server.listen(port, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${server.address().port}`));
