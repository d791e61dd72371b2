/* History page: feedback buttons post to /api/v1/detections/{id}/feedback/. */
"use strict";

(() => {
  document.querySelectorAll(".swatch[data-class-id]").forEach((swatch) => {
    swatch.style.background = Modelyard.classColour(parseInt(swatch.dataset.classId, 10));
  });

  document.querySelectorAll(".history-item").forEach((item) => {
    item.addEventListener("click", async (event) => {
      const button = event.target.closest("button.fb");
      if (!button) return;
      const row = button.closest(".verdict");
      const status = row.querySelector(".fb-status");
      const payload = { verdict: button.dataset.verdict };
      if (row.dataset.boxIndex !== "") {
        payload.box_index = parseInt(row.dataset.boxIndex, 10);
        const select = row.querySelector("select.right-class");
        if (payload.verdict === "wrong" && select && select.value !== "") payload.correct_class = select.value;
      } else {
        payload.min_confidence = parseFloat(item.dataset.conf);
      }
      status.textContent = "saving…";
      status.classList.remove("error");
      try {
        await Modelyard.postJson(item.dataset.feedbackUrl, payload);
        row.querySelectorAll("button.fb").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
        status.textContent = "saved";
      } catch (error) {
        status.textContent = error.message;
        status.classList.add("error");
      }
    });
  });
})();
