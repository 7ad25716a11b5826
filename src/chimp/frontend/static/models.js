/* Models: versions with metrics and pictures, alias pointers, promote and roll back. */
"use strict";

(() => {
  const { el, api, banner, when } = chimp;
  const PICTURE = /\.(png|jpe?g|svg|gif)$/i;
  const DEFAULT_PICTURES = ["confusion_matrix.png", "training_curves.png"];
  const PER_CLASS = /^(f1|precision|recall|support)_/;

  function pill(alias) {
    const kind = alias === "production" || alias === "staging" ? alias : alias.startsWith("user-") ? "user" : "";
    return el("span", { class: "pill " + kind }, alias);
  }

  /** Pictures stored with a version (confusion matrix, curves), in a box filled once listed. */
  function pictures(model, v) {
    const box = el("div", { class: "pictures" });
    const base = `models/${encodeURIComponent(model)}/versions/${encodeURIComponent(v.version)}/artifacts`;
    api(base).then((files) => {
      const paths = files.map((a) => a.path).filter((p) => PICTURE.test(p));
      box.replaceChildren(...picturesOf(model, v, paths));
    }, () => box.replaceChildren(...picturesOf(model, v, DEFAULT_PICTURES)));
    return box;
  }

  function picturesOf(model, v, paths) {
    return paths.map((path) => el("figure", {},
      el("img", {
        src: chimp.url(`api/models/${encodeURIComponent(model)}/versions/${encodeURIComponent(v.version)}/artifacts/${path}`),
        alt: path, title: path,
        // Older versions may lack a picture: hide the gap instead of a broken image.
        onerror: (e) => e.target.closest("figure").remove(),
      })));
  }

  /** Run an action whose promise resolves to what to tell the user, then reload. */
  async function act(call) {
    try {
      banner(await call(), "info");
    } catch (err) {
      banner(err.message, "bad");
    }
    await load();
  }

  function metricsTable(rows, empty) {
    return el("table", { class: "table" }, el("tbody", {}, rows.length
      ? rows.map(([k, x]) => el("tr", {}, el("td", {}, k),
        el("td", {}, typeof x === "number" ? x.toFixed(4) : String(x))))
      : el("tr", {}, el("td", { class: "muted" }, empty))));
  }

  function versionRow(model, v) {
    const aliases = v.aliases || [];
    const meta = v.metadata || {};
    const metrics = Object.entries(v.metrics || {}).sort();
    const promote = el("button", {
      class: "primary", disabled: aliases.includes("production"), dataset: { action: "promote", version: v.version },
      onclick: () => act(async () => {
        await api(`models/${encodeURIComponent(model)}/aliases/production`, { method: "POST", json: { version: v.version } });
        return `Version ${v.version} is now in production.`;
      }),
    }, aliases.includes("production") ? "In production" : "Promote to production");
    return el("div", { class: "version", dataset: { version: v.version } },
      el("div", {},
        el("h3", {}, `v${v.version} `, aliases.map(pill)),
        el("div", { class: "muted" }, when(v.created_at)),
        meta.dataset ? el("div", { class: "muted" }, "dataset: ", meta.dataset) : null,
        meta.plugin ? el("div", { class: "muted" }, "plugin: ", meta.plugin) : null,
        el("div", { class: "actions" }, promote)),
      el("div", { class: "metrics" },
        metricsTable(metrics.filter(([k]) => !PER_CLASS.test(k)), "no metrics"),
        metrics.some(([k]) => PER_CLASS.test(k))
          ? el("details", {}, el("summary", {}, "per-class metrics"),
            metricsTable(metrics.filter(([k]) => PER_CLASS.test(k)), ""))
          : null),
      pictures(model, v));
  }

  async function renderModel(m, served) {
    let versions = [];
    try {
      versions = await api(`models/${encodeURIComponent(m.name)}/versions`);
    } catch (err) {
      return el("section", { class: "card model" }, el("h2", {}, m.name), el("p", { class: "error" }, err.message));
    }
    versions.sort((a, b) => Number(b.version) - Number(a.version));
    const aliases = Object.entries(m.aliases || {}).sort();
    const servedHere = served && served.find((s) => s.name === m.name);
    const rollback = el("button", {
      dataset: { action: "rollback" },
      onclick: () => act(async () => {
        const r = await api(`models/${encodeURIComponent(m.name)}/rollback`, { method: "POST" });
        return `Rolled back production: v${r.previous} → v${r.version}`;
      }),
    }, "Roll back production");
    return el("section", { class: "card model", dataset: { model: m.name } },
      el("h2", {}, m.name),
      el("div", { class: "aliases" },
        aliases.length ? aliases.map(([a, v]) => el("span", { dataset: { alias: a, version: v } }, pill(a), ` → v${v}`))
          : el("span", { class: "muted" }, "no aliases yet"),
        rollback),
      servedHere ? el("p", { class: "muted" }, "serving: ", JSON.stringify(servedHere.aliases)) : null,
      versions.length ? versions.map((v) => versionRow(m.name, v)) : el("p", { class: "muted" }, "no versions"));
  }

  async function load() {
    const box = document.getElementById("models");
    let models;
    try {
      models = await api("models");
    } catch (err) {
      banner(err.message, "bad");
      return;
    }
    let served = null;
    try { served = (await api("serving/models")).models; } catch (_) { served = null; }
    if (!models.length) {
      box.replaceChildren(el("p", { class: "muted" }, "No models yet. ",
        el("a", { href: "training" }, "Train one"), " or ", el("a", { href: "calibrate" }, "calibrate"), "."));
      return;
    }
    box.replaceChildren(...(await Promise.all(models.map((m) => renderModel(m, served)))));
    document.body.dataset.loaded = String(Date.now());
  }

  load();
})();
