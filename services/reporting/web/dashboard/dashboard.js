// The ministry's dashboard: per-region cards, monthly charts and a comparison table, from national
// reporting's summary and monthly series. The analyst signs in at the identity provider through this
// service, which keeps the tokens in its session (oss_common/web_sessions.py); the page holds none, its
// calls carry the session's HttpOnly cookie and the X-OSS-Session header.
"use strict";

(function () {
  const PAGE_HEADER = window.OssSignIn.PAGE_HEADER;
  const LANGUAGE_KEY = "oss.language";
  const $ = (selector) => document.querySelector(selector);
  let language = localStorage.getItem(LANGUAGE_KEY) || "uz";
  let data = null;
  let provider = null;  // the identity provider's issuer; null: the demo's fallback (a pasted token)
  let signedIn = false;

  function t(key, values) {
    const table = window.OSS_STRINGS[language] || window.OSS_STRINGS.uz;
    let text = table[key] !== undefined ? table[key] : key;
    Object.entries(values || {}).forEach(([name, value]) => { text = text.replace("{" + name + "}", value); });
    return text;
  }

  function translate() {
    document.documentElement.lang = language;
    document.querySelectorAll("[data-i18n]").forEach((element) => { element.textContent = t(element.dataset.i18n); });
    $("#language").value = language;
    if (data) render();
  }

  function show(element, text) {
    element.textContent = text || "";
    element.hidden = !text;
  }

  async function api(path) {
    let response;
    try {
      response = await fetch(path, { headers: Object.assign({ "Accept": "application/json" }, PAGE_HEADER) });
    } catch (error) {
      throw new Error(t("network"));
    }
    const payload = await response.json().catch(() => ({}));
    if (response.status === 401) {
      signedOut(t("signin.expired"));
      throw new Error(t("signin.expired"));
    }
    if (response.status === 403) {
      throw new Error(t("signin.not_analyst"));
    }
    if (!response.ok) throw new Error(t("error", { message: payload.message || response.status }));
    return payload;
  }

  async function boot() {
    const refused = new URLSearchParams(location.search).get("signin_error");
    if (refused) history.replaceState(null, "", location.pathname);
    let answer;
    try {
      answer = await window.OssSignIn.session();
    } catch (error) {
      signedOut(t("network"));
      return;
    }
    provider = answer.provider;
    if (!answer.signed_in) {
      signedOut(refused ? t("signin.refused") : "");
      return;
    }
    signedIn = true;
    $("#sign-in").hidden = true;
    $("#sign-out").hidden = false;
    load();
  }

  async function signInWithToken(value) {
    $("#token").value = "";
    if (!(await window.OssSignIn.withToken(value))) {
      show($("#sign-in-error"), t("signin.invalid"));
      return;
    }
    boot();
  }

  async function signOut() {
    if (!(await window.OssSignIn.signOut())) signedOut("");
  }

  function signedOut(message) {
    signedIn = false;
    data = null;
    $("#board").hidden = true;
    $("#sign-out").hidden = true;
    $("#sign-in").hidden = false;
    $("#provider-sign-in").hidden = !provider;
    $("#sign-in-form").hidden = Boolean(provider);
    show($("#sign-in-error"), message);
  }

  function defaultPeriod() {
    const today = new Date(Date.now() + 5 * 3600 * 1000);  // Tashkent
    const from = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth() - 11, 1));
    $("#to").value = today.toISOString().slice(0, 10);
    $("#from").value = from.toISOString().slice(0, 10);
  }

  async function load() {
    show($("#board-error"), "");
    const query = new URLSearchParams();
    if ($("#from").value) query.set("from", $("#from").value);
    if ($("#to").value) query.set("to", $("#to").value);
    try {
      const [summary, monthly] = await Promise.all([
        api("/api/v1/reports/summary?" + query), api("/api/v1/reports/monthly?" + query)]);
      data = { summary, monthly };
      $("#board").hidden = false;
      render();
    } catch (error) {
      if (signedIn) {
        $("#board").hidden = false;
        show($("#board-error"), error.message);
      }
    }
  }

  function regionName(slug) {
    const region = data.monthly.regions.find((item) => item.region === slug);
    return region && region.names ? (region.names[language] || region.names.uz) : slug;
  }

  const percent = (value) => (value === null || value === undefined ? "—" : `${Math.round(value * 1000) / 10}%`);
  const days = (seconds) => (seconds === null || seconds === undefined ? "—" : t("days", { n: Math.round(seconds / 8640) / 10 }));
  const number = (value) => (value === null || value === undefined ? "—" : Number(value).toLocaleString(language === "en" ? "en" : "ru"));

  function card(title, figures, slug) {
    const box = document.createElement("article");
    box.className = "card";
    if (slug) box.dataset.region = slug;
    const heading = document.createElement("h3");
    heading.textContent = title;
    box.append(heading);
    figures.forEach(([key, value, name]) => {
      const row = document.createElement("p");
      row.dataset.figure = name;
      const label = document.createElement("span");
      label.textContent = t(key);
      const strong = document.createElement("strong");
      strong.textContent = value;
      row.append(label, strong);
      box.append(row);
    });
    return box;
  }

  function render() {
    const { summary, monthly } = data;
    const missing = summary.missing.concat(monthly.missing.filter((slug) => !summary.missing.includes(slug)));
    show($("#partial"), missing.length ? t("partial", { regions: missing.map(regionName).join(", ") }) : "");
    const totals = summary.totals;
    $("#national").replaceChildren(card(t("national"), [
      ["card.submitted", number(totals.applications), "applications"],
      ["card.backlog", number(totals.open), "open"],
      ["card.sla", percent(totals.sla_compliance), "sla"],
    ]));
    $("#region-cards").replaceChildren(...summary.regions.map((region) => card(regionName(region.region), [
      ["card.submitted", number(region.applications), "applications"],
      ["card.backlog", number(region.open), "open"],
      ["card.sla", percent(region.sla_compliance), "sla"],
      ["card.median", days(region.median_processing_seconds), "median"],
    ], region.region)));

    const months = Array.from(new Set(monthly.regions.flatMap((region) => region.months.map((row) => row.month)))).sort();
    const seriesOf = (field, scale) => monthly.regions.map((region) => ({
      name: regionName(region.region),
      values: months.map((month) => {
        const row = region.months.find((item) => item.month === month);
        const value = row ? row[field] : null;
        return value === null || value === undefined ? null : value * (scale || 1);
      }),
    }));
    const empty = t("chart.empty");
    OssCharts.line($("#chart-submitted"), months, seriesOf("submitted"), { empty, integer: true, format: (v) => String(Math.round(v)) });
    OssCharts.line($("#chart-backlog"), months, seriesOf("backlog"), { empty, integer: true, format: (v) => String(Math.round(v)) });
    OssCharts.line($("#chart-sla"), months, seriesOf("sla_compliance", 100), { empty, max: 100, format: (v) => `${Math.round(v)}` });
    OssCharts.line($("#chart-median"), months, seriesOf("median_processing_seconds", 1 / 86400), { empty, minTop: 1, format: (v) => String(Number(v.toPrecision(2))) });

    const body = $("#comparison tbody");
    body.replaceChildren(...summary.regions.map((region) => {
      const row = document.createElement("tr");
      row.dataset.region = region.region;
      [regionName(region.region), number(region.applications), number(region.open), number(region.decided),
       number(region.on_time), number(region.late), percent(region.sla_compliance),
       days(region.median_processing_seconds), days(region.p90_processing_seconds)].forEach((text) => {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      });
      return row;
    }));
    renderFees(summary.fees);
  }

  function soM(tiyin) {
    // Integer tiyin, shown in whole so'm (the table's unit), grouped as the page's language groups numbers.
    return tiyin === null || tiyin === undefined ? "—" : number(Math.round(tiyin / 100));
  }

  function renderFees(fees) {
    const rows = (fees ? fees.by_region : []).map((region) => [regionName(region.region), region]);
    if (fees && fees.by_region.length) rows.push([t("national"), fees.totals]);
    $("#fees tbody").replaceChildren(...rows.map(([name, figures]) => {
      const row = document.createElement("tr");
      row.dataset.region = figures.region || "national";
      [name, number(figures.invoices), soM(figures.invoiced_tiyin), soM(figures.paid_tiyin),
       soM(figures.refunded_tiyin), soM(figures.outstanding_tiyin)].forEach((text) => {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      });
      return row;
    }));
  }

  document.addEventListener("DOMContentLoaded", () => {
    translate();
    defaultPeriod();
    $("#language").addEventListener("change", (event) => {
      language = event.target.value;
      localStorage.setItem(LANGUAGE_KEY, language);
      translate();
    });
    $("#sign-in-form").addEventListener("submit", (event) => {
      event.preventDefault();
      show($("#sign-in-error"), "");
      signInWithToken($("#token").value.trim());
    });
    $("#sign-out").addEventListener("click", () => signOut());
    $("#period").addEventListener("submit", (event) => { event.preventDefault(); load(); });
    boot();
  });
}());
