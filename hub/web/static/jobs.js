// Background jobs (hub/jobs.py): an element with data-job polls the job's JSON while it runs,
// marks its steps (li[data-step]), says where it is ([data-job-line]) and fills its bar
// (progress[data-job-bar]). When the job ends it loads data-done or data-failed, or else
// replaces the element named by data-refresh with the same element of the page fetched again.
// No inline script (the Content-Security-Policy forbids it): the page opts in with data-*.
"use strict";

(function () {
  const box = document.querySelector("[data-job]");
  if (!box) return;
  const words = { waiting: "", active: "working…", done: "done", stopped: "stopped here" };

  function show(job) {
    job.steps.forEach((step) => {
      const item = box.querySelector(`li[data-step="${CSS.escape(step.key)}"]`);
      if (!item) return;
      item.className = "step step-" + step.state;
      item.querySelector(".step-state").textContent = words[step.state] || "";
      item.querySelector(".step-detail").textContent = step.detail;
    });
    const line = box.querySelector("[data-job-line]");
    if (line && job.line && line.textContent !== job.line) line.textContent = job.line;
    const bar = box.querySelector("progress[data-job-bar]");
    if (bar) {
      bar.max = Math.max(job.total, 1);
      bar.value = job.done;
    }
  }

  function refresh() {
    fetch(window.location.pathname, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then((r) => (r.ok ? r.text() : null))
      .then((html) => {
        if (!html) return;
        const id = box.dataset.refresh;
        const fresh = new DOMParser().parseFromString(html, "text/html").getElementById(id);
        const here = document.getElementById(id);
        if (fresh && here) here.innerHTML = fresh.innerHTML;
        delete box.dataset.running;
      })
      .catch(() => {});
  }

  function finish(job) {
    if (box.dataset.refresh) refresh();
    else if (job.state === "done") window.location.replace(box.dataset.done);
    else window.location.replace(box.dataset.failed);
  }

  function poll() {
    fetch(box.dataset.job, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : null))
      .then((job) => {
        if (!job) { setTimeout(poll, 3000); return; }
        show(job);
        if (job.state === "running") setTimeout(poll, 1000);
        else finish(job);
      })
      .catch(() => setTimeout(poll, 3000));
  }

  poll();
})();
