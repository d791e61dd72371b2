// A training job's live page: polls the job's JSON every 1.5 s while it is queued or running and
// redraws the progress bar, the per-epoch curves (inline SVG), metrics, result, log and error.
(function () {
  "use strict";

  const POLL_MS = 1500;
  const ACTIVE = new Set(["queued", "running"]);
  const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
  const QUALITY_KEYS = ["mAP50", "mAP50-95", "top1", "top5", "precision", "recall", "accuracy", "roc_auc", "f1", "fitness"];
  const SVG_NS = "http://www.w3.org/2000/svg";
  // What one step of progress is: an epoch (YOLO detector or classifier), a boosting round (XGBoost), a trial (search).
  const STEP_UNITS = { detection: "epoch", classification: "epoch", tabular: "round", search: "trial" };

  const root = document.getElementById("training-job");
  const dataNode = document.getElementById("training-job-data");
  if (!root || !dataNode) return;
  const field = (name) => root.querySelector(`[data-field="${name}"]`);
  let firstRender = true;

  // -- charts ----------------------------------------------------------------------------------
  function seriesFrom(history, pick) {
    const keys = new Set();
    history.forEach((point) => Object.keys(point).forEach((key) => key !== "epoch" && pick(key) && keys.add(key)));
    return [...keys].sort().map((key) => ({
      name: key,
      points: history.filter((p) => typeof p[key] === "number" && isFinite(p[key])).map((p) => [p.epoch, p[key]]),
    })).filter((s) => s.points.length > 0);
  }

  function svgEl(name, attrs, text) {
    const node = document.createElementNS(SVG_NS, name);
    Object.entries(attrs).forEach(([key, value]) => node.setAttribute(key, value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function niceNumber(value) {
    if (value === 0) return "0";
    const abs = Math.abs(value);
    return abs >= 100 ? value.toFixed(0) : abs >= 1 ? value.toFixed(2) : value.toPrecision(2);
  }

  function drawChart(svg, series, epochs, emptyText) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const width = 480, height = 260, left = 46, right = 10, top = 10, bottom = 28;
    const legendRows = Math.ceil(series.length / 3);
    const plotBottom = height - bottom - legendRows * 14;
    if (series.length === 0) {
      svg.appendChild(svgEl("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty" }, emptyText));
      return;
    }
    const xs = series.flatMap((s) => s.points.map((p) => p[0]));
    const ys = series.flatMap((s) => s.points.map((p) => p[1]));
    const xMin = Math.min(1, ...xs), xMax = Math.max(epochs || 1, ...xs, xMin + 1);
    let yMin = Math.min(...ys), yMax = Math.max(...ys);
    if (yMin === yMax) { yMin -= 0.5; yMax += 0.5; }
    const pad = (yMax - yMin) * 0.05;
    yMin -= pad; yMax += pad;
    const sx = (x) => left + ((x - xMin) / (xMax - xMin)) * (width - left - right);
    const sy = (y) => top + (1 - (y - yMin) / (yMax - yMin)) * (plotBottom - top);

    svg.appendChild(svgEl("rect", { x: left, y: top, width: width - left - right, height: plotBottom - top, class: "plot" }));
    for (let i = 0; i <= 4; i++) {
      const y = yMin + ((yMax - yMin) * i) / 4;
      svg.appendChild(svgEl("line", { x1: left, x2: width - right, y1: sy(y), y2: sy(y), class: "grid" }));
      svg.appendChild(svgEl("text", { x: left - 4, y: sy(y) + 4, "text-anchor": "end", class: "tick" }, niceNumber(y)));
    }
    const xTicks = Math.min(6, xMax - xMin);
    for (let i = 0; i <= xTicks; i++) {
      const x = Math.round(xMin + ((xMax - xMin) * i) / xTicks);
      svg.appendChild(svgEl("text", { x: sx(x), y: plotBottom + 14, "text-anchor": "middle", class: "tick" }, String(x)));
    }
    series.forEach((s, index) => {
      const colour = COLOURS[index % COLOURS.length];
      const d = s.points.map((p, i) => `${i ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ");
      svg.appendChild(svgEl("path", { d, stroke: colour, class: "line" }));
      if (s.points.length === 1) {
        svg.appendChild(svgEl("circle", { cx: sx(s.points[0][0]), cy: sy(s.points[0][1]), r: 3, fill: colour }));
      }
      const lx = left + (index % 3) * 145, ly = plotBottom + 28 + Math.floor(index / 3) * 14;
      svg.appendChild(svgEl("rect", { x: lx, y: ly - 8, width: 10, height: 3, fill: colour }));
      svg.appendChild(svgEl("text", { x: lx + 14, y: ly - 4, class: "legend" }, s.name));
    });
  }

  // -- the rest of the page --------------------------------------------------------------------
  function setText(name, text) {
    const node = field(name);
    if (node) node.textContent = text;
  }

  function link(href, text) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }

  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined) return "-";
    const s = Math.round(seconds), m = Math.floor(s / 60);
    return m ? `${m}m ${String(s % 60).padStart(2, "0")}s` : `${s}s`;
  }

  function renderMetrics(metrics) {
    const table = field("metrics");
    table.replaceChildren();
    const names = Object.keys(metrics || {}).filter((k) => typeof metrics[k] === "number").sort();
    if (!names.length) {
      table.insertRow().insertCell().textContent = "-";
      return;
    }
    names.forEach((name) => {
      const row = table.insertRow();
      row.insertCell().textContent = name;
      row.insertCell().textContent = niceNumber(metrics[name]);
    });
  }

  function renderComparison(comparison) {
    const node = field("comparison");
    if (!comparison || !comparison.verdict) { node.textContent = "-"; return; }
    const parts = [comparison.verdict];
    if (comparison.baseline_version) parts.push(`vs v#${comparison.baseline_version}`);
    const delta = (comparison.deltas || {})[comparison.primary_metric];
    if (typeof delta === "number") parts.push(`${comparison.primary_metric} ${delta >= 0 ? "+" : ""}${niceNumber(delta)}`);
    if (comparison.reason) parts.push(`(${comparison.reason})`);
    node.textContent = parts.join(" ");
  }

  function render(job) {
    const status = field("status");
    status.textContent = job.status + (job.cancel_requested && job.status === "running" ? " (cancelling)" : "");
    status.className = `badge status-${job.status}`;
    setText("stage", job.stage || "");
    const cancel = root.querySelector('[data-action="cancel"]');
    cancel.hidden = !ACTIVE.has(job.status) || job.cancel_requested;

    field("progress-fill").style.width = `${Math.max(0, Math.min(100, job.progress))}%`;
    root.querySelector(".progress").setAttribute("aria-valuenow", String(job.progress));
    const unit = STEP_UNITS[job.kind] || "step";
    setText("progress-text", `${Math.round(job.progress)}%` + (job.epochs ? ` · ${unit} ${job.epoch} of ${job.epochs}` : ""));

    const error = field("error");
    error.hidden = !job.error || job.status === "cancelled";
    error.textContent = job.error ? `${job.error_code ? job.error_code + ": " : ""}${job.error}` : "";

    const history = job.history || [];
    const empty = ACTIVE.has(job.status) ? `waiting for the first ${unit}` : `nothing reported per ${unit}`;
    root.querySelectorAll("[data-field=step-unit]").forEach((node) => { node.textContent = unit; });
    drawChart(root.querySelector('[data-chart="loss"]'), seriesFrom(history, (k) => /loss/i.test(k)), job.epochs, empty);
    drawChart(root.querySelector('[data-chart="quality"]'),
      seriesFrom(history, (k) => QUALITY_KEYS.includes(k) || /fitness/.test(k) || /^(metrics|val)\/(?!.*loss)/.test(k)),
      job.epochs, empty);
    renderMetrics(job.metrics);

    const version = field("version");
    version.replaceChildren(job.model_version
      ? link(job.model_version.admin_url, `${job.model_version.model} ${job.model_version.label} (${job.model_version.status})`)
      : document.createTextNode("-"));
    renderComparison(job.comparison);
    let promotion = job.auto_promote ? "automatic" : "manual";
    if (job.promotion_error) promotion += `: refused (${job.promotion_error})`;
    else if (job.auto_promote && job.model_version && job.model_version.status === "production") promotion += ": promoted";
    setText("promotion", promotion);
    const mlflow = field("mlflow");
    mlflow.replaceChildren(job.mlflow_run_url ? link(job.mlflow_run_url, job.mlflow_run_id)
      : document.createTextNode(job.mlflow_run_id || "-"));
    setText("data-version", job.data_version ? job.data_version.slice(0, 12) : "-");
    setText("duration", formatDuration(job.duration_s));
    setText("worker", job.worker_hostname || "-");

    const log = field("log");
    const atBottom = firstRender || log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    firstRender = false;
    log.textContent = job.log_tail || "";
    if (atBottom) log.scrollTop = log.scrollHeight;
    field("traceback-box").hidden = !job.traceback;
    setText("traceback", job.traceback || "");
  }

  // -- polling and cancel ----------------------------------------------------------------------
  async function poll() {
    try {
      const response = await fetch(root.dataset.apiUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.ok) {
        const job = await response.json();
        render(job);
        if (!ACTIVE.has(job.status)) return;
      }
    } catch (err) {
      // The server restarting or a network blip: try again at the next tick.
    }
    window.setTimeout(poll, POLL_MS);
  }

  root.querySelector('[data-action="cancel"]').addEventListener("click", async (event) => {
    if (!window.confirm("Cancel this training job?")) return;
    event.target.disabled = true;
    const token = root.querySelector("input[name=csrfmiddlewaretoken]").value;
    const response = await fetch(root.dataset.cancelUrl, {
      method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": token, Accept: "application/json" },
    });
    if (response.ok) render(await response.json());
    event.target.disabled = false;
  });

  const initial = JSON.parse(dataNode.textContent);
  render(initial);
  if (ACTIVE.has(initial.status)) window.setTimeout(poll, POLL_MS);
})();
