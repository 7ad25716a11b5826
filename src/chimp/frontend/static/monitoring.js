/* Models page, monitoring: what each served version predicts over time, and its drift status.
 *
 * Per model: stacked label shares per time bucket, mean confidence and prediction rate lines,
 * dashed markers where production moved, and a badge per version (ok / drift / not enough
 * data / no reference) whose tooltip gives the statistics. Drawn as plain SVG, no library. */
"use strict";

(() => {
  const { el, api, when } = chimp;
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#2f6fde", "#e4572e", "#17a398", "#f3a712", "#8e44ad", "#6b7385", "#c0392b",
    "#27ae60", "#d35400", "#16a085"];
  const PERIODS = [["1 hour", 3600], ["6 hours", 6 * 3600], ["24 hours", 86400], ["7 days", 7 * 86400]];
  const W = 760, H = 170, PAD = { left: 44, right: 52, top: 12, bottom: 24 };
  const REFRESH_MS = 30000;

  function svg(tag, attrs = {}, ...children) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, v);
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  const fmt = (x, digits = 3) => (x === null || x === undefined ? "–" : Number(x).toPrecision(digits));

  /** The statistics behind a version's status, for the badge's tooltip. */
  function statistics(v) {
    const lines = [`v${v.version}: ${v.status}`, `${v.count} predictions in the period`, v.reason];
    if (v.labels) {
      lines.push(v.labels.test === "chi-squared"
        ? `labels: chi-squared ${fmt(v.labels.statistic)}, p = ${fmt(v.labels.p_value)} (drift below ${v.labels.threshold})`
        : `labels: Jensen-Shannon distance ${fmt(v.labels.statistic)} (drift above ${v.labels.threshold})`);
    }
    if (v.confidence) {
      lines.push(`confidence: KS D = ${fmt(v.confidence.statistic)}, p = ${fmt(v.confidence.p_value)} (drift below ${v.confidence.threshold})`);
    }
    if (v.mean_confidence !== null) lines.push(`mean confidence ${fmt(v.mean_confidence)}`);
    if (v.reference) lines.push(`reference: ${v.reference.count} predictions on ${v.reference.split}`);
    return lines.filter(Boolean).join("\n");
  }

  function badge(v) {
    return el("span", {
      class: "drift-badge " + v.status.replaceAll(" ", "-"),
      title: statistics(v), tabindex: "0",
      dataset: { version: v.version, status: v.status },
    }, `v${v.version} · ${v.status}`);
  }

  /** x position of a time (ms) in a chart spanning [start, end). */
  function xScale(start, end) {
    const span = Math.max(1, end - start);
    return (t) => PAD.left + ((t - start) / span) * (W - PAD.left - PAD.right);
  }

  function markers(moves, x, start, end, withLabels) {
    return moves.filter((m) => {
      const t = Date.parse(m.at);
      return t >= start && t < end;
    }).map((m, i) => {
      const at = x(Date.parse(m.at));
      const text = `production: v${m.from_version ?? "–"} → v${m.to_version ?? "–"}`;
      const tip = [text, when(m.at), m.actor && `by ${m.actor}`, m.reason].filter(Boolean).join("\n");
      return svg("g", { class: "marker", "data-to": m.to_version ?? "" },
        svg("title", {}, tip),
        svg("line", { x1: at, x2: at, y1: PAD.top, y2: H - PAD.bottom, stroke: "#1d2330", "stroke-dasharray": "4 3" }),
        withLabels ? svg("text", { x: at + 3, y: PAD.top + 9 + (i % 3) * 11, "font-size": 10, fill: "#1d2330" }, `→ v${m.to_version ?? "?"}`) : null);
    });
  }

  function timeAxis(x, start, end) {
    const ticks = [];
    for (let i = 0; i <= 4; i += 1) {
      const t = start + ((end - start) * i) / 4;
      const d = new Date(t);
      const label = end - start > 86400000 ? d.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
        : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      ticks.push(svg("text", { x: x(t), y: H - 6, "font-size": 10, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle", fill: "#6b7385" }, label));
    }
    return ticks;
  }

  function frame() {
    return svg("rect", { x: PAD.left, y: PAD.top, width: W - PAD.left - PAD.right, height: H - PAD.top - PAD.bottom, fill: "#fafbfc", stroke: "#dde1e8" });
  }

  function sharesChart(report, moves, colors) {
    const start = Date.parse(report.start), end = Date.parse(report.end);
    const x = xScale(start, end);
    const y = (share) => PAD.top + (1 - share) * (H - PAD.top - PAD.bottom);
    const width = Math.max(1, x(start + report.window_s * 1000) - x(start) - 0.5);
    const bars = [];
    for (const point of report.series) {
      if (!point.count) continue;
      let below = 0;
      for (const label of report.labels) {
        const share = point.label_shares[label] || 0;
        if (!share) continue;
        const left = x(Date.parse(point.start));
        bars.push(svg("rect", {
          // The current bucket is still open: clip it at the end of the period.
          x: left, y: y(below + share), width: Math.max(1, Math.min(width, W - PAD.right - left)),
          height: y(below) - y(below + share),
          fill: colors[label], "data-label": label,
        }, svg("title", {}, `${when(point.start)}\n${label}: ${(100 * share).toFixed(1)}% of ${point.count}`)));
        below += share;
      }
    }
    return svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart shares", role: "img", "aria-label": "label shares over time" },
      frame(),
      [0, 0.5, 1].map((s) => svg("text", { x: PAD.left - 6, y: y(s) + 3, "font-size": 10, "text-anchor": "end", fill: "#6b7385" }, `${100 * s}%`)),
      bars, markers(moves, x, start, end, true), timeAxis(x, start, end));
  }

  function path(points) {
    // Gaps (buckets without predictions) break the line instead of bridging it.
    let d = "", pen = false;
    for (const [px, py] of points) {
      if (py === null) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)} `;
      pen = true;
    }
    return d.trim();
  }

  function linesChart(report, moves) {
    const start = Date.parse(report.start), end = Date.parse(report.end);
    const x = xScale(start, end);
    const inner = H - PAD.top - PAD.bottom;
    const perMinute = report.series.map((p) => (p.count * 60) / report.window_s);
    const top = Math.max(1, ...perMinute);
    const half = report.window_s * 500;
    const conf = report.series.map((p) => [x(Date.parse(p.start) + half), p.mean_confidence === null ? null : PAD.top + (1 - p.mean_confidence) * inner]);
    const rate = report.series.map((p, i) => [x(Date.parse(p.start) + half), PAD.top + (1 - perMinute[i] / top) * inner]);
    return svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart lines", role: "img", "aria-label": "mean confidence and prediction rate" },
      frame(),
      [0, 0.5, 1].map((s) => svg("text", { x: PAD.left - 6, y: PAD.top + (1 - s) * inner + 3, "font-size": 10, "text-anchor": "end", fill: "#2f6fde" }, s.toFixed(1))),
      [0, 1].map((s) => svg("text", { x: W - PAD.right + 6, y: PAD.top + (1 - s) * inner + 3, "font-size": 10, fill: "#e4572e" }, `${(s * top).toPrecision(3)}/min`)),
      svg("path", { d: path(rate), fill: "none", stroke: "#e4572e", "stroke-width": 1.5, class: "rate" }),
      svg("path", { d: path(conf), fill: "none", stroke: "#2f6fde", "stroke-width": 2, class: "confidence" }),
      // A dot per bucket too, so a bucket between two empty ones still shows.
      conf.filter(([, py]) => py !== null).map(([px, py]) => svg("circle", { cx: px, cy: py, r: 2, fill: "#2f6fde" })),
      markers(moves, x, start, end, false), timeAxis(x, start, end));
  }

  function legend(report, colors) {
    return el("div", { class: "legend" },
      report.labels.map((label) => el("span", {}, el("i", { style: `background:${colors[label]}` }), label)));
  }

  function render(card, name, view, periodS) {
    const report = view.monitoring;
    const colors = Object.fromEntries(report.labels.map((l, i) => [l, COLORS[i % COLORS.length]]));
    const recorded = report.series.reduce((n, p) => n + p.count, 0);
    const select = el("select", {
      "aria-label": "period",
      onchange: (e) => refresh(card, name, Number(e.target.value)),
    }, PERIODS.map(([text, s]) => el("option", { value: String(s), selected: s === periodS }, `last ${text}`)));
    card.replaceChildren(...[
      el("div", { class: "monitoring-head" },
        el("h2", {}, "Predictions of ", name), select),
      el("div", { class: "badges" },
        report.versions.length ? report.versions.map(badge) : el("span", { class: "muted" }, "no version served or recorded")),
      el("p", { class: "muted" },
        `${recorded} predictions, ${report.window_s / 60}-minute buckets. Drift compares each version with its validation reference once it has ${report.min_count} predictions; hover a badge for the statistics.`),
      el("h3", {}, "Label shares"), legend(report, colors), sharesChart(report, view.production_moves, colors),
      el("h3", {}, "Mean confidence ", el("span", { class: "key confidence" }, "—"), " and prediction rate ", el("span", { class: "key rate" }, "—")),
      linesChart(report, view.production_moves),
      view.history_note ? el("p", { class: "muted history-note" }, view.history_note) : null,
    ].filter(Boolean));
    card.dataset.loaded = String(Date.now());
  }

  async function refresh(card, name, periodS) {
    card.dataset.period = String(periodS);
    const to = new Date();
    const from = new Date(to.getTime() - periodS * 1000);
    const query = new URLSearchParams({ from: from.toISOString(), to: to.toISOString() });
    try {
      render(card, name, await api(`monitoring/models/${encodeURIComponent(name)}?${query}`), periodS);
    } catch (err) {
      card.replaceChildren(el("h2", {}, "Predictions of ", name), el("p", { class: "error" }, err.message));
    }
  }

  async function load() {
    const box = document.getElementById("monitoring");
    if (!box) return;
    let models;
    try {
      models = await api("models");
    } catch (err) {
      return; // the models list above already says what is wrong
    }
    const cards = models.map((m) => el("section", { class: "card monitoring", dataset: { model: m.name } },
      el("p", { class: "muted" }, `Loading monitoring of ${m.name}…`)));
    box.replaceChildren(...cards);
    await Promise.all(cards.map((card, i) => refresh(card, models[i].name, 3600)));
    setInterval(() => cards.forEach((card, i) => refresh(card, models[i].name, Number(card.dataset.period))), REFRESH_MS);
  }

  load();
})();
