// The printable receipt of an application's fee: the invoice as intake holds it (amounts are integer
// tiyin, shown in so'm), fetched with the desk's sign-in session (its HttpOnly cookie and X-OSS-Session).
"use strict";

(function () {
  const $ = (selector) => document.querySelector(selector);
  const language = localStorage.getItem("oss.language") || "uz";

  function t(key) {
    const table = window.OSS_STRINGS[language] || window.OSS_STRINGS.uz;
    return table[key] !== undefined ? table[key] : (window.OSS_STRINGS.en[key] || key);
  }

  function soM(tiyin) {
    const whole = Math.trunc(tiyin / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, "\u00a0");
    const part = tiyin % 100;
    return `${part ? `${whole},${String(part).padStart(2, "0")}` : whole} ${t("pay.som")}`;
  }

  async function load() {
    document.documentElement.lang = language;
    document.querySelectorAll("[data-i18n]").forEach((element) => { element.textContent = t(element.dataset.i18n); });
    const tracking = new URLSearchParams(location.search).get("tracking") || "";
    const response = await fetch(`/api/v1/applications/${encodeURIComponent(tracking)}/receipt`, {
      headers: { "Accept": "application/json", "X-OSS-Session": "1" },
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      $("#receipt-error").textContent = body.message || String(response.status);
      $("#receipt-error").hidden = false;
      return;
    }
    const invoice = body.invoice;
    $("#r-tracking").textContent = body.tracking_number;
    $("#r-service").textContent = (body.service_name && (body.service_name[language] || body.service_name.uz)) || body.service_code;
    $("#r-centre").textContent = body.centre;
    $("#r-invoice").textContent = invoice.invoice_number;
    $("#r-amount").textContent = soM(invoice.amount_tiyin);
    $("#r-method").textContent = invoice.method ? t("pay." + invoice.method) : "—";
    $("#r-receipt").textContent = invoice.receipt_number || "—";
    $("#r-paid-at").textContent = invoice.paid_at ? new Date(invoice.paid_at).toLocaleString(language) : "—";
    $("#r-state").textContent = invoice.state;
    $("#receipt-lines").hidden = false;
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("#print").addEventListener("click", () => window.print());
    load();
  });
}());
