// Porchlight's service worker: show each Web Push notification, and open its link on a click.
// The payload is {"title", "body", "link"}, where link is a path in this hub's web UI; a link
// to anywhere else is never opened.
"use strict";

const MAX_TITLE = 120;
const MAX_BODY = 1000;

function localLink(link) {
  try {
    const url = new URL(typeof link === "string" ? link : "/", self.location.origin);
    if (url.origin === self.location.origin) return url.href;
  } catch (e) { /* fall through to the home page */ }
  return new URL("/", self.location.origin).href;
}

function readPayload(data) {
  let payload = {};
  try { payload = data ? data.json() : {}; } catch (e) { payload = {}; }
  if (payload === null || typeof payload !== "object") payload = {};
  return {
    title: typeof payload.title === "string" && payload.title ? payload.title.slice(0, MAX_TITLE) : "Porchlight",
    body: typeof payload.body === "string" ? payload.body.slice(0, MAX_BODY) : "",
    link: localLink(payload.link),
  };
}

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  const note = readPayload(event.data);
  event.waitUntil(self.registration.showNotification(note.title, {
    body: note.body, data: { link: note.link }, icon: "/static/icon.svg",
  }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const link = localLink(event.notification.data && event.notification.data.link);
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    for (const client of windows) {
      if (client.url === link && "focus" in client) return client.focus();
    }
    return self.clients.openWindow(link);
  })());
});
