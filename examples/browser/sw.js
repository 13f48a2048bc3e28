// Service worker: the app shell and the transpiled component are cached on the first visit
// and served from the cache afterwards (refreshed in the background when online), so the
// page and its worker start with the network cut off. The weights themselves are stored
// in IndexedDB by the inference worker (resumable chunks); this worker never caches them.
// Both builds' main core modules are cached: the worker picks one at run time (relaxed-simd
// where the engine has it), and the page must start offline whichever it picks.
const CACHE = "edgeslm-app-v2";
const SHELL = [
  "./", "./index.html", "./app.js", "./heuristic.js",
  "./host-js/src/worker-client.js", "./host-js/src/errors.js", "./host-js/src/queue.js",
  "./host-js/dist/edgeslm-worker.js", "./host-js/dist/edgeslm.core.wasm", "./host-js/dist/edgeslm.relaxed.core.wasm",
  "./host-js/dist/edgeslm.core2.wasm", "./host-js/dist/edgeslm.core3.wasm", "./support/few-shot.jsonl",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin || url.pathname.startsWith("/models/")) return;
  event.respondWith(
    caches.open(CACHE).then(async (cache) => {
      const cached = await cache.match(event.request, { ignoreSearch: true });
      const refresh = fetch(event.request)
        .then((response) => {
          if (response.ok) cache.put(event.request, response.clone());
          return response;
        })
        .catch(() => undefined);
      if (cached) {
        event.waitUntil(refresh);
        return cached;
      }
      return (await refresh) ?? new Response("offline", { status: 503 });
    }),
  );
});
