/* Models: versions with the gate's decisions, metrics and pictures, alias history, rollback.
   Training owns every rule (gate, history, rollback target); this page only shows and asks. */
"use strict";

(() => {
  const { el, api, banner, when } = chimp;
  const PICTURE = /\.(png|jpe?g|svg|gif)$/i;
  const DEFAULT_PICTURES = ["confusion_matrix.png", "training_curves.png"];
  const PER_CLASS = /^(f1|precision|recall|support)_/;

  function listOf(body, key) {
    return Array.isArray(body) ? body : (body && body[key]) || [];
  }

  const enc = encodeURIComponent;
  const num = (x) => (typeof x === "number" ? x.toFixed(3) : "–");

  function pill(alias) {
    const kind = alias === "production" || alias === "staging" ? alias : alias.startsWith("user-") ? "user" : "";
    return el("span", { class: "pill " + kind }, alias);
  }

  /** Pictures stored with a version (confusion matrix, curves), in a box filled once listed. */
  function pictures(model, v) {
    const box = el("div", { class: "pictures" });
    const base = `models/${encodeURIComponent(model)}/versions/${encodeURIComponent(v.version)}/artifacts`;
    api(base).then((files) => {
      const paths = listOf(files, "artifacts").map((a) => (typeof a === "string" ? a : a.path))
        .filter((p) => PICTURE.test(p));
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

  /** The evaluation gate's decision on a version: verdict, reason, both models' metrics. */
  function decisionBox(d) {
    if (!d) return null;
    const rows = Object.values(d.metrics || {}).map((m) => el("tr", {},
      el("td", {}, m.metric), el("td", {}, num(m.candidate)), el("td", {}, num(m.baseline))));
    const data = d.evaluation
      ? `on ${d.evaluation.name} (${d.evaluation.images} images, ${d.evaluation.content_hash.slice(0, 12)})`
      : "no evaluation data";
    return el("div", { class: "decision " + d.verdict, dataset: { verdict: d.verdict } },
      el("div", {}, el("span", { class: "pill verdict " + d.verdict }, d.verdict), " ",
        el("span", { class: "reason" }, d.reason)),
      rows.length ? el("table", { class: "table" },
        el("thead", {}, el("tr", {}, el("th", {}, "metric"), el("th", {}, `this version`),
          el("th", {}, d.baseline_version ? `production (v${d.baseline_version})` : "production"))),
        el("tbody", {}, rows)) : null,
      el("div", { class: "muted" }, data));
  }

  /** Forcing a version into production skips the gate; a personal one needs a yes first. */
  async function forceProduction(model, v) {
    if (v.user_id && !window.confirm(
      `Version ${v.version} is ${v.user_id}'s personal model, trained on one person's face. ` +
      "Force it into production for everyone, past the evaluation gate?")) {
      return "Nothing changed.";
    }
    await api(`models/${enc(model)}/aliases/production`, {
      method: "POST",
      json: { version: v.version, reason: v.user_id ? `personal version of ${v.user_id} forced after confirmation` : undefined },
    });
    return `Version ${v.version} is now in production (forced past the gate).`;
  }

  function versionRow(model, v) {
    const aliases = v.aliases || [];
    const meta = v.metadata || {};
    const metrics = Object.entries(v.metrics || {}).sort();
    const inProduction = aliases.includes("production");
    const promote = el("button", {
      class: v.user_id ? "" : "primary", disabled: inProduction,
      title: "Forced promotion: skips the evaluation gate and is recorded as forced, with your name.",
      dataset: { action: "promote", version: v.version },
      onclick: () => act(() => forceProduction(model, v)),
    }, inProduction ? "In production" : v.user_id ? "Force personal version into production…" : "Promote to production");
    return el("div", { class: "version " + (v.user_id ? "personal" : "shared"), dataset: { version: v.version, kind: v.user_id ? "personal" : "shared" } },
      el("div", {},
        el("h3", {}, `v${v.version} `, aliases.map(pill)),
        el("div", { class: "muted kind" }, v.user_id ? `personal model of ${v.user_id}` : "shared model"),
        el("div", { class: "muted" }, when(v.created_at)),
        meta.dataset ? el("div", { class: "muted" }, "dataset: ", meta.dataset) : null,
        meta.plugin ? el("div", { class: "muted" }, "plugin: ", meta.plugin) : null,
        el("div", { class: "actions" }, promote)),
      el("div", { class: "metrics" },
        decisionBox(v.decision),
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
      versions = listOf(await api(`models/${encodeURIComponent(m.name)}/versions`), "versions");
    } catch (err) {
      return el("section", { class: "card model" }, el("h2", {}, m.name), el("p", { class: "error" }, err.message));
    }
    versions.sort((a, b) => Number(b.version) - Number(a.version));
    const aliases = Object.entries(m.aliases || {}).sort();
    const servedHere = served && served.find((s) => s.name === m.name);
    const rollback = el("button", {
      dataset: { action: "rollback" },
      title: "Production goes back to the previous champion in the history.",
      onclick: () => act(async () => {
        const r = await api(`models/${enc(m.name)}/rollback`, { method: "POST" });
        return `Rolled back production: v${r.previous} → v${r.version}`;
      }),
    }, "Roll back production");
    const [history, policy] = await Promise.all([
      api(`models/${enc(m.name)}/history?limit=30`).catch(() => null),
      api(`models/${enc(m.name)}/policy`).catch(() => null),
    ]);
    return el("section", { class: "card model", dataset: { model: m.name } },
      el("h2", {}, m.name),
      el("div", { class: "aliases" },
        aliases.length ? aliases.map(([a, v]) => el("span", { dataset: { alias: a, version: v } }, pill(a), ` → v${v}`))
          : el("span", { class: "muted" }, "no aliases yet"),
        rollback),
      policy ? el("p", { class: "muted policy" }, "Gate: ", policy.summary) : null,
      servedHere ? el("p", { class: "muted" }, "serving: ", JSON.stringify(servedHere.aliases || servedHere.loaded || {})) : null,
      timeline(history),
      versions.length ? versions.map((v) => versionRow(m.name, v)) : el("p", { class: "muted" }, "no versions"));
  }

  /** The alias history, newest first: who moved what, from where to where, and why. */
  function timeline(history) {
    const entries = (history && history.entries) || [];
    if (!entries.length) return null;
    const more = history.total > entries.length ? el("li", { class: "muted" }, `… ${history.total - entries.length} older moves`) : null;
    return el("details", { class: "history", open: true },
      el("summary", {}, `History (${history.total} moves)`),
      el("ol", { class: "timeline" },
        entries.map((e) => el("li", { dataset: { kind: e.kind, moved: e.alias } },
          el("span", { class: "muted" }, when(e.at)), " ", pill(e.alias), " ",
          `${e.from_version ? "v" + e.from_version : "–"} → ${e.to_version ? "v" + e.to_version : "removed"} `,
          el("span", { class: "pill kind " + e.kind }, e.kind), " ",
          el("span", { class: "muted" }, `by ${e.actor}: `), e.reason)),
        more));
  }

  async function load() {
    const box = document.getElementById("models");
    let models;
    try {
      models = listOf(await api("models"), "models");
    } catch (err) {
      banner(err.message, "bad");
      return;
    }
    let served = null;
    try { served = listOf(await api("serving/models"), "models"); } catch (_) { served = null; }
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
