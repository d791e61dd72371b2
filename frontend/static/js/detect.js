/* Upload page: send each image to POST /api/v1/detections/, draw its boxes on a canvas, and filter
   them with the confidence slider in the page (no new request). */
"use strict";

(() => {
  const dropzone = document.getElementById("dropzone");
  const input = document.getElementById("file-input");
  const results = document.getElementById("results");
  const template = document.getElementById("result-template");
  const slider = document.getElementById("threshold");
  const sliderValue = document.getElementById("threshold-value");
  const heatmapToggle = document.getElementById("show-heatmap");
  const apiUrl = dropzone.dataset.api;
  const modelName = dropzone.dataset.model;
  const MAX_CANVAS_SIDE = 1280;
  // Ask the server for every box above the slider's minimum; the slider filters from there.
  const REQUEST_CONF = parseFloat(slider.min);
  const cards = [];

  function threshold() {
    return parseFloat(slider.value);
  }

  function drawCard(card) {
    const { canvas, bitmap, data } = card;
    if (!bitmap) return;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    if (!data) return;
    const min = threshold();
    const visible = data.boxes.filter((box) => box.confidence >= min);
    const line = Math.max(2, Math.round(Math.max(canvas.width, canvas.height) / 320));
    const fontSize = Math.max(12, Math.round(Math.max(canvas.width, canvas.height) / 50));
    ctx.font = `${fontSize}px sans-serif`;
    ctx.textBaseline = "top";
    for (const box of visible.slice().reverse()) {
      const [x1, y1, x2, y2] = box.xyxyn;
      const left = x1 * canvas.width, top = y1 * canvas.height;
      const colour = Modelyard.classColour(box.class_id);
      ctx.lineWidth = line;
      ctx.strokeStyle = colour;
      ctx.strokeRect(left, top, (x2 - x1) * canvas.width, (y2 - y1) * canvas.height);
      const text = `${box.class_name} ${box.confidence.toFixed(2)}`;
      const width = ctx.measureText(text).width + 2 * line;
      const labelTop = top - fontSize - 2 * line >= 0 ? top - fontSize - 2 * line : top;
      ctx.fillStyle = colour;
      ctx.fillRect(left, labelTop, width, fontSize + 2 * line);
      ctx.fillStyle = "#fff";
      ctx.fillText(text, left + line, labelTop + line);
    }
    renderBoxList(card, visible);
  }

  function renderBoxList(card, visible) {
    const { element, data } = card;
    const list = element.querySelector(".boxes");
    list.replaceChildren(
      ...visible.map((box) => {
        const item = document.createElement("li");
        item.className = "box";
        item.dataset.classId = box.class_id;
        item.dataset.confidence = box.confidence;
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = Modelyard.classColour(box.class_id);
        item.append(swatch, ` ${box.class_name} `, Object.assign(document.createElement("b"), {
          textContent: box.confidence.toFixed(3),
        }));
        return item;
      })
    );
    element.dataset.boxes = String(data.boxes.length);
    element.dataset.visibleBoxes = String(visible.length);
    const model = data.model;
    element.querySelector(".meta").textContent =
      `${model.name} ${model.label} (version ${model.version}) answered in ${data.latency_ms.toFixed(1)} ms · ` +
      `${data.image.width}×${data.image.height} px · ${visible.length} of ${data.boxes.length} boxes at ≥ ${threshold().toFixed(2)}`;
    updateHeatmap(card);
  }

  function updateHeatmap(card) {
    const img = card.element.querySelector(".heatmap");
    if (!heatmapToggle.checked || !card.data) {
      img.hidden = true;
      card.canvas.hidden = false;
      return;
    }
    const url = `${card.data.links.heatmap}?min_confidence=${threshold().toFixed(2)}`;
    if (img.dataset.src !== url) {
      img.dataset.src = url;
      img.src = url;
    }
    img.hidden = false;
    card.canvas.hidden = true;
  }

  function sizeCanvas(card, width, height) {
    const scale = Math.min(1, MAX_CANVAS_SIDE / Math.max(width, height));
    card.canvas.width = Math.max(1, Math.round(width * scale));
    card.canvas.height = Math.max(1, Math.round(height * scale));
  }

  async function bitmapFromUrl(url) {
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) throw new Error(await Modelyard.errorText(response));
    return createImageBitmap(await response.blob());
  }

  async function handleFile(file) {
    const element = template.content.firstElementChild.cloneNode(true);
    const card = { element, canvas: element.querySelector("canvas"), bitmap: null, data: null };
    element.querySelector(".filename").textContent = file.name;
    const status = element.querySelector(".status");
    status.textContent = "detecting…";
    element.dataset.state = "pending";
    results.prepend(element);
    cards.push(card);

    // The browser applies EXIF orientation like the server does; formats it cannot show come from the server.
    const preview = createImageBitmap(file).then(
      (bitmap) => {
        card.bitmap = bitmap;
        sizeCanvas(card, bitmap.width, bitmap.height);
        drawCard(card);
      },
      () => null
    );

    const form = new FormData();
    form.append("image", file);
    form.append("conf", String(REQUEST_CONF));
    if (modelName) form.append("model", modelName);
    try {
      const response = await fetch(apiUrl, {
        method: "POST",
        body: form,
        credentials: "same-origin",
        headers: Modelyard.headers({ Accept: "application/json" }),
      });
      if (!response.ok) throw new Error(await Modelyard.errorText(response));
      card.data = await response.json();
      element.dataset.detectionId = card.data.id;
      await preview;
      if (!card.bitmap) {
        card.bitmap = await bitmapFromUrl(card.data.links.image);
        sizeCanvas(card, card.bitmap.width, card.bitmap.height);
      }
      status.textContent = "done";
      element.dataset.state = "done";
      drawCard(card);
    } catch (error) {
      status.textContent = error.message;
      status.classList.add("error");
      element.dataset.state = "error";
      element.querySelector(".meta").textContent = "";
    }
  }

  function handleFiles(files) {
    for (const file of files) handleFile(file);
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
  slider.addEventListener("input", () => {
    sliderValue.textContent = threshold().toFixed(2);
    cards.forEach(drawCard);
  });
  heatmapToggle.addEventListener("change", () => cards.forEach(updateHeatmap));
})();
