// Settings' backup download (hub/web/pages/backup.py): the form's POST answers with the file,
// which the browser saves while this page stays. Before the file can start (minutes with
// footage on a Pi) the hub is taking the backup: this polls its bytes done and total under a
// ticket the form carries, and shows them. No inline script (the CSP forbids it).
"use strict";

(function () {
  const form = document.getElementById("backup-form");
  const status = document.getElementById("backup-status");
  if (!form || !status || !window.crypto || !crypto.randomUUID) return;
  const line = document.getElementById("backup-line");
  const bar = document.getElementById("backup-progress");
  let timer = null;

  function megabytes(bytes) {
    return (bytes / 1e6).toFixed(1) + " MB";
  }

  function show(p) {
    if (p.total > 0) {
      bar.max = p.total;
      bar.value = Math.min(p.done, p.total);
    }
    if (p.state === "taking") {
      line.textContent = `Taking the backup: ${megabytes(p.done)} of ${megabytes(p.total)}.`;
    } else if (p.state === "sending") {
      line.textContent = "Backup taken: your browser is downloading it.";
    } else if (p.state === "sent") {
      line.textContent = "Backup downloaded.";
    } else if (p.state === "failed") {
      line.textContent = "The backup failed: " + p.error;
    }
    return p.state === "sent" || p.state === "failed";
  }

  function poll(ticket) {
    fetch(`/settings/backup/progress?ticket=${encodeURIComponent(ticket)}`,
          { credentials: "same-origin", cache: "no-store" })
      .then((r) => (r.ok ? r.json() : null))
      .then((p) => {
        if (p && show(p)) return;
        timer = window.setTimeout(() => poll(ticket), 1000);
      })
      .catch(() => { timer = window.setTimeout(() => poll(ticket), 2000); });
  }

  form.addEventListener("submit", () => {
    const ticket = crypto.randomUUID();
    form.elements.ticket.value = ticket;
    if (timer) window.clearTimeout(timer);
    line.textContent = "Starting the backup…";
    bar.value = 0;
    status.hidden = false;
    poll(ticket);
  });
})();
