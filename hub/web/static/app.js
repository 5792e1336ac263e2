// Porchlight's page script: live updates over Server-Sent Events, refreshed snapshots.
// No inline scripts anywhere (the Content-Security-Policy forbids them): pages opt in with data-*.
"use strict";

function refreshMain() {
  // Fetch this page again and swap its <main>, so counts, events and alerts stay current.
  fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
    .then((r) => (r.ok ? r.text() : null))
    .then((html) => {
      if (!html) return;
      const doc = new DOMParser().parseFromString(html, "text/html");
      const fresh = doc.querySelector("main");
      const main = document.querySelector("main");
      if (fresh && main && !main.contains(document.activeElement)) main.innerHTML = fresh.innerHTML;
    })
    .catch(() => {});
}

function listen(main) {
  const source = new EventSource(main.dataset.live);
  let pending = null;
  source.onmessage = () => {
    // Coalesce bursts (a camera state flapping) into one refresh.
    if (pending) return;
    pending = setTimeout(() => { pending = null; refreshMain(); }, 300);
  };
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
  if (main && document.body.dataset.nolive === undefined && window.location.pathname === "/") listen(main);
  refreshSnapshots();
});
