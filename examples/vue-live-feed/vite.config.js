import vue from '@vitejs/plugin-vue';
import { defineConfig } from 'vite';

// `npm run dev` proxies the API and Socket.IO to a livebase (`make run`), so the
// app talks to its own origin as it does when livebase serves the build.
const LIVEBASE = process.env.LIVEBASE_URL || 'http://127.0.0.1:8056';

export default defineConfig({
  // livebase serves `dist/` at this path when DEMO_ENABLED (`make examples` builds it).
  base: '/examples/vue-live-feed/',
  plugins: [vue()],
  server: {
    host: '127.0.0.1',
    proxy: {
      '/auth': LIVEBASE,
      '/items': LIVEBASE,
      '/realtime': { target: LIVEBASE, ws: true },
    },
  },
});
