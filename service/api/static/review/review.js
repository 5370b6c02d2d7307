// The review page: a reviewer checks each value against its highlighted source and accepts, corrects or
// rejects it. Everything shown is set with textContent (never as HTML); the API key lives in this tab's
// sessionStorage and travels as the X-API-Key header, never as a cookie.
"use strict";

(function () {
  const KEY = "abstractor.apiKey";
  const $ = (id) => document.getElementById(id);
  const state = {
    queue: [],
    review: null,
    selected: 0,
    page: 1,
    pages: 1,
    pageSize: null,
    pageToken: 0,
    imageUrl: null,
    editing: false,
    busy: false,
  };

  function apiKey() {
    return sessionStorage.getItem(KEY);
  }

  function status(text) {
    $("status").textContent = text || "";
  }

  async function api(method, path, body) {
    const headers = { "X-API-Key": apiKey() || "" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
    if (!response.ok) {
      let message = response.status + "";
      try {
        const error = (await response.json()).error;
        message = error.code + ": " + error.message;
      } catch (e) {
        // not JSON: the status says enough
      }
      if (response.status === 401) showKey();
      throw new Error(message);
    }
    return response;
  }

  function show(view) {
    for (const id of ["key-view", "queue-view", "review-view"]) $(id).hidden = id !== view;
    $("queue-button").hidden = view === "key-view";
    $("forget-key").hidden = view === "key-view";
  }

  function showKey() {
    show("key-view");
    $("key-input").focus();
  }

  // --- the queue ---------------------------------------------------------------------------------

  async function loadQueue() {
    state.review = null;
    show("queue-view");
    try {
      const queue = await (await api("GET", "/v1/reviews")).json();
      state.queue = queue.items;
      renderQueue();
      status("");
    } catch (e) {
      status(e.message);
    }
  }

  function renderQueue() {
    const list = $("queue");
    list.replaceChildren();
    for (const item of state.queue) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "queue-item";
      button.dataset.job = item.job_id;
      const confidence = item.lowest_confidence === null ? "no values" : item.lowest_confidence.toFixed(2);
      button.textContent =
        item.schema_name + "@" + item.schema_version + " · " + item.job_id + " · lowest " + confidence + " · " + item.state;
      button.addEventListener("click", () => openReview(item.job_id));
      li.appendChild(button);
      list.appendChild(li);
    }
    $("queue-empty").hidden = state.queue.length > 0;
  }

  // --- one review --------------------------------------------------------------------------------

  async function openReview(jobId) {
    try {
      const review = await (await api("GET", "/v1/reviews/" + encodeURIComponent(jobId))).json();
      state.selected = 0;
      state.page = 0;
      show("review-view");
      setReview(review);
    } catch (e) {
      status(e.message);
    }
  }

  function setReview(review) {
    state.review = review;
    const documentInfo = review.model.document || {};
    state.pages = Math.max(1, documentInfo.pages || 1);
    $("review-title").textContent = review.schema_name + "@" + review.schema_version + " · job " + review.job_id;
    $("review-state").textContent = review.state;
    renderFields();
    selectField(Math.min(state.selected, review.fields.length - 1), true);
  }

  function fieldName() {
    const fields = state.review ? state.review.fields : [];
    return fields.length ? fields[state.selected].name : null;
  }

  function under(path, field) {
    return path === field || path.startsWith(field + ".");
  }

  function evidenceOf(field) {
    const out = [];
    const evidence = state.review.current.evidence || {};
    for (const path of Object.keys(evidence)) {
      if (!under(path, field)) continue;
      for (const item of evidence[path]) out.push(item);
    }
    return out;
  }

  function shown(value) {
    if (value === null || value === undefined) return "—";
    if (typeof value === "string") return value;
    return JSON.stringify(value);
  }

  function renderFields() {
    const list = $("fields");
    list.replaceChildren();
    const flags = state.review.current.flags || [];
    state.review.fields.forEach((field, index) => {
      const li = document.createElement("li");
      li.className = "field";
      li.dataset.field = field.name;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = field.name;
      const confidence = document.createElement("span");
      confidence.className = "confidence";
      confidence.textContent = field.confidence === null ? "" : field.confidence.toFixed(2);
      const value = document.createElement("div");
      value.className = "value";
      value.textContent = shown(field.value);
      li.append(name, confidence, value);
      if (field.decision === "correct") {
        const model = document.createElement("div");
        model.className = "model-value";
        model.textContent = "model: " + shown(field.model_value);
        li.appendChild(model);
      }
      if (field.decision) {
        const decision = document.createElement("span");
        decision.className = "decision " + field.decision;
        decision.textContent = field.decision;
        li.appendChild(decision);
      }
      for (const flag of flags) {
        if (!under(flag.path, field.name)) continue;
        const note = document.createElement("div");
        note.className = "flag";
        note.textContent = flag.code;
        li.appendChild(note);
      }
      li.addEventListener("click", () => selectField(index, true));
      list.appendChild(li);
    });
  }

  function selectField(index, turnPage) {
    const fields = state.review.fields;
    if (!fields.length) return;
    state.selected = Math.max(0, Math.min(index, fields.length - 1));
    for (const li of $("fields").children) li.classList.toggle("selected", li.dataset.field === fieldName());
    const selected = $("fields").children[state.selected];
    if (selected) selected.scrollIntoView({ block: "nearest" });
    const first = evidenceOf(fieldName())[0];
    const wanted = turnPage && first ? first.page : state.page || 1;
    if (wanted !== state.page) loadPage(wanted);
    else drawHighlights();
  }

  async function loadPage(number) {
    // Only the latest request may show its page: fast key presses start several.
    const token = ++state.pageToken;
    $("page-image").dataset.loaded = "false";
    state.page = Math.max(1, Math.min(number, state.pages));
    $("page-label").textContent = "Page " + state.page + " of " + state.pages;
    const pdf = state.review.media_type === "application/pdf";
    $("no-image").hidden = pdf;
    $("page-frame").hidden = !pdf;
    if (!pdf) return;
    try {
      const path = "/v1/documents/" + encodeURIComponent(state.review.document_id) + "/pages/" + state.page;
      const response = await api("GET", path);
      const blob = await response.blob();
      if (token !== state.pageToken) return;
      state.pageSize = [
        parseFloat(response.headers.get("X-Page-Width-Pt")),
        parseFloat(response.headers.get("X-Page-Height-Pt")),
      ];
      if (state.imageUrl) URL.revokeObjectURL(state.imageUrl);
      state.imageUrl = URL.createObjectURL(blob);
      const image = $("page-image");
      image.dataset.page = String(state.page);
      image.dataset.loaded = "false";
      image.src = state.imageUrl;
    } catch (e) {
      status(e.message);
    }
  }

  function drawHighlights() {
    const layer = $("highlights");
    layer.replaceChildren();
    const image = $("page-image");
    if (!state.review || !state.pageSize || !image.naturalWidth) return;
    const scale = image.clientWidth / state.pageSize[0];
    for (const field of state.review.fields) {
      const mine = field.name === fieldName();
      for (const item of evidenceOf(field.name)) {
        if (item.page !== state.page) continue;
        for (const box of item.boxes || []) {
          const div = document.createElement("div");
          div.className = mine ? "highlight" : "highlight other";
          div.dataset.field = field.name;
          div.dataset.box = JSON.stringify([box.x0, box.y0, box.x1, box.y1]);
          div.style.left = box.x0 * scale + "px";
          div.style.top = box.y0 * scale + "px";
          div.style.width = (box.x1 - box.x0) * scale + "px";
          div.style.height = (box.y1 - box.y0) * scale + "px";
          layer.appendChild(div);
        }
      }
    }
    const first = layer.querySelector(".highlight:not(.other)");
    if (first) first.scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  // --- decisions ---------------------------------------------------------------------------------

  async function decide(body) {
    if (state.busy || !state.review) return;
    state.busy = true;
    status("Saving…");
    try {
      const path = "/v1/reviews/" + encodeURIComponent(state.review.job_id);
      const review = await (await api("POST", path, body)).json();
      const next = body.action === "finish" ? state.selected : state.selected + 1;
      state.selected = Math.min(next, review.fields.length - 1);
      setReview(review);
      status(body.action === "finish" ? "Review finished." : "");
      if (body.action === "finish") await loadQueue();
    } catch (e) {
      status(e.message);
    } finally {
      state.busy = false;
    }
  }

  function decideField(action) {
    const field = fieldName();
    if (field) decide({ action, field });
  }

  function startEdit() {
    const field = state.review.fields[state.selected];
    if (!field) return;
    state.editing = true;
    $("edit-form").hidden = false;
    const input = $("edit-input");
    input.value = typeof field.value === "string" ? field.value : JSON.stringify(field.value);
    input.focus();
    input.select();
  }

  function stopEdit() {
    state.editing = false;
    $("edit-form").hidden = true;
    document.activeElement.blur();
  }

  function parsed(text, field) {
    // Strings stay as typed; lists, numbers and objects are JSON (as the field already holds).
    const current = field.value !== null ? field.value : field.model_value;
    if (current === null || typeof current === "string") return text;
    return JSON.parse(text);
  }

  function saveEdit(event) {
    event.preventDefault();
    const field = state.review.fields[state.selected];
    let value;
    try {
      value = parsed($("edit-input").value, field);
    } catch (e) {
      status("Not valid JSON.");
      return;
    }
    stopEdit();
    decide({ action: "correct", field: field.name, value });
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (state.editing) {
      if (event.key === "Escape") stopEdit();
      else if (event.key === "Enter" && !event.shiftKey) saveEdit(event);
      return;
    }
    if ($("review-view").hidden || event.target.tagName === "INPUT" || event.target.tagName === "TEXTAREA") return;
    const actions = {
      j: () => selectField(state.selected + 1, true),
      ArrowDown: () => selectField(state.selected + 1, true),
      k: () => selectField(state.selected - 1, true),
      ArrowUp: () => selectField(state.selected - 1, true),
      a: () => decideField("accept"),
      e: () => startEdit(),
      r: () => decideField("reject"),
      f: () => decide({ action: "finish" }),
      "[": () => loadPage(state.page - 1),
      "]": () => loadPage(state.page + 1),
    };
    const action = actions[event.key] || actions[event.key.toLowerCase()];
    if (action) {
      event.preventDefault();
      action();
    }
  }

  // --- wiring ------------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, $("key-input").value.trim());
      $("key-input").value = "";
      loadQueue();
    });
    $("forget-key").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      showKey();
    });
    $("queue-button").addEventListener("click", loadQueue);
    $("finish").addEventListener("click", () => decide({ action: "finish" }));
    $("prev-page").addEventListener("click", () => loadPage(state.page - 1));
    $("next-page").addEventListener("click", () => loadPage(state.page + 1));
    $("edit-form").addEventListener("submit", saveEdit);
    $("edit-cancel").addEventListener("click", stopEdit);
    $("page-image").addEventListener("load", () => {
      const image = $("page-image");
      // A page replaced before it finished loading says nothing about the one now asked for.
      if (image.dataset.page !== String(state.page) || image.src !== state.imageUrl) return;
      image.dataset.loaded = "true";
      drawHighlights();
    });
    window.addEventListener("resize", drawHighlights);
    document.addEventListener("keydown", onKey);
    if (apiKey()) loadQueue();
    else showKey();
  });
})();
