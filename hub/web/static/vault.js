// Settings > Vault check and prune: while a job runs, poll its state and show its progress;
// when it ends, show the report the server renders. No inline script (the CSP forbids it).
"use strict";

function showReport(section) {
  fetch("/settings", { credentials: "same-origin", headers: { Accept: "text/html" } })
    .then((r) => (r.ok ? r.text() : null))
    .then((html) => {
      if (!html) return;
      const doc = new DOMParser().parseFromString(html, "text/html");
      const fresh = doc.getElementById("vault-job");
      const box = document.getElementById("vault-job");
      if (fresh && box) box.innerHTML = fresh.innerHTML;
      delete section.dataset.running;
    })
    .catch(() => {});
}

function poll(section) {
  fetch(section.dataset.job, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then((r) => (r.ok ? r.json() : null))
    .then((job) => {
      if (!job) return;
      if (job.state !== "waiting" && job.state !== "running") {
        showReport(section);
        return;
      }
      const text = document.getElementById("vault-job-progress");
      const bar = document.getElementById("vault-progress");
      if (text) {
        text.textContent = job.state === "waiting"
          ? "waiting for the hub's own upkeep pass"
          : (job.step === "decode" ? "decoding: " : "") + job.done + " of " + job.total + " segments";
      }
      if (bar) {
        bar.max = Math.max(job.total, 1);
        bar.value = job.done;
      }
      setTimeout(() => poll(section), 1000);
    })
    .catch(() => setTimeout(() => poll(section), 3000));
}

document.addEventListener("DOMContentLoaded", () => {
  const section = document.getElementById("vault");
  if (section && section.dataset.running) poll(section);
});
