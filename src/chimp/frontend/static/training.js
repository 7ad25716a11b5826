/* Training & data: dataset upload with progress, plugin runs from their schema, task progress. */
"use strict";

(() => {
  const { el, api, banner, pct, bytes, when } = chimp;
  const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
  let plugins = [];
  let datasets = [];
  let readArguments = () => ({});

  /** The JSON Schema of a plugin's arguments, whatever the key it came under. */
  function schemaOf(plugin) {
    const given = plugin.argument_schema || plugin.arguments_schema;
    if (given) return given;
    const types = { str: "string", int: "integer", float: "number", bool: "boolean" };
    const properties = {};
    const required = [];
    for (const a of plugin.arguments || []) {
      properties[a.name] = { type: types[a.type] || "string", description: a.description, default: a.default ?? undefined };
      if (a.choices) properties[a.name].enum = a.choices;
      if (!a.optional) required.push(a.name);
    }
    return { properties, required };
  }

  function listOf(body, key) {
    return Array.isArray(body) ? body : (body && body[key]) || [];
  }

  async function loadDatasets() {
    try {
      datasets = listOf(await api("datasets"), "datasets");
    } catch (err) {
      banner(err.message, "bad");
      return;
    }
    const tbody = document.querySelector("#datasets tbody");
    tbody.replaceChildren(...datasets.map((d) => el("tr", { dataset: { name: d.name } },
      el("td", {}, d.name), el("td", {}, d.files), el("td", {}, bytes(d.size_bytes || 0)),
      el("td", {}, when(d.created_at)))));
    if (!datasets.length) tbody.replaceChildren(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No datasets yet.")));
    renderRunForm();
  }

  function renderRunForm() {
    const plugin = plugins.find((p) => p.name === document.getElementById("plugin").value);
    const form = document.getElementById("run-form");
    if (!plugin) { form.replaceChildren(); return; }
    document.getElementById("plugin-description").textContent = plugin.description || "";
    const argsBox = el("fieldset", {}, el("legend", {}, "Arguments"));
    const argsForm = el("div");
    argsBox.append(argsForm);
    readArguments = chimpSchemaForm.render(argsForm, schemaOf(plugin));
    const dsBox = el("fieldset", {}, el("legend", {}, "Datasets"),
      (plugin.datasets || []).map((d) => el("label", {}, d.name,
        d.description ? el("span", { class: "muted" }, " — " + d.description) : null,
        el("select", { name: d.name, class: "dataset-select", dataset: { optional: d.optional ? "1" : "" } },
          d.optional ? el("option", { value: "" }, "(none)") : null,
          datasets.map((x) => el("option", { value: x.name }, x.name))))));
    const rule = el("p", { class: "muted", id: "promote-rule" }, "");
    const box = el("input", { type: "checkbox", id: "promote", checked: true, onchange: () => explainGate(rule) });
    const promote = el("label", { class: "check" }, box,
      "Promote to production if it passes the evaluation gate");
    form.replaceChildren(argsBox, dsBox, promote, rule, el("button", { class: "primary", id: "run-button" }, "Run"));
    explainGate(rule);
  }

  /** Say exactly what will happen to the new version (the training service's policy). */
  async function explainGate(rule) {
    if (!document.getElementById("promote").checked) {
      rule.textContent = "The new version goes to staging with the gate's verdict; production does not move.";
      return;
    }
    try {
      const { model_name: model } = await chimp.session();
      const policy = await api(`models/${encodeURIComponent(model)}/policy`);
      rule.textContent = policy.summary;
    } catch (_) {
      rule.textContent = "The new version is evaluated against production and promoted only if it is better.";
    }
  }

  async function runPlugin(event) {
    event.preventDefault();
    const plugin = document.getElementById("plugin").value;
    const chosen = {};
    for (const select of document.querySelectorAll(".dataset-select")) if (select.value) chosen[select.name] = select.value;
    const status = document.getElementById("run-status");
    try {
      const task = await api(`tasks/run/${encodeURIComponent(plugin)}`, {
        method: "POST",
        json: { arguments: readArguments(), datasets: chosen, promote: document.getElementById("promote").checked },
      });
      status.textContent = `Started task ${task.task_id}.`;
      status.className = "muted";
      loadTasks();
    } catch (err) {
      status.textContent = err.message;
      status.className = "error";
    }
  }

  async function cancel(taskId) {
    try {
      await api(`tasks/${encodeURIComponent(taskId)}/cancel`, { method: "POST" });
    } catch (err) {
      banner(err.message, "bad");
    }
    loadTasks();
  }

  async function loadTasks() {
    let tasks;
    try {
      tasks = listOf(await api("tasks"), "tasks");
      if (document.body.dataset.trainingDown) { banner(null); delete document.body.dataset.trainingDown; }
    } catch (err) {
      document.body.dataset.trainingDown = "1";
      banner(err.message, "bad");
      return;
    }
    tasks.sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
    const tbody = document.querySelector("#tasks tbody");
    tbody.replaceChildren(...tasks.map((t) => el("tr", { dataset: { task: t.task_id, status: t.status } },
      el("td", {}, el("code", {}, t.task_id.slice(0, 8))),
      el("td", {}, t.plugin, t.user_id ? el("span", { class: "pill user" }, "calibration") : null),
      el("td", {}, el("span", { class: "pill " + t.status }, t.status)),
      el("td", {}, el("progress", { max: 1, value: t.progress || 0 }), " ", pct(t.progress || 0)),
      el("td", { class: t.status === "failed" ? "error" : "" }, t.error || t.message || ""),
      el("td", {}, when(t.started_at || t.created_at)),
      el("td", {}, FINISHED.has(t.status) ? null
        : el("button", { class: "danger", onclick: () => cancel(t.task_id) }, "Cancel")))));
    if (!tasks.length) tbody.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No tasks yet.")));
  }

  async function uploadDataset(event) {
    event.preventDefault();
    const file = document.getElementById("dataset-file").files[0];
    const name = document.getElementById("dataset-name").value.trim();
    const bar = document.getElementById("upload-progress");
    const status = document.getElementById("upload-status");
    if (!file || !name) return;
    const form = new FormData();
    form.append("dataset_name", name);
    form.append("file", file);
    bar.classList.remove("hidden");
    bar.value = 0;
    status.className = "muted";
    status.textContent = "Uploading…";
    document.getElementById("upload-button").disabled = true;
    try {
      const info = await chimp.upload("datasets", form, (p) => {
        bar.value = p;
        status.textContent = p < 1 ? `${Math.round(100 * p)}% uploaded` : "Unpacking on the server…";
      });
      status.textContent = `Dataset “${info.name}” stored: ${info.files} files.`;
      document.body.dataset.uploaded = info.name;
      await loadDatasets();
    } catch (err) {
      status.className = "error";
      status.textContent = "Upload failed: " + err.message;
    } finally {
      document.getElementById("upload-button").disabled = false;
    }
  }

  document.getElementById("dataset-file").addEventListener("change", (e) => {
    const nameInput = document.getElementById("dataset-name");
    const file = e.target.files[0];
    if (file && !nameInput.value) nameInput.value = file.name.replace(/\.zip$/i, "").replace(/[^A-Za-z0-9._-]/g, "-");
  });
  document.getElementById("upload-form").addEventListener("submit", uploadDataset);
  document.getElementById("run-form").addEventListener("submit", runPlugin);
  document.getElementById("plugin").addEventListener("change", renderRunForm);

  (async () => {
    try {
      plugins = listOf(await api("plugins"), "plugins");
    } catch (err) {
      banner(err.message, "bad");
    }
    const select = document.getElementById("plugin");
    select.replaceChildren(...plugins.map((p) => el("option", { value: p.name }, `${p.name} ${p.version || ""}`)));
    await loadDatasets();
    await loadTasks();
    setInterval(loadTasks, 1500);
  })();
})();
