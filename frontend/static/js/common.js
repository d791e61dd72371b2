/* Shared helpers of the end-user pages: CSRF token, JSON calls to the REST API, class colours. */
"use strict";

const Modelyard = (() => {
  const PALETTE = [
    "#e6194b", "#3cb44b", "#0082c8", "#f58230", "#911eb4",
    "#46f0f0", "#f032e6", "#d2f53c", "#008080", "#aa6e28",
  ];

  function cookie(name) {
    const match = document.cookie.split("; ").find((part) => part.startsWith(name + "="));
    return match ? decodeURIComponent(match.slice(name.length + 1)) : "";
  }

  function headers(extra) {
    return Object.assign({ "X-CSRFToken": cookie("csrftoken"), "X-Modelyard-Client": "web" }, extra || {});
  }

  /* The API's error body is {"error": {"code", "message"}}; fall back to the HTTP status. */
  async function errorText(response) {
    try {
      const body = await response.json();
      if (body && body.error) return body.error.message || body.error.code;
    } catch (ignored) { /* not JSON */ }
    return `HTTP ${response.status}`;
  }

  async function postJson(url, payload) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: headers({ "Content-Type": "application/json", Accept: "application/json" }),
      body: JSON.stringify(payload),
    });
    if (!response.ok) throw new Error(await errorText(response));
    return response.json();
  }

  function classColour(classId) {
    return PALETTE[classId % PALETTE.length];
  }

  return { cookie, headers, errorText, postJson, classColour };
})();
