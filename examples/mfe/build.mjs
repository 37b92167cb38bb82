// Bundles the MFE with esbuild into dist/, beside the SDK's WebAssembly module.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const sdk = dirname(require.resolve('@org/tracking/package.json'));
mkdirSync('dist', { recursive: true });
await build({ entryPoints: ['src/index.js'], bundle: true, format: 'esm', minify: true, outfile: 'dist/app.js', logLevel: 'warning' });
// The SDK loads tracking_bg.wasm next to the script that imports it.
copyFileSync(join(sdk, 'dist', 'tracking_bg.wasm'), 'dist/tracking_bg.wasm');
copyFileSync('src/index.html', 'dist/index.html');
console.log('built examples/mfe/dist');
