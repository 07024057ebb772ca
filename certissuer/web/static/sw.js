/* The verification page's service worker (scope: the page's root).
 *
 * On install it caches the offline page, its script and stylesheet, the manifest, the icon
 * and the lab's signed token keys (.well-known/certissuer/keys.json). Online, everything goes
 * to the network as before (and the cached copies are refreshed); when the network fails, a
 * QR code's page (V/<token>) is answered with the offline page, whose script checks the
 * token's signature on the phone (static/offline.js). Verdict pages are never cached: they
 * are "no-store" and name a certificate.
 */
'use strict';

const CACHE = 'certissuer-offline-1';
const SCOPE = new URL(self.registration.scope);
const SHELL = 'static/offline.html';
const ASSETS = [
  SHELL,
  'static/offline.js',
  'static/web.css',
  'static/icon.svg',
  'manifest.webmanifest',
  '.well-known/certissuer/keys.json',
];
const TOKEN_PAGE = /^[Vv]\/[^/]+$/;

function at(path) {
  return new URL(path, SCOPE).href;
}

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches.open(CACHE)
      .then((cache) => cache.addAll(ASSETS.map(at)))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

function fromNetwork(request, path) {
  return fetch(request).then((response) => {
    if (response.ok) {
      const copy = response.clone();
      caches.open(CACHE).then((cache) => cache.put(at(path), copy));
    }
    return response;
  }).catch(() => caches.match(at(path)).then((cached) => cached || Response.error()));
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== SCOPE.origin || !url.pathname.startsWith(SCOPE.pathname)) return;
  const path = url.pathname.slice(SCOPE.pathname.length);
  if (request.mode === 'navigate' && TOKEN_PAGE.test(path)) {
    // Only a failed request (no network, server unreachable) gets the offline page; any
    // answer from the server, an error page included, is shown as it is.
    event.respondWith(fetch(request).catch(
      () => caches.match(at(SHELL)).then((cached) => cached || Response.error()),
    ));
  } else if (ASSETS.includes(path) && !url.search) {
    event.respondWith(fromNetwork(request, path));
  }
});
