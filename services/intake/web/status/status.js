// The citizen's status page: a tracking number and its status code in, the application's status,
// dates and history out. Public: no token, and the page shows (and the endpoint returns) nothing personal.
"use strict";

(function () {
  const LANGUAGE_KEY = "oss.language";
  const TRACKING = /^[A-Z]{2}-\d{4}-\d{6,}$/;
  const $ = (selector) => document.querySelector(selector);
  let language = localStorage.getItem(LANGUAGE_KEY) || "uz";
  let shown = null;

  function t(key) {
    const table = window.OSS_STRINGS[language] || window.OSS_STRINGS.uz;
    return table[key] !== undefined ? table[key] : key;
  }

  function local(names) {
    return names ? (names[language] || names.uz || "") : "";
  }

  function formatDate(isoDate) {
    const [year, month, day] = isoDate.split("-");
    return `${day}.${month}.${year}`;
  }

  function translate() {
    document.documentElement.lang = language;
    document.querySelectorAll("[data-i18n]").forEach((element) => { element.textContent = t(element.dataset.i18n); });
    $("#language").value = language;
    if (shown) render(shown);
  }

  function showError(text) {
    $("#error").textContent = text || "";
    $("#error").hidden = !text;
  }

  function render(status) {
    shown = status;
    $("#result-service").textContent = local(status.service_name) || status.service_code;
    $("#result-tracking").textContent = status.tracking_number;
    $("#result-status").textContent = t("status." + status.status);
    $("#result-status").className = "status-" + status.status;
    $("#result-submitted").textContent = formatDate(status.submitted_on);
    $("#result-due").textContent = formatDate(status.due_date);
    $("#result-history").replaceChildren(...status.history.map((change) => {
      const item = document.createElement("li");
      item.textContent = `${formatDate(change.on)} — ${t("status." + change.status)}`;
      item.dataset.status = change.status;
      return item;
    }));
    $("#result").hidden = false;
  }

  async function lookup(event) {
    event.preventDefault();
    showError("");
    $("#result").hidden = true;
    shown = null;
    const tracking = $("#tracking").value.trim().toUpperCase();
    if (!TRACKING.test(tracking)) return showError(t("bad_format"));
    let response;
    try {
      response = await fetch("/api/v1/status/" + encodeURIComponent(tracking), {
        method: "POST",
        headers: { "Accept": "application/json", "Content-Type": "application/json" },
        body: JSON.stringify({ code: $("#code").value.trim() }),
      });
    } catch (error) {
      return showError(t("network"));
    }
    if (response.status === 404 || response.status === 400) return showError(t("not_found"));
    if (response.status === 429) {
      const minutes = Math.max(1, Math.ceil(Number(response.headers.get("Retry-After") || 60) / 60));
      return showError(t("too_many").replace("{minutes}", String(minutes)));
    }
    if (!response.ok) return showError(t("network"));
    render(await response.json());
  }

  document.addEventListener("DOMContentLoaded", () => {
    translate();
    $("#language").addEventListener("change", (event) => {
      language = event.target.value;
      localStorage.setItem(LANGUAGE_KEY, language);
      translate();
    });
    $("#lookup").addEventListener("submit", lookup);
  });
}());
