import preact from '@preact/preset-vite';
import { defineConfig } from 'vite';

// Built into web/dist by `npm run build`; Herald serves that folder at `/` (src/server/dashboard.ts).
// `npx vite web` runs a dev server that sends /api to a Herald on :8080.
export default defineConfig({
  plugins: [preact({ prerender: { enabled: false } })],
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', sourcemap: false },
  server: { proxy: { '/api': 'http://127.0.0.1:8080' } },
  logLevel: 'warn',
});
