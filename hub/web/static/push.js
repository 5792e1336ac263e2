// "Notify this browser": register the push service worker, subscribe with the hub's VAPID
// public key, and post the subscription to the hub with the session's CSRF token.
"use strict";

function b64urlToBytes(text) {
  const b64 = (text + "===".slice((text.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function sameBytes(buffer, bytes) {
  if (!buffer) return false;
  const other = new Uint8Array(buffer);
  return other.length === bytes.length && other.every((b, i) => b === bytes[i]);
}

function activated(registration) {
  // subscribe() needs an active worker; a fresh registration is still installing.
  return new Promise((resolve, reject) => {
    const worker = registration.installing || registration.waiting || registration.active;
    if (!worker) { reject(new Error("the service worker did not install")); return; }
    if (worker.state === "activated") { resolve(registration); return; }
    worker.addEventListener("statechange", () => {
      if (worker.state === "activated") resolve(registration);
      if (worker.state === "redundant") reject(new Error("the service worker failed to start"));
    });
  });
}

async function postSubscription(button, subscription) {
  const response = await fetch(button.dataset.post, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": button.dataset.csrf },
    body: JSON.stringify(subscription),
  });
  if (response.ok) return null;
  const text = await response.text();
  try { return JSON.parse(text).error; } catch (e) { return text; }
}

async function notifyThisBrowser(button, status) {
  button.disabled = true;
  status.textContent = "Asking this browser…";
  try {
    const permission = await Notification.requestPermission();
    if (permission !== "granted") {
      status.textContent = "This browser does not allow notifications from this hub: allow them in its site settings, then try again.";
      return;
    }
    // The worker's scope is its own folder: a push reaches it whatever the page, so it needs
    // no wider scope (and no Service-Worker-Allowed header).
    const registration = await activated(await navigator.serviceWorker.register("/static/push-sw.js"));
    status.textContent = "Subscribing at this browser's push service…";
    const key = b64urlToBytes(button.dataset.key);
    const existing = await registration.pushManager.getSubscription();
    if (existing && !sameBytes(existing.options.applicationServerKey, key)) {
      // Made under another hub key (the key file was replaced): subscribe() would refuse.
      await existing.unsubscribe();
    }
    const subscription = await registration.pushManager.subscribe({
      userVisibleOnly: true, applicationServerKey: key,
    });
    const error = await postSubscription(button, subscription);
    if (error) { status.textContent = "The hub refused this browser: " + error; return; }
    status.textContent = "This browser will be notified.";
    window.location.reload();
  } catch (err) {
    status.textContent = "This browser could not subscribe: " + (err && err.message ? err.message : err);
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const button = document.getElementById("push-subscribe");
  const status = document.getElementById("push-status");
  if (!button || !status) return;
  if (!window.isSecureContext || !("serviceWorker" in navigator) || !("PushManager" in window)) {
    button.disabled = true;
    status.textContent = "This browser cannot get push notifications from this address: it needs HTTPS with a certificate it trusts, or http://localhost.";
    return;
  }
  button.addEventListener("click", () => notifyThisBrowser(button, status));
});
