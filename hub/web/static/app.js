// Porchlight's page script: live updates over Server-Sent Events, refreshed snapshots.
// No inline scripts anywhere (the Content-Security-Policy forbids them): pages opt in with data-*.
"use strict";

function refreshPart(selector, state) {
  // Fetch this page again and swap one part of it (Home: its whole <main>), so counts, requests,
  // events and alerts stay current. Never under the reader's keyboard focus: a part that holds
  // the focus is swapped when the focus leaves it.
  const here = document.querySelector(selector);
  if (!here) return;
  if (here.contains(document.activeElement) && document.activeElement !== document.body) {
    state.deferred = true;
    return;
  }
  state.deferred = false;
  fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
    .then((r) => (r.ok ? r.text() : null))
    .then((html) => {
      if (!html) return;
      const doc = new DOMParser().parseFromString(html, "text/html");
      const fresh = doc.querySelector(selector);
      const part = document.querySelector(selector);
      if (!fresh || !part) return;
      if (part.contains(document.activeElement) && document.activeElement !== document.body) {
        state.deferred = true;
        return;
      }
      part.innerHTML = fresh.innerHTML;
      part.dataset.refreshed = String(Number(part.dataset.refreshed || 0) + 1);
    })
    .catch(() => {});
}

function listen(url, selector, kinds) {
  // kinds: the event kinds this part shows (null: every kind, as on Home).
  const source = new EventSource(url);
  const state = { deferred: false };
  let pending = null;
  source.onmessage = (message) => {
    let kind = null;
    try { kind = JSON.parse(message.data).kind; } catch (e) { return; }
    if (kinds && !kinds.includes(kind)) return;
    // Coalesce bursts (a camera state flapping) into one refresh.
    if (pending) return;
    pending = setTimeout(() => { pending = null; refreshPart(selector, state); }, 300);
  };
  const part = document.querySelector(selector);
  if (part) {
    part.addEventListener("focusout", () => {
      setTimeout(() => { if (state.deferred) refreshPart(selector, state); }, 0);
    });
  }
}

function refreshSnapshots() {
  document.querySelectorAll("img[data-refresh]").forEach((img) => {
    const every = Number(img.dataset.refresh) || 1000;
    const base = img.src.split("?")[0];
    setInterval(() => {
      const next = new Image();
      next.onload = () => { img.src = next.src; };
      next.src = base + "?t=" + Date.now();
    }, every);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const main = document.querySelector("main[data-live]");
  if (main && document.body.dataset.nolive === undefined) {
    // Home follows every event; another page opts in with one part marked data-live-on="kinds".
    const part = main.querySelector("[data-live-on][id]");
    if (window.location.pathname === "/") listen(main.dataset.live, "main", null);
    else if (part) listen(main.dataset.live, "#" + part.id, part.dataset.liveOn.split(" "));
  }
  refreshSnapshots();
});
