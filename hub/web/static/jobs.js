// Background jobs (hub/web/jobs.py): a page with [data-job] polls the job's JSON and marks its
// steps as the hub reaches them; when the job ends it loads the page that shows the outcome.
// No inline script (the Content-Security-Policy forbids it): the page opts in with data-*.
"use strict";

(function () {
  const box = document.querySelector("[data-job]");
  if (!box) return;
  const words = { waiting: "", active: "working…", done: "done", stopped: "stopped here" };
  const status = document.getElementById("job-state");

  function show(job) {
    job.steps.forEach((step) => {
      const item = box.querySelector(`li[data-step="${CSS.escape(step.key)}"]`);
      if (!item) return;
      item.className = "step step-" + step.state;
      item.querySelector(".step-state").textContent = words[step.state] || "";
      item.querySelector(".step-detail").textContent = step.detail;
    });
    const active = job.steps.find((s) => s.state === "active");
    if (active && status) {
      const text = "Working: " + active.label + (active.detail ? " (" + active.detail + ")" : "") + ".";
      if (status.textContent !== text) status.textContent = text;
    }
  }

  function poll() {
    fetch(box.dataset.job, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : null))
      .then((job) => {
        if (!job) { setTimeout(poll, 3000); return; }
        show(job);
        if (job.state === "done") window.location.replace(box.dataset.done);
        else if (job.state === "failed") window.location.replace(box.dataset.failed);
        else setTimeout(poll, 1000);
      })
      .catch(() => setTimeout(poll, 3000));
  }

  poll();
})();
