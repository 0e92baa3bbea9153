// The dashboard: plain DOM, no framework. Every value from the API or the user is written with
// textContent (never innerHTML), and the page's CSP forbids inline scripts and styles.
"use strict";

(function () {
  const KEY = "backprop.apiKey"; // sessionStorage only; never in a URL
  const FINAL = ["finished", "failed", "canceled"];
  const STATUSES = ["queued", "started", ...FINAL];
  const main = document.getElementById("main");
  let config = { auth: false };
  let cleanup = []; // stops a page's timers and streams when the route changes
  let refused = false; // the last key was answered 401

  // ---- DOM helpers -------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === false || value === null || value === undefined) continue;
      if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child); // strings become text
    }
    return node;
  }
  function show(...nodes) {
    main.replaceChildren(...nodes);
  }
  function fmtTime(iso) {
    return iso ? new Date(iso).toLocaleString() : "—";
  }
  function fmtNum(x) {
    return typeof x === "number" ? String(x) : "—";
  }
  function errorText(body, status) {
    if (!body || typeof body !== "object") return "HTTP " + status;
    let text = body.message || body.status || "HTTP " + status;
    for (const [field, messages] of Object.entries(body.errors || {})) {
      text += "\n" + field + ": " + [].concat(messages).join(" ");
    }
    return text;
  }

  // ---- API calls, with the key ------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, body) {
      super(errorText(body, status));
      this.status = status;
    }
  }
  function authHeaders() {
    const key = sessionStorage.getItem(KEY);
    return key ? { Authorization: "Bearer " + key } : {};
  }
  async function api(path, options) {
    const opts = Object.assign({}, options || {});
    opts.headers = Object.assign({ Accept: "application/json" }, authHeaders(), opts.headers);
    const response = await fetch(path, opts);
    if (response.status === 401 && config.auth) {
      sessionStorage.removeItem(KEY);
      refused = true;
      route();
    }
    const type = response.headers.get("Content-Type") || "";
    if (!response.ok) {
      const body = type.includes("json") ? await response.json() : null;
      throw new ApiError(response.status, body);
    }
    if (response.status === 204) return null;
    return type.includes("json") ? response.json() : response.blob();
  }
  function failure(err) {
    if (err instanceof ApiError && err.status === 404) {
      return el("p", { class: "error", role: "alert", text: "Not found: " + err.message });
    }
    return el("p", { class: "error", role: "alert", text: String(err.message || err) });
  }

  // ---- Server-Sent Events over fetch (EventSource cannot send the Authorization header) ----
  function follow(path, onEvent, onEnd) {
    const controller = new AbortController();
    let lastId = 0;
    let stopped = false;
    async function connect() {
      const headers = Object.assign({ Accept: "text/event-stream" }, authHeaders());
      if (lastId) headers["Last-Event-ID"] = String(lastId);
      const response = await fetch(path, { headers, signal: controller.signal });
      if (!response.ok) {
        const body = await response.json().catch(() => null);
        throw new ApiError(response.status, body);
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let name = "message";
          const data = [];
          for (const line of block.split("\n")) {
            if (!line || line.startsWith(":")) continue; // heartbeat comments
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "event") name = val;
            else if (field === "data") data.push(val);
            else if (field === "id" && /^\d+$/.test(val)) lastId = Number(val);
          }
          if (data.length) onEvent(name, JSON.parse(data.join("\n")));
        }
      }
    }
    (async function loop() {
      let delay = 500;
      while (!stopped) {
        try {
          await connect();
          if (onEnd()) return; // the stream ends after a final status
        } catch (err) {
          if (stopped) return;
          if (err instanceof ApiError && err.status < 500 && err.status !== 429) {
            onEnd(err);
            return;
          }
        }
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 10000);
      }
    })();
    return () => {
      stopped = true;
      controller.abort();
    };
  }

  // ---- Key prompt ---------------------------------------------------------------------------
  function keyPrompt() {
    const input = el("input", {
      id: "api-key", type: "password", autocomplete: "off", required: true,
    });
    const form = el(
      "form",
      {
        onsubmit: (event) => {
          event.preventDefault();
          sessionStorage.setItem(KEY, input.value);
          refused = false;
          route();
        },
      },
      el("label", { for: "api-key", text: "API key" }),
      input,
      el("button", { type: "submit", text: "Use this key" }),
    );
    show(
      el("h1", { text: "API key" }),
      el("p", { text: "This service needs an API key. It is kept in this tab only." }),
      refused ? el("p", { class: "error", role: "alert", text: "That key was refused." }) : null,
      form,
    );
    input.focus();
  }

  // ---- Jobs list ----------------------------------------------------------------------------
  function jobsPage(params) {
    const cursor = params.get("cursor");
    const status = params.get("status") || "";
    const select = el("select", { id: "status-filter" }, el("option", { value: "", text: "any" }));
    for (const s of STATUSES) select.append(el("option", { value: s, text: s }));
    select.value = status;
    select.addEventListener("change", () => {
      const next = new URLSearchParams(params);
      if (select.value) next.set("status", select.value);
      else next.delete("status");
      location.hash = "#/jobs?" + next.toString();
    });
    const body = el("tbody");
    const note = el("p", { class: "notice", role: "status" });
    const pager = el("div", { class: "toolbar" });
    show(
      el("h1", { text: "Jobs" }),
      el(
        "div", { class: "toolbar" },
        el("label", { for: "status-filter", text: "Status" }), select,
        el("button", { type: "button", text: "Refresh", onclick: () => load() }),
      ),
      el(
        "div", { class: "table-wrap" },
        el(
          "table", { id: "jobs" },
          el("caption", { class: "notice", text: "Newest first" }),
          el(
            "thead", null,
            el(
              "tr", null,
              el("th", { scope: "col", text: "Job" }),
              el("th", { scope: "col", text: "Name" }),
              el("th", { scope: "col", class: "hide-narrow", text: "Tags" }),
              el("th", { scope: "col", text: "Status" }),
              el("th", { scope: "col", text: "Progress" }),
              el("th", { scope: "col", text: "Final loss" }),
              el("th", { scope: "col", class: "hide-narrow", text: "Created" }),
            ),
          ),
          body,
        ),
      ),
      note,
      pager,
    );
    async function load(auto) {
      if (auto === true && document.hidden) return; // no polling from a tab nobody looks at
      const query = new URLSearchParams({ limit: "20" });
      if (cursor) query.set("cursor", cursor);
      if (status) query.set("status", status); // filtered by the server, across pages
      let page;
      try {
        page = await api("/v1/jobs?" + query.toString());
      } catch (err) {
        note.replaceChildren(failure(err));
        return;
      }
      const jobs = page.jobs;
      body.replaceChildren(...jobs.map(jobRow));
      note.textContent = jobs.length ? "" : "No jobs on this page" + (status ? " with that status." : ".");
      pager.replaceChildren();
      if (cursor) pager.append(el("a", { href: "#/jobs" + (status ? "?status=" + status : ""), text: "Newest" }));
      if (page.next_cursor) {
        const next = new URLSearchParams({ cursor: page.next_cursor });
        if (status) next.set("status", status);
        pager.append(el("a", { href: "#/jobs?" + next.toString(), text: "Older" }));
      }
    }
    load();
    const timer = setInterval(() => load(true), 2000);
    cleanup.push(() => clearInterval(timer));
  }
  function jobRow(job) {
    const p = job.progress || {};
    const bar = el("progress", {
      max: p.epochs || 1, value: job.status === "finished" ? p.epochs || 1 : p.epoch || 0,
      "aria-label": "epoch " + (p.epoch || 0) + " of " + (p.epochs || "?"),
    });
    return el(
      "tr", { "data-job": job.id },
      el("td", { class: "job" }, el("a", { href: "#/jobs/" + job.id, title: job.id, text: job.id })),
      el("td", { class: "name", text: job.name || "" }),
      el("td", { class: "tags hide-narrow", text: (job.tags || []).join(", ") }),
      el("td", { class: "status", text: job.status }),
      el("td", null, bar),
      el("td", { class: "num", text: fmtNum(p.loss) }),
      el("td", { class: "hide-narrow", text: fmtTime(job.created_at) }),
    );
  }

  // ---- Job page -----------------------------------------------------------------------------
  function jobPage(jobId) {
    const statusEl = el("dd", { id: "job-status", role: "status", text: "…" });
    const nameEl = el("dd", { id: "job-name", text: "—" });
    const tagsEl = el("dd", { id: "job-tags", text: "—" });
    const specEl = el("pre", { id: "job-spec", class: "spec", text: "…" });
    const created = el("dd", { text: "—" });
    const started = el("dd", { text: "—" });
    const ended = el("dd", { text: "—" });
    const attempts = el("dd", { text: "—" });
    const progressText = el("dd", { text: "—" });
    const bar = el("progress", { max: 1, value: 0, "aria-label": "training progress" });
    const errorEl = el("p", { id: "job-error", class: "error", role: "alert" });
    const modelLink = el("p");
    const message = el("p", { role: "status" });
    const cancel = el("button", { type: "button", id: "cancel", text: "Cancel job" });
    const chartBox = el("div", { id: "chart", class: "chart", "data-points": "0" });
    show(
      el("h1", null, "Job ", el("code", { text: jobId })),
      el("p", null, el("a", { href: "#/jobs", text: "← all jobs" })),
      el(
        "dl", null,
        el("dt", { text: "Name" }), nameEl,
        el("dt", { text: "Tags" }), tagsEl,
        el("dt", { text: "Status" }), statusEl,
        el("dt", { text: "Progress" }), el("dd", null, bar, " ", progressText),
        el("dt", { text: "Created" }), created,
        el("dt", { text: "Started" }), started,
        el("dt", { text: "Ended" }), ended,
        el("dt", { text: "Attempts" }), attempts,
      ),
      errorEl,
      el("div", { class: "toolbar" }, cancel, message),
      modelLink,
      el("h2", { text: "Curves" }),
      chartBox,
      el("h2", { text: "Spec as submitted" }),
      el("p", { class: "notice", text: "Normalised, without the data and initial weights." }),
      specEl,
    );
    const chart = makeChart(chartBox);
    cleanup.push(() => chart.destroy());
    let record = null;

    function render(job) {
      record = job;
      nameEl.textContent = job.name || "—";
      tagsEl.textContent = (job.tags || []).join(", ") || "—";
      statusEl.textContent = job.status;
      created.textContent = fmtTime(job.created_at);
      started.textContent = fmtTime(job.started_at);
      ended.textContent = fmtTime(job.ended_at);
      attempts.textContent = String(job.attempts ?? "—");
      renderError(job.error);
      renderModel(job.model_id);
      cancel.disabled = FINAL.includes(job.status);
      if (job.progress) renderProgress(job.progress, job.status);
    }
    function renderError(error) {
      errorEl.textContent = error ? (error.code ? error.code + ": " : "") + (error.message || "") : "";
    }
    function renderModel(modelId) {
      modelLink.replaceChildren();
      if (modelId) modelLink.append(el("a", { href: "#/models/" + modelId, text: "Model, spec and predictions" }));
    }
    function renderProgress(p, status) {
      bar.max = p.epochs || 1;
      bar.value = status === "finished" ? p.epochs || 1 : p.epoch || 0;
      let text = "epoch " + (p.epoch ?? 0) + " of " + (p.epochs ?? "?");
      if (typeof p.loss === "number") text += ", loss " + p.loss;
      if (typeof p.eta_seconds === "number" && !FINAL.includes(status)) text += ", about " + Math.ceil(p.eta_seconds) + " s left";
      progressText.textContent = text;
    }
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try {
        const job = await api("/v1/jobs/" + jobId, { method: "DELETE" });
        message.textContent = "Cancel requested.";
        render(job);
      } catch (err) {
        message.replaceChildren(failure(err));
        cancel.disabled = false;
      }
    });

    async function loadHistory() {
      let offset = 0;
      for (;;) {
        const page = await api("/v1/jobs/" + jobId + "/history?offset=" + offset);
        chart.add(page);
        const n = (page.epoch || []).length;
        if (!n) return;
        offset += n;
        if (n < 10000) return;
      }
    }
    (async function start() {
      try {
        render(await api("/v1/jobs/" + jobId));
      } catch (err) {
        show(el("h1", null, "Job ", el("code", { text: jobId })), failure(err));
        return;
      }
      // Once the job is known to be there: a job that is not has one "not found", not two.
      // Written as text: a spec, a name or a tag is never parsed as HTML.
      api("/v1/jobs/" + jobId + "/spec")
        .then((spec) => { specEl.textContent = JSON.stringify(spec, null, 2); })
        .catch((err) => specEl.replaceChildren(failure(err)));
      if (FINAL.includes(record.status)) {
        await loadHistory().catch((err) => message.replaceChildren(failure(err)));
        return;
      }
      const stop = follow(
        "/v1/jobs/" + jobId + "/events",
        (name, data) => {
          if (name === "history") chart.add(data);
          else if (name === "progress") renderProgress(data, record.status);
          else if (name === "status") {
            record.status = data.status;
            statusEl.textContent = data.status;
            renderError(data.error);
            renderModel(data.model_id);
            cancel.disabled = FINAL.includes(data.status);
          }
        },
        (err) => {
          if (err) {
            message.replaceChildren(failure(err));
            return true;
          }
          if (!FINAL.includes(record.status)) return false; // cut off: reconnect
          api("/v1/jobs/" + jobId).then(render).catch(() => {});
          return true;
        },
      );
      cleanup.push(stop);
    })();
  }

  // A uPlot chart of every history column against epoch, rebuilt when a new column appears.
  function makeChart(box) {
    const COLORS = ["#1565c0", "#e65100", "#2e7d32", "#6a1b9a", "#c62828", "#00838f", "#5d4037"];
    let columns = {};
    let names = [];
    let plot = null;
    let pending = false;
    function width() {
      return Math.max(260, box.clientWidth || 600);
    }
    function build() {
      if (plot) plot.destroy();
      const series = [{ label: "epoch" }].concat(
        names.map((name, i) => ({ label: name, stroke: COLORS[i % COLORS.length], width: 2 })),
      );
      plot = new uPlot(
        { width: width(), height: 300, scales: { x: { time: false } }, series, axes: [{ label: "epoch" }, {}] },
        data(),
        box,
      );
    }
    function data() {
      return [columns.epoch || []].concat(names.map((n) => columns[n] || []));
    }
    function redraw() {
      pending = false;
      box.dataset.points = String((columns.epoch || []).length);
      if (plot) plot.setData(data());
    }
    const onResize = () => plot && plot.setSize({ width: width(), height: 300 });
    window.addEventListener("resize", onResize);
    return {
      add(page) {
        const epochs = page.epoch || [];
        if (!epochs.length) return;
        const fresh = Object.keys(page).filter((k) => k !== "epoch" && !names.includes(k));
        const before = (columns.epoch || []).length;
        for (const key of ["epoch", ...names, ...fresh]) {
          const col = columns[key] || (columns[key] = new Array(before).fill(null));
          const values = page[key] || new Array(epochs.length).fill(null);
          for (const v of values) col.push(v);
        }
        if (fresh.length || !plot) {
          names = names.concat(fresh);
          build();
        }
        if (!pending) {
          pending = true;
          requestAnimationFrame(redraw);
        }
      },
      destroy() {
        window.removeEventListener("resize", onResize);
        if (plot) plot.destroy();
      },
    };
  }

  // ---- Model page ---------------------------------------------------------------------------
  async function modelPage(modelId) {
    const heading = el("h1", null, "Model ", el("code", { text: modelId }));
    let model;
    try {
      model = await api("/v1/models/" + modelId);
    } catch (err) {
      show(heading, failure(err));
      return;
    }
    const facts = el("dl", { id: "model-facts" });
    const add = (k, v) => facts.append(el("dt", { text: k }), el("dd", { text: v }));
    add("Inputs", fmtNum(model.n_inputs));
    add("Outputs", fmtNum(model.n_outputs));
    add("Parameters", fmtNum(model.n_params));
    add("Final loss", fmtNum(model.final_loss));
    add("Epochs run", fmtNum(model.epochs_run));
    for (const [name, value] of Object.entries(model.final_metrics || {})) add(name, fmtNum(value));
    if (model.classes) add("Classes", model.classes.map(String).join(", "));
    add("Created", fmtTime(model.created_at));

    const downloads = el(
      "div", { class: "toolbar" },
      el("button", { type: "button", text: "Download weights (.npz)", onclick: () => download("/v1/models/" + modelId + "/weights?format=npz", modelId + ".npz") }),
      el("button", { type: "button", text: "Download ONNX", onclick: () => download("/v1/models/" + modelId + "/onnx", modelId + ".onnx") }),
    );
    const rows = el("textarea", { id: "predict-rows", spellcheck: "false" });
    const file = el("input", { id: "predict-file", type: "file", accept: ".csv,text/csv" });
    const result = el("div", { id: "predict-result", "aria-live": "polite" });
    file.addEventListener("change", async () => {
      if (file.files.length) rows.value = await file.files[0].text();
    });
    const form = el(
      "form",
      {
        id: "predict-form",
        onsubmit: async (event) => {
          event.preventDefault();
          result.replaceChildren();
          let inputs;
          try {
            inputs = parseRows(rows.value);
          } catch (err) {
            result.append(el("p", { class: "error", role: "alert", text: err.message }));
            return;
          }
          try {
            const answer = await api("/v1/models/" + modelId + "/predict", {
              method: "POST",
              headers: { "Content-Type": "application/json" },
              body: JSON.stringify({ inputs }),
            });
            result.append(predictionTable(answer));
          } catch (err) {
            result.append(failure(err));
          }
        },
      },
      el("label", { for: "predict-rows", text: "Rows: JSON ([[0, 1], [1, 0]]) or CSV, one row a line (a header line is skipped)" }),
      rows,
      el("label", { for: "predict-file", text: "…or a small CSV file" }),
      file,
      el("button", { type: "submit", text: "Predict" }),
    );
    show(
      heading,
      el("p", null, el("a", { href: "#/jobs/" + (model.job_id || modelId), text: "← its job" })),
      facts,
      downloads,
      el("h2", { text: "Spec" }),
      el("pre", { id: "model-spec", text: JSON.stringify(model.spec, null, 2) }),
      el("h2", { text: "Predict" }),
      form,
      result,
    );
  }
  function parseRows(text) {
    const trimmed = text.trim();
    if (!trimmed) throw new Error("Give at least one row.");
    if (trimmed.startsWith("[")) return JSON.parse(trimmed);
    const lines = trimmed.split(/\r?\n/).filter((line) => line.trim());
    const cells = lines.map((line) => line.split(",").map((c) => c.trim()));
    if (cells.length && cells[0].some((c) => c === "" || isNaN(Number(c)))) cells.shift(); // header
    return cells.map((row, i) =>
      row.map((c, j) => {
        const x = Number(c);
        if (c === "" || !Number.isFinite(x)) throw new Error("Row " + (i + 1) + ", column " + (j + 1) + " is not a number.");
        return x;
      }),
    );
  }
  function predictionTable(answer) {
    const outputs = answer.outputs || [];
    const width = outputs.length ? outputs[0].length : 0;
    const head = el("tr", null, el("th", { scope: "col", text: "row" }));
    for (let j = 0; j < width; j++) head.append(el("th", { scope: "col", text: "output " + j }));
    if (answer.labels) head.append(el("th", { scope: "col", text: "label" }));
    const body = el("tbody");
    outputs.forEach((row, i) => {
      const tr = el("tr", null, el("th", { scope: "row", text: String(i) }));
      for (const v of row) tr.append(el("td", { class: "num output", text: v === null ? "null" : String(v) }));
      if (answer.labels) tr.append(el("td", { class: "label", text: String(answer.labels[i]) }));
      body.append(tr);
    });
    return el("div", { class: "table-wrap" }, el("table", { id: "predictions" }, el("thead", null, head), body));
  }
  async function download(path, filename) {
    const blob = await api(path);
    const url = URL.createObjectURL(blob);
    const a = el("a", { href: url, download: filename });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  // ---- Datasets page ------------------------------------------------------------------------
  function datasetsPage() {
    const file = el("input", { id: "dataset-file", type: "file", accept: ".csv,.npy,.npz", required: true });
    const target = el("input", { id: "dataset-target", type: "text", placeholder: "y  (or y1,y2; for .npy: column indices)" });
    const dtype = el("select", { id: "dataset-dtype" }, el("option", { text: "float64" }), el("option", { text: "float32" }));
    const bar = el("progress", { id: "upload-progress", max: 1, value: 0, "aria-label": "upload progress", hidden: true });
    const result = el("div", { id: "dataset-result", "aria-live": "polite" });
    const lookup = el("input", { id: "dataset-id", type: "text", pattern: "[0-9a-f]{32}" });
    const form = el(
      "form", { id: "dataset-form", onsubmit: (event) => { event.preventDefault(); upload(); } },
      el("label", { for: "dataset-file", text: "File (CSV with a header row, .npy or .npz)" }), file,
      el("label", { for: "dataset-target", text: "Target column(s) (CSV and .npy)" }), target,
      el("label", { for: "dataset-dtype", text: "Stored as" }), dtype,
      el("button", { type: "submit", text: "Upload" }), bar,
    );
    const lookupForm = el(
      "form", { onsubmit: async (event) => {
        event.preventDefault();
        result.replaceChildren();
        try {
          result.append(datasetFacts(await api("/v1/datasets/" + encodeURIComponent(lookup.value.trim()))));
        } catch (err) {
          result.append(failure(err));
        }
      } },
      el("label", { for: "dataset-id", text: "Show a dataset by id" }), lookup,
      el("button", { type: "submit", text: "Show" }),
    );
    show(el("h1", { text: "Datasets" }), form, lookupForm, result);

    function upload() {
      const f = file.files[0];
      if (!f) return;
      const query = new URLSearchParams({ dtype: dtype.value });
      for (const t of target.value.split(",").map((s) => s.trim()).filter(Boolean)) query.append("target", t);
      const isCsv = /\.csv$/i.test(f.name) || f.type === "text/csv";
      // XMLHttpRequest, not fetch: only it reports upload progress.
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/v1/datasets?" + query.toString());
      xhr.setRequestHeader("Content-Type", isCsv ? "text/csv" : "application/octet-stream");
      for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
      xhr.responseType = "json";
      bar.hidden = false;
      bar.removeAttribute("value"); // indeterminate until the first progress event
      result.replaceChildren(el("p", { role: "status", text: "Uploading " + f.name + "…" }));
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) {
          bar.max = event.total;
          bar.value = event.loaded;
        }
      });
      xhr.addEventListener("load", () => {
        bar.hidden = true;
        result.replaceChildren();
        if (xhr.status === 200 || xhr.status === 201) result.append(datasetFacts(xhr.response));
        else result.append(failure(new ApiError(xhr.status, xhr.response)));
      });
      xhr.addEventListener("error", () => {
        bar.hidden = true;
        result.replaceChildren(el("p", { class: "error", role: "alert", text: "The upload failed (network error)." }));
      });
      xhr.send(f);
    }
  }
  function datasetFacts(d) {
    const facts = el("dl", { id: "dataset-facts" });
    const add = (k, v) => facts.append(el("dt", { text: k }), el("dd", { "data-field": k, text: v }));
    add("id", d.id);
    add("rows", fmtNum(d.rows));
    add("columns", fmtNum(d.columns));
    add("outputs", fmtNum(d.outputs));
    add("dtype", String(d.dtype));
    add("sha256", String(d.sha256));
    add("created", fmtTime(d.created_at));
    return facts;
  }

  // ---- Routing by the URL's fragment --------------------------------------------------------
  function route() {
    for (const stop of cleanup) stop();
    cleanup = [];
    const forget = document.getElementById("forget-key");
    forget.hidden = !(config.auth && sessionStorage.getItem(KEY));
    if (config.auth && !sessionStorage.getItem(KEY)) return keyPrompt();
    const hash = location.hash.replace(/^#/, "") || "/jobs";
    const [path, query] = hash.split("?");
    const params = new URLSearchParams(query || "");
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    if (parts[0] === "jobs" && parts[1]) jobPage(parts[1]);
    else if (parts[0] === "models" && parts[1]) modelPage(parts[1]);
    else if (parts[0] === "datasets") datasetsPage();
    else jobsPage(params);
    main.focus();
  }

  document.getElementById("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    route();
  });
  window.addEventListener("hashchange", route);
  fetch("/dashboard/config.json")
    .then((r) => r.json())
    .then((c) => { config = c; })
    .catch(() => {})
    .finally(route);
})();
