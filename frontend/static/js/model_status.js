/* A page whose model cannot answer yet polls GET /api/v1/models/{name}/availability/: the training job's
   progress is updated in place, and the page loads again (with its form) once the state changes, e.g.
   when the model is promoted. */
"use strict";

(() => {
  const root = document.getElementById("model-availability");
  if (!root || !root.dataset.url || root.dataset.state === "serving") return;
  const interval = parseInt(root.dataset.interval || "3000", 10);
  const status = document.getElementById("model-status");

  function showProgress(job) {
    if (!status) return;
    const text = status.querySelector(".job-progress");
    const state = status.querySelector(".job-status");
    const bar = status.querySelector(".job-bar");
    if (text) text.textContent = job.progress_text;
    if (state) state.textContent = job.status;
    if (bar) {
      bar.value = job.progress;
      bar.textContent = `${Math.round(job.progress)}%`;
    }
  }

  async function poll() {
    try {
      const response = await fetch(root.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.ok) {
        const availability = await response.json();
        const job = availability.training_job;
        const jobChanged = job && status && status.dataset.job && String(job.id) !== status.dataset.job;
        if (availability.state !== root.dataset.state || jobChanged) {
          window.location.assign(window.location.href.split("#")[0]); // a GET, also after a form was posted
          return;
        }
        if (job) showProgress(job);
      }
    } catch (ignored) { /* the server is restarting: ask again later */ }
    window.setTimeout(poll, interval);
  }

  window.setTimeout(poll, interval);
})();
