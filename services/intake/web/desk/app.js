// The desk: operators file applications and list their centre's; officers move their agencies'
// applications on. Staff sign in at the identity provider through the desk's own service, which keeps
// the tokens in its session (oss_common/web_sessions.py): this page never holds one. Its API calls
// carry the session's HttpOnly cookie and the X-OSS-Session header; a 401 means sign in again.
"use strict";

(function () {
  const PAGE_HEADER = window.OssSignIn.PAGE_HEADER;
  const LANGUAGE_KEY = "oss.language";
  const STATUSES = ["awaiting_payment", "submitted", "accepted", "in_review", "returned_for_correction", "resubmitted",
                    "approved", "rejected", "issued", "withdrawn"];
  const REASON_REQUIRED = ["rejected", "returned_for_correction", "withdrawn"];
  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));

  let language = localStorage.getItem(LANGUAGE_KEY) || "uz";
  let services = [];
  let applications = [];
  let queue = [];
  let idempotencyKey = newKey();
  let me = null;  // who is signed in: {subject, role, region, centres, agencies}, from auth/session
  let provider = null;  // the identity provider's issuer; null: the demo's fallback (a pasted token)

  // Strings

  function t(key, values) {
    const table = window.OSS_STRINGS[language] || window.OSS_STRINGS.uz;
    let text = table[key] !== undefined ? table[key] : (window.OSS_STRINGS.en[key] || key);
    Object.entries(values || {}).forEach(([name, value]) => { text = text.replace("{" + name + "}", value); });
    return text;
  }

  function local(names) {
    if (!names) return "";
    return names[language] || names.uz || Object.values(names)[0] || "";
  }

  function translatePage() {
    document.documentElement.lang = language;
    $$("[data-i18n]").forEach((element) => { element.textContent = t(element.dataset.i18n); });
    $$("[data-i18n-placeholder]").forEach((element) => { element.placeholder = t(element.dataset.i18nPlaceholder); });
    $("#language").value = language;
  }

  function setLanguage(value) {
    language = value;
    localStorage.setItem(LANGUAGE_KEY, value);
    translatePage();
    renderServiceOptions();
    renderForm();
    loadDistricts();
    renderApplications();
    renderQueue();
  }

  // The API (the session cookie goes with every same-origin call)

  function newKey() {
    // crypto.randomUUID needs a secure context; a centre's LAN may serve plain HTTP.
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return "desk-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || String(status));
      this.status = status;
      this.body = body || {};
    }
  }

  async function api(method, path, body, headers) {
    const options = { method, headers: Object.assign({ "Accept": "application/json" }, PAGE_HEADER, headers || {}) };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, options);
    } catch (error) {
      throw new ApiError(0, { message: t("error.network") });
    }
    const payload = await response.json().catch(() => ({}));
    if (response.status === 401) {
      signedOut(t("signin.expired"));
    }
    if (!response.ok) throw new ApiError(response.status, payload);
    return payload;
  }

  function errorText(error) {
    if (error.status === 403) return t("error.forbidden");
    if (error.status === 0) return t("error.network");
    return t("error.generic", { message: error.message });
  }

  function show(element, text) {
    element.textContent = text || "";
    element.hidden = !text;
  }

  // Signing in and out

  async function boot() {
    const refused = new URLSearchParams(location.search).get("signin_error");
    if (refused) history.replaceState(null, "", location.pathname);
    let answer;
    try {
      answer = await window.OssSignIn.session();
    } catch (error) {
      signedOut(t("error.network"));
      return;
    }
    provider = answer.provider;
    if (answer.signed_in) start(answer.principal);
    else signedOut(refused ? t("signin.refused") : "");
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
    me = null;
    $("#sign-in").hidden = false;
    $("#provider-sign-in").hidden = !provider;
    $("#sign-in-form").hidden = Boolean(provider);
    $("#tabs").hidden = true;
    $("#who").hidden = true;
    $("#sign-out").hidden = true;
    $$(".tab").forEach((tab) => { tab.hidden = true; });
    show($("#sign-in-error"), message || "");
  }

  function start(principal) {
    me = principal;
    $("#sign-in").hidden = true;
    show($("#sign-in-error"), "");
    $("#who").hidden = false;
    $("#sign-out").hidden = false;
    $("#who-name").textContent = `${me.subject} (${me.role}${me.region ? ", " + me.region : ""})`;
    const tabs = $$("#tabs button").filter((button) => button.dataset.role === me.role);
    $$("#tabs button").forEach((button) => { button.hidden = !tabs.includes(button); });
    $("#tabs").hidden = !tabs.length;
    renderCentres(me.centres || []);
    if (me.role === "operator") {
      loadServices();
      loadDistricts();
    }
    if (tabs.length) {
      openTab(tabs[0].dataset.tab);
    } else {  // signed in, but neither an operator nor an officer: nothing of the desk is theirs
      $("#sign-in").hidden = false;
      $("#provider-sign-in").hidden = true;
      $("#sign-in-form").hidden = true;
      show($("#sign-in-error"), t("error.forbidden"));
    }
  }

  function openTab(name) {
    $$(".tab").forEach((tab) => { tab.hidden = tab.id !== "tab-" + name; });
    $$("#tabs button").forEach((button) => button.classList.toggle("active", button.dataset.tab === name));
    if (name === "list") loadApplications();
    if (name === "officer") loadQueue();
  }

  // The application form

  async function loadServices() {
    try {
      services = (await api("GET", "/api/v1/services")).items;
    } catch (error) {
      show($("#form-error"), errorText(error));
      return;
    }
    renderServiceOptions();
  }

  function renderServiceOptions() {
    const select = $("#service");
    const chosen = select.value;
    select.replaceChildren(new Option(t("new.choose"), ""));
    services.forEach((service) => select.add(new Option(local(service.names), service.code)));
    select.value = services.some((service) => service.code === chosen) ? chosen : "";
  }

  async function loadDistricts() {
    if (!me || me.role !== "operator") return;
    const select = $("#district");
    const chosen = select.value;
    try {
      const districts = (await api("GET", "/api/v1/districts?lang=" + encodeURIComponent(language))).items;
      select.replaceChildren(...districts.map((district) => new Option(district.name || local(district.names), district.code)));
      if (chosen) select.value = chosen;
    } catch (error) {
      show($("#form-error"), errorText(error));
    }
  }

  function renderCentres(centres) {
    const select = $("#centre");
    select.replaceChildren(...centres.map((centre) => new Option(centre, centre)));
    $("#centre-label").hidden = centres.length < 2;
  }

  function chosenService() {
    return services.find((service) => service.code === $("#service").value);
  }

  function renderForm() {
    const service = chosenService();
    const info = $("#service-info");
    const documents = $("#documents");
    const attributes = $("#attributes");
    const kept = service ? currentAttributeValues() : {};
    const keptDocuments = new Set($$("#documents input:checked").map((input) => input.value));
    documents.replaceChildren();
    attributes.replaceChildren();
    $("#attributes-box").hidden = !service || !service.attributes.length;
    if (!service) {
      show(info, "");
      return;
    }
    const fee = service.fee && !service.fee.free && service.fee_today_tiyin !== null && service.fee_today_tiyin !== undefined
      ? `${soM(service.fee_today_tiyin)} ${t("pay.som")}` : t("new.free");
    show(info, `${local(service.agency.names)} · ${t("new.deadline")}: ${service.deadline_working_days} · ${t("new.fee")}: ${fee}`);
    if (!service.required_documents.length) {
      const none = document.createElement("p");
      none.textContent = t("new.no_documents");
      documents.append(none);
    }
    service.required_documents.forEach((item) => {
      const label = document.createElement("label");
      label.className = "check";
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = item.code;
      box.checked = keptDocuments.has(item.code);
      label.append(box, " " + local(item.names));
      documents.append(label);
    });
    service.attributes.forEach((attribute) => attributes.append(attributeField(attribute, kept[attribute.code])));
  }

  function attributeField(attribute, value) {
    const label = document.createElement(attribute.datatype === "multivaluelist" ? "fieldset" : "label");
    label.className = "attribute";
    label.dataset.attribute = attribute.code;
    label.dataset.datatype = attribute.datatype;
    const caption = document.createElement(attribute.datatype === "multivaluelist" ? "legend" : "span");
    caption.textContent = local(attribute.description) || attribute.code;
    if (attribute.required) caption.classList.add("required");
    label.append(caption);
    let input;
    if (attribute.datatype === "text") {
      input = document.createElement("textarea");
      input.maxLength = 5000;
      input.rows = 3;
    } else if (attribute.datatype === "singlevaluelist") {
      input = document.createElement("select");
      input.add(new Option("—", ""));
      attribute.values.forEach((item) => input.add(new Option(local(item.name) || item.key, item.key)));
    } else if (attribute.datatype === "multivaluelist") {
      attribute.values.forEach((item) => {
        const option = document.createElement("label");
        option.className = "check";
        const box = document.createElement("input");
        box.type = "checkbox";
        box.value = item.key;
        box.checked = Array.isArray(value) && value.includes(item.key);
        option.append(box, " " + (local(item.name) || item.key));
        label.append(option);
      });
    } else {
      input = document.createElement("input");
      input.type = { number: "number", datetime: "datetime-local" }[attribute.datatype] || "text";
      if (attribute.datatype === "number") input.step = "any";
      if (attribute.datatype === "string") input.maxLength = 255;
    }
    if (input) {
      input.name = "attributes." + attribute.code;
      input.required = attribute.required;
      if (value !== undefined && value !== null) input.value = value;
      label.append(input);
    }
    label.dataset.field = "attributes." + attribute.code;
    const error = document.createElement("span");
    error.className = "error";
    error.dataset.errorFor = "attributes." + attribute.code;
    error.hidden = true;
    label.append(error);
    return label;
  }

  function currentAttributeValues() {
    const values = {};
    $$("#attributes .attribute").forEach((field) => {
      const code = field.dataset.attribute;
      const datatype = field.dataset.datatype;
      if (datatype === "multivaluelist") {
        const keys = $$("input:checked", field).map((box) => box.value);
        if (keys.length) values[code] = keys;
        return;
      }
      const raw = $("input, select, textarea", field).value.trim();
      if (raw === "") return;
      values[code] = datatype === "number" && !Number.isNaN(Number(raw)) ? Number(raw) : raw;
    });
    return values;
  }

  function formValue(name) {
    const element = $(`[name="${name}"]`);
    return element ? element.value.trim() : "";
  }

  function submission() {
    const body = {
      service_code: $("#service").value,
      applicant: {
        pinfl: formValue("applicant.pinfl"),
        full_name: formValue("applicant.full_name"),
        phone: formValue("applicant.phone"),
        language: formValue("applicant.language"),
        channel: formValue("applicant.channel"),
        email: formValue("applicant.email") || null,
      },
      district: $("#district").value,
      documents: $$("#documents input:checked").map((box) => box.value),
      attributes: currentAttributeValues(),
    };
    if ($("#centre").value) body.centre = $("#centre").value;
    return body;
  }

  function clearFieldErrors() {
    $$("[data-error-for]").forEach((element) => show(element, ""));
    $$(".invalid").forEach((element) => element.classList.remove("invalid"));
    show($("#form-error"), "");
  }

  function showFieldErrors(fields) {
    const unplaced = [];
    Object.entries(fields || {}).forEach(([name, messages]) => {
      const text = [].concat(messages).join("; ");
      const slot = $(`[data-error-for="${CSS.escape(name)}"]`);
      if (slot) {
        show(slot, text);
        const field = $(`[data-field="${CSS.escape(name)}"]`);
        if (field) field.classList.add("invalid");
      } else {
        unplaced.push(`${name}: ${text}`);
      }
    });
    return unplaced;
  }

  async function submitApplication(event) {
    event.preventDefault();
    clearFieldErrors();
    if (!$("#service").value) {
      showFieldErrors({ service_code: [t("new.choose")] });
      return;
    }
    const button = $("#submit");
    button.disabled = true;
    try {
      const view = await api("POST", "/api/v1/applications", submission(), { "Idempotency-Key": idempotencyKey });
      $("#receipt-tracking").textContent = view.tracking_number;
      // Only the answer that filed it carries the code; a replayed submission (200) does not.
      $("#receipt-code").textContent = view.status_code || t("new.code_sent");
      $("#receipt-due").textContent = formatDate(view.due_date);
      showPayment(view);
      $("#application-form").hidden = true;
      $("#receipt").hidden = false;
    } catch (error) {
      const unplaced = showFieldErrors(error.body.fields);
      const general = Object.keys(error.body.fields || {}).length ? t("error.fix_fields") : errorText(error);
      show($("#form-error"), [general, ...unplaced].join(" "));
    } finally {
      button.disabled = false;
    }
  }

  // The fee: amounts are integer tiyin; shown in so'm.

  function soM(tiyin) {
    const whole = Math.trunc(tiyin / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, "\u00a0");
    const part = tiyin % 100;
    return part ? `${whole},${String(part).padStart(2, "0")}` : whole;
  }

  let payingFor = null;

  function showPayment(view) {
    payingFor = view.invoice && view.invoice.state === "issued" ? view : null;
    $("#payment-form").hidden = !payingFor;
    $("#paid").hidden = true;
    show($("#pay-error"), "");
    if (!payingFor) return;
    $("#pay-invoice").textContent = view.invoice.invoice_number;
    $("#pay-amount").textContent = `${soM(view.invoice.amount_tiyin)} ${t("pay.som")}`;
    $("#pay-receipt").value = "";
  }

  async function takePayment(event) {
    event.preventDefault();
    if (!payingFor) return;
    const button = $("#pay-submit");
    button.disabled = true;
    try {
      const view = await api("POST", `/api/v1/applications/${encodeURIComponent(payingFor.tracking_number)}/payments`, {
        method: $("#pay-method").value, receipt_number: $("#pay-receipt").value.trim(),
        amount_tiyin: payingFor.invoice.amount_tiyin,
      });
      $("#receipt-due").textContent = formatDate(view.due_date);
      $("#payment-form").hidden = true;
      $("#print-receipt").href = `receipt.html?tracking=${encodeURIComponent(view.tracking_number)}`;
      $("#paid").hidden = false;
      payingFor = null;
    } catch (error) {
      const fields = Object.values(error.body.fields || {}).flat();
      show($("#pay-error"), fields.length ? fields.join(" ") : errorText(error));
    } finally {
      button.disabled = false;
    }
  }

  function newApplication() {
    idempotencyKey = newKey();
    $("#application-form").reset();
    clearFieldErrors();
    renderForm();
    loadDistricts();
    $("#receipt").hidden = true;
    $("#application-form").hidden = false;
  }

  // Dates

  function today() {
    // The working calendar is Tashkent's (UTC+5, no daylight saving).
    return new Date(Date.now() + 5 * 3600 * 1000).toISOString().slice(0, 10);
  }

  function daysLeft(dueDate) {
    return Math.round((Date.parse(dueDate) - Date.parse(today())) / 86400000);
  }

  function daysLeftText(dueDate) {
    const days = daysLeft(dueDate);
    if (days < 0) return t("days.overdue", { n: -days });
    if (days === 0) return t("days.today");
    return t("days.left", { n: days });
  }

  function formatDate(isoDate) {
    const [year, month, day] = isoDate.slice(0, 10).split("-");
    return `${day}.${month}.${year}`;
  }

  function serviceName(code) {
    const service = services.find((item) => item.code === code);
    return service ? local(service.names) : code;
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.append(td);
    return td;
  }

  // The centre's applications

  async function loadApplications() {
    const status = $("#status-filter").value;
    const query = "?page_size=500" + (status ? "&status=" + encodeURIComponent(status) : "");
    try {
      const page = await api("GET", "/api/v1/applications" + query);
      applications = page.items;
      $("#list-total").textContent = t("list.total", { n: page.total });
      show($("#list-error"), "");
    } catch (error) {
      applications = [];
      show($("#list-error"), errorText(error));
    }
    await searchApplications();  // a searched number the new list lacks is looked up again
  }

  // A whole tracking number is looked up on the server when the list does not hold it: the list is
  // the newest 500, and an older application (or one filed since the list loaded) must be found too.
  const TRACKING_NUMBER = /^[A-Z]{2}-\d{4}-\d{6}$/;

  async function searchApplications() {
    const number = $("#search").value.trim().toUpperCase();
    if (TRACKING_NUMBER.test(number) && !applications.some((item) => item.tracking_number === number)) {
      try {
        const found = await api("GET", "/api/v1/applications/" + encodeURIComponent(number));
        // The list may have (re)loaded while the lookup ran: keep one row per application.
        applications = [found, ...applications.filter((item) => item.tracking_number !== found.tracking_number)];
      } catch (error) {
        // 404, or 403 for another centre's: the list simply shows nothing for it.
      }
    }
    renderApplications();
  }

  function renderApplications() {
    const needle = $("#search").value.trim().toLowerCase();
    const rows = applications.filter((item) => !needle || item.tracking_number.toLowerCase().includes(needle)
      || item.service_code.includes(needle) || serviceName(item.service_code).toLowerCase().includes(needle));
    const body = $("#applications tbody");
    body.replaceChildren();
    if (!rows.length) {
      const row = body.insertRow();
      cell(row, t("list.empty")).colSpan = 6;
    }
    rows.forEach((item) => {
      const row = body.insertRow();
      row.dataset.tracking = item.tracking_number;
      cell(row, item.tracking_number, "tracking");
      cell(row, serviceName(item.service_code));
      cell(row, t("status." + item.status), "status status-" + item.status);
      cell(row, formatDate(item.submitted_at));
      cell(row, formatDate(item.due_date));
      const open = item.allowed_transitions.length && !["approved", "rejected"].includes(item.status);
      cell(row, open ? daysLeftText(item.due_date) : "—", open && daysLeft(item.due_date) < 0 ? "overdue" : "");
    });
  }

  // The officer's queue

  async function loadQueue() {
    try {
      // Still moving, earliest due first, in the officer's agencies (the token decides which).
      const page = await api("GET", "/api/v1/applications?active=true&order=due&page_size=500");
      queue = page.items;
      show($("#officer-error"), "");
    } catch (error) {
      queue = [];
      show($("#officer-error"), errorText(error));
    }
    renderQueue();
  }

  function renderQueue() {
    const body = $("#queue tbody");
    body.replaceChildren();
    if (!queue.length) {
      const row = body.insertRow();
      cell(row, t("officer.empty")).colSpan = 6;
    }
    queue.forEach((item) => {
      const row = body.insertRow();
      row.dataset.tracking = item.tracking_number;
      cell(row, item.tracking_number, "tracking");
      cell(row, serviceName(item.service_code));
      cell(row, t("status." + item.status), "status status-" + item.status);
      cell(row, formatDate(item.due_date));
      cell(row, daysLeftText(item.due_date), daysLeft(item.due_date) < 0 ? "overdue" : "");
      const actions = cell(row, "", "actions");
      const reason = document.createElement("input");
      reason.className = "reason";
      reason.placeholder = t("officer.reason");
      reason.title = t("officer.reason_hint");
      reason.maxLength = 2000;
      actions.append(reason);
      item.allowed_transitions.forEach((target) => {
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.to = target;
        button.textContent = t("action." + target);
        if (REASON_REQUIRED.includes(target)) button.classList.add("needs-reason");
        button.addEventListener("click", () => move(item.tracking_number, target, reason, actions));
        actions.append(button);
      });
      const error = document.createElement("span");
      error.className = "error";
      error.hidden = true;
      actions.append(error);
    });
  }

  async function move(tracking, target, reasonInput, actions) {
    const error = $(".error", actions);
    show(error, "");
    $$("button", actions).forEach((button) => { button.disabled = true; });
    const reason = reasonInput.value.trim();
    try {
      const view = await api("POST", `/api/v1/applications/${encodeURIComponent(tracking)}/transitions`,
        { to: target, reason: reason || null });
      $("#officer-message").textContent = t("officer.done", { tracking, status: t("status." + view.status) });
      await loadQueue();
    } catch (failure) {
      const fields = failure.body.fields || {};
      show(error, Object.keys(fields).length
        ? Object.entries(fields).map(([name, messages]) => `${name === "reason" ? t("officer.reason") : name}: ${[].concat(messages).join("; ")}`).join(" ")
        : errorText(failure));
      $$("button", actions).forEach((button) => { button.disabled = false; });
    }
  }

  // Wiring

  document.addEventListener("DOMContentLoaded", () => {
    const statusFilter = $("#status-filter");
    STATUSES.forEach((status) => {
      const option = new Option("", status);
      option.dataset.i18n = "status." + status;
      statusFilter.add(option);
    });
    translatePage();
    $("#language").addEventListener("change", (event) => setLanguage(event.target.value));
    $("#sign-in-form").addEventListener("submit", (event) => {
      event.preventDefault();
      signInWithToken($("#token").value.trim());
    });
    $("#sign-out").addEventListener("click", () => signOut());
    $$("#tabs button").forEach((button) => button.addEventListener("click", () => openTab(button.dataset.tab)));
    $("#service").addEventListener("change", () => { clearFieldErrors(); renderForm(); });
    $("#application-form").addEventListener("submit", submitApplication);
    $("#another").addEventListener("click", newApplication);
    $("#payment-form").addEventListener("submit", takePayment);
    $("#search").addEventListener("input", searchApplications);
    $("#status-filter").addEventListener("change", loadApplications);
    $("#refresh").addEventListener("click", loadApplications);
    $("#officer-refresh").addEventListener("click", loadQueue);
    boot();
  });
}());
