/* Classification pages: the upload page sends each image to POST /api/v1/classifications/ and draws
   the returned probabilities as bars; on both pages the verdict buttons post feedback. */
"use strict";

(() => {
  /* Feedback, on an upload card or a history row: the container names its feedback URL. */
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button.fb");
    if (!button) return;
    const container = button.closest("[data-feedback-url]");
    const row = button.closest(".verdict");
    const status = row.querySelector(".fb-status");
    const payload = { verdict: button.dataset.verdict };
    const select = row.querySelector("select.right-class");
    if (payload.verdict === "wrong" && select && select.value !== "") payload.correct_class = select.value;
    status.textContent = "saving…";
    status.classList.remove("error");
    try {
      await Modelyard.postJson(container.dataset.feedbackUrl, payload);
      row.querySelectorAll("button.fb").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
      status.textContent = "saved";
    } catch (error) {
      status.textContent = error.message;
      status.classList.add("error");
    }
  });

  const dropzone = document.getElementById("dropzone");
  if (!dropzone) return;
  const input = document.getElementById("file-input");
  const results = document.getElementById("results");
  const template = document.getElementById("result-template");
  const apiUrl = dropzone.dataset.api;
  const modelName = dropzone.dataset.model;

  function renderBars(element, data) {
    const list = element.querySelector(".bars");
    list.replaceChildren(
      ...data.classes.map((score) => {
        const item = document.createElement("li");
        item.className = "bar-row";
        item.dataset.className = score.class_name;
        item.dataset.probability = score.probability;
        const percent = (100 * score.probability).toFixed(1);
        const label = Object.assign(document.createElement("span"), { className: "bar-label", textContent: score.class_name });
        const track = document.createElement("span");
        track.className = "bar-track";
        track.setAttribute("role", "meter");
        track.setAttribute("aria-label", score.class_name);
        track.setAttribute("aria-valuemin", "0");
        track.setAttribute("aria-valuemax", "100");
        track.setAttribute("aria-valuenow", percent);
        const fill = document.createElement("span");
        fill.className = "bar-fill";
        fill.style.width = `${percent}%`;
        fill.style.background = Modelyard.classColour(score.class_id);
        track.append(fill);
        const value = Object.assign(document.createElement("b"), { className: "bar-value", textContent: `${percent} %` });
        item.append(label, track, value);
        return item;
      })
    );
    const best = data.classes[0];
    element.querySelector(".answer").replaceChildren(
      Object.assign(document.createElement("b"), { className: "best", textContent: best.class_name }),
      ` with probability ${best.probability.toFixed(3)}`
    );
    const model = data.model;
    element.querySelector(".meta").textContent =
      `${model.name} ${model.label} (version ${model.version}) answered in ${data.latency_ms.toFixed(1)} ms · ` +
      `${data.image.width}×${data.image.height} px · top ${data.top_k}`;
  }

  function offerFeedback(element, data, classNames) {
    element.dataset.feedbackUrl = data.links.feedback;
    const select = element.querySelector("select.right-class");
    for (const name of classNames) select.append(Object.assign(document.createElement("option"), { value: name, textContent: name }));
    element.querySelector(".verdict").hidden = false;
  }

  async function handleFile(file, classNames) {
    const element = template.content.firstElementChild.cloneNode(true);
    element.querySelector(".filename").textContent = file.name;
    const status = element.querySelector(".status");
    status.textContent = "classifying…";
    element.dataset.state = "pending";
    const preview = element.querySelector(".preview");
    preview.src = URL.createObjectURL(file);
    preview.alt = file.name;
    results.prepend(element);

    const form = new FormData();
    form.append("image", file);
    if (modelName) form.append("model", modelName);
    try {
      const response = await fetch(apiUrl, {
        method: "POST",
        body: form,
        credentials: "same-origin",
        headers: Modelyard.headers({ Accept: "application/json" }),
      });
      if (!response.ok) throw new Error(await Modelyard.errorText(response));
      const data = await response.json();
      element.dataset.classificationId = data.id;
      renderBars(element, data);
      offerFeedback(element, data, classNames.length ? classNames : data.classes.map((c) => c.class_name));
      status.textContent = "done";
      element.dataset.state = "done";
    } catch (error) {
      status.textContent = error.message;
      status.classList.add("error");
      element.dataset.state = "error";
    }
  }

  const classNames = JSON.parse(document.getElementById("class-names").textContent || "[]");

  function handleFiles(files) {
    for (const file of files) handleFile(file, classNames);
  }

  input.addEventListener("change", () => {
    handleFiles(Array.from(input.files));
    input.value = "";
  });
  dropzone.addEventListener("dragover", (event) => {
    event.preventDefault();
    dropzone.classList.add("over");
  });
  dropzone.addEventListener("dragleave", () => dropzone.classList.remove("over"));
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropzone.classList.remove("over");
    handleFiles(Array.from(event.dataTransfer.files).filter((file) => file.type.startsWith("image/") || !file.type));
  });
  dropzone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") input.click();
  });
})();
