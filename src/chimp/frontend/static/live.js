/* Live page: webcam frames -> /ws/live (one in flight, capped fps) -> boxes, bars, model version. */
"use strict";

(() => {
  const { el, banner, pct } = chimp;
  const video = document.getElementById("video");
  const overlay = document.getElementById("overlay");
  const barsBox = document.getElementById("bars");
  const grabCanvas = document.createElement("canvas");
  const LOST_AFTER_MS = 10000; // an answer this late means the link is broken: reconnect
  const NEAR_CHANCE = 1.5; // below 1.5x chance accuracy, a model's confident bars mislead

  // Measurements the benchmark and the tests read.
  const stats = window.chimpLive = {
    state: "starting", frames: 0, latencies: [], lastPrediction: null, model: null,
    connected: false, startedAt: performance.now(),
    /** Send a JSON request on the live socket (corrections.js); false when it is closed. */
    send: (request) => {
      if (!socket || socket.readyState !== WebSocket.OPEN) return false;
      socket.send(JSON.stringify(request));
      return true;
    },
  };

  let session = null;
  let socket = null;
  let inFlight = false;
  let sentAt = 0;
  let lastSent = 0;
  let selected = null; // centre of the face the user follows, in frame pixels
  let reconnectDelay = 500;

  function setState(state, content, kind) {
    stats.state = state;
    document.body.dataset.liveState = state;
    banner(content, kind);
  }

  function noModelMessage() {
    return [
      el("b", {}, "No model yet. "),
      el("a", { href: "calibrate" }, "Calibrate to your face"), " (about a minute, in this browser) or ",
      el("a", { href: "training" }, "upload a dataset and train"), " one.",
    ];
  }

  /** Held-out accuracy of the answering version, from the registry; a warning near chance. */
  const versionFacts = new Map();
  function factsOf(model) {
    const key = `${model.name}/${model.version}`;
    if (!versionFacts.has(key)) {
      versionFacts.set(key, chimp.api(`models/${encodeURIComponent(model.name)}/versions`).then((versions) => {
        const found = (Array.isArray(versions) ? versions : []).find((v) => String(v.version) === String(model.version));
        const metrics = (found && found.metrics) || {};
        const accuracy = metrics.test_accuracy ?? metrics.val_accuracy ?? metrics.accuracy;
        const labels = (found && found.metadata && found.metadata.labels) || session.emotions;
        return { accuracy: typeof accuracy === "number" ? accuracy : null, classes: labels.length };
      }, () => ({ accuracy: null, classes: session.emotions.length })));
    }
    return versionFacts.get(key);
  }

  async function showAccuracy(model) {
    const label = document.getElementById("model-accuracy");
    const warning = document.getElementById("model-warning");
    if (!model) { label.textContent = ""; warning.classList.add("hidden"); return; }
    const { accuracy, classes } = await factsOf(model);
    if (stats.model !== model) return; // another version answered meanwhile
    label.textContent = accuracy === null ? "" : `· ${Math.round(100 * accuracy)}% held-out accuracy`;
    const chance = 1 / Math.max(1, classes);
    const nearChance = accuracy !== null && accuracy < chance * NEAR_CHANCE;
    warning.classList.toggle("hidden", !nearChance);
    document.body.dataset.nearChance = nearChance ? "1" : "";
    warning.textContent = nearChance
      ? `This model is close to guessing: ${Math.round(100 * accuracy)}% right on held-out faces, `
        + `where chance is ${Math.round(100 * chance)}%. Read its bars as noise; calibrate or train on more data.`
      : "";
  }

  /** Once per personal version (and right after calibrating): say the personal model is in use. */
  function announcePersonal(model) {
    if (!model || !model.alias || !model.alias.startsWith("user-")) return;
    const key = "chimp.personalAnnounced";
    const fresh = new URLSearchParams(location.search).get("calibrated");
    if (!fresh && localStorage.getItem(key) === model.version) return;
    localStorage.setItem(key, model.version);
    banner([el("b", {}, "Your personal model is ready. "),
      `Version ${model.version}, trained on your calibration, answers for you now.`], "info", "notice");
  }

  function renderBars(scores, labels) {
    const order = labels.concat(Object.keys(scores || {}).filter((k) => !labels.includes(k)));
    const top = scores ? Object.entries(scores).sort((a, b) => b[1] - a[1])[0] : null;
    barsBox.replaceChildren(...order.map((label) => {
      const p = scores && label in scores ? scores[label] : null;
      const row = el("div", { class: "bar" + (top && top[0] === label ? " top" : ""), dataset: { label } },
        el("span", { class: "name" }, label),
        el("div", { class: "track" }, el("div", { class: "fill", style: `width:${p === null ? 0 : 100 * p}%` })),
        el("span", { class: "pct" }, p === null ? "–" : pct(p)));
      return row;
    }));
  }

  function fitOverlay() {
    const rect = overlay.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    if (overlay.width !== Math.round(rect.width * dpr)) overlay.width = Math.round(rect.width * dpr);
    if (overlay.height !== Math.round(rect.height * dpr)) overlay.height = Math.round(rect.height * dpr);
    return { w: overlay.width, h: overlay.height };
  }

  /** Map frame pixels onto the overlay, matching the video's object-fit: contain. */
  function projector(frameW, frameH) {
    const { w, h } = fitOverlay();
    const s = Math.min(w / frameW, h / frameH);
    const ox = (w - frameW * s) / 2, oy = (h - frameH * s) / 2;
    return { s, ox, oy };
  }

  function pickFace(faces) {
    const boxed = faces.filter((f) => f.box);
    if (!boxed.length) return faces[0] || null;
    const centre = (f) => [f.box.x + f.box.w / 2, f.box.y + f.box.h / 2];
    if (selected) {
      const d = (f) => { const [cx, cy] = centre(f); return (cx - selected[0]) ** 2 + (cy - selected[1]) ** 2; };
      const best = boxed.reduce((a, b) => (d(a) <= d(b) ? a : b));
      selected = centre(best);
      return best;
    }
    return boxed.reduce((a, b) => (a.box.w * a.box.h >= b.box.w * b.box.h ? a : b));
  }

  function draw(prediction) {
    const ctx = overlay.getContext("2d");
    const { w, h } = fitOverlay();
    ctx.clearRect(0, 0, w, h);
    const faces = prediction ? prediction.faces : [];
    const chosen = prediction ? pickFace(faces) : null;
    stats.chosen = chosen ? faces.indexOf(chosen) : -1;
    if (prediction) {
      const { s, ox, oy } = projector(prediction.width, prediction.height);
      const dpr = window.devicePixelRatio || 1;
      ctx.lineWidth = 3 * dpr;
      ctx.font = `${16 * dpr}px system-ui, sans-serif`;
      for (const face of faces) {
        if (!face.box) continue;
        const x = ox + face.box.x * s, y = oy + face.box.y * s;
        const bw = face.box.w * s, bh = face.box.h * s;
        const colour = face === chosen ? "#22c55e" : "#60a5fa";
        ctx.strokeStyle = colour;
        ctx.strokeRect(x, y, bw, bh);
        const text = `${face.label} ${pct(face.score)}`;
        const tw = ctx.measureText(text).width + 10 * dpr;
        ctx.fillStyle = colour;
        ctx.fillRect(x, Math.max(0, y - 22 * dpr), tw, 22 * dpr);
        ctx.fillStyle = "#0b1220";
        ctx.fillText(text, x + 5 * dpr, Math.max(0, y - 22 * dpr) + 16 * dpr);
      }
    }
    renderBars(chosen ? chosen.scores : null, session.emotions);
    document.getElementById("face-count").textContent = prediction ? String(faces.length) : "–";
  }

  function describeModel(model) {
    if (!model) return "–";
    const personal = model.alias && model.alias.startsWith("user-");
    const which = personal ? "your personal model" : model.alias || "pinned version";
    return `${model.name} v${model.version} (${which})`;
  }

  function onPrediction(message) {
    const model = message.model;
    const was = stats.model;
    const changed = !was || !model || was.name !== model.name || was.version !== model.version || was.alias !== model.alias;
    stats.model = changed ? model : stats.model;
    if (changed) { showAccuracy(model); announcePersonal(model); }
    stats.lastPrediction = message;
    document.getElementById("model-info").textContent = describeModel(model);
    document.body.dataset.modelVersion = model ? model.version : "";
    document.body.dataset.modelAlias = model && model.alias ? model.alias : "";
    if (message.faces.length === 0) setState("no_face", "No face in view. Face the camera in good light.", "info");
    else setState("ok", null);
    draw(message);
    document.dispatchEvent(new CustomEvent("chimp:prediction", { detail: message }));
  }

  function onStatus(message) {
    stats.lastPrediction = null;
    stats.model = null;
    showAccuracy(null);
    document.getElementById("model-info").textContent = "–";
    draw(null);
    if (message.state === "no_model") setState("no_model", noModelMessage(), "info");
    else if (message.state === "serving_down") {
      setState("serving_down", [el("b", {}, "Predictions are paused. "), message.message], "bad");
    } else setState(message.state, message.message, "warn");
  }

  /** One frame answered; the round trip is shown only when a model answered it. */
  function frameDone(answered) {
    const latency = performance.now() - sentAt;
    stats.latencies.push(latency);
    if (stats.latencies.length > 5000) stats.latencies.splice(0, 1000);
    stats.frames += 1;
    document.getElementById("latency").textContent = answered ? `${latency.toFixed(0)} ms` : "–";
    inFlight = false;
  }

  function connect() {
    socket = new WebSocket(chimp.wsUrl("ws/live"));
    socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      stats.connected = true; reconnectDelay = 500; inFlight = false;
      document.dispatchEvent(new CustomEvent("chimp:connected"));
    };
    socket.onmessage = (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch (_) { return; }
      if (message.type === "hello") return;
      // Answers to the page's own requests (corrections.js), not to a frame.
      if (!["prediction", "status"].includes(message.type)) {
        document.dispatchEvent(new CustomEvent("chimp:socket", { detail: message }));
        return;
      }
      if (message.type === "prediction") onPrediction(message);
      else if (message.type === "status") onStatus(message);
      // Drawn: the round trip ends here, when the user can see the answer.
      frameDone(message.type === "prediction");
    };
    socket.onclose = (event) => {
      stats.connected = false;
      inFlight = false;
      if (event.code === 4401) {
        setState("signed_out", [el("a", { href: "login" }, "Sign in"), " to see predictions."], "bad");
        return;
      }
      setState("disconnected", "Lost the connection to the web app; reconnecting…", "bad");
      setTimeout(connect, reconnectDelay);
      reconnectDelay = Math.min(reconnectDelay * 2, 8000);
    };
  }

  async function pump() {
    const now = performance.now();
    const interval = 1000 / session.max_fps;
    if (inFlight && now - sentAt > LOST_AFTER_MS && socket) {
      socket.close(); // never freeze on a lost answer: reconnect and carry on
      inFlight = false;
    }
    if (!inFlight && socket && socket.readyState === WebSocket.OPEN && now - lastSent >= interval
        && video.readyState >= 2 && document.visibilityState === "visible") {
      inFlight = true;
      lastSent = now;
      const blob = await chimpCamera.grab(video, grabCanvas, session.jpeg_quality);
      if (!blob || socket.readyState !== WebSocket.OPEN) { inFlight = false; return; }
      const data = await blob.arrayBuffer();
      sentAt = performance.now();
      socket.send(data);
    }
  }

  overlay.addEventListener("click", (event) => {
    const p = stats.lastPrediction;
    if (!p) return;
    const rect = overlay.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const { s, ox, oy } = projector(p.width, p.height);
    selected = [((event.clientX - rect.left) * dpr - ox) / s, ((event.clientY - rect.top) * dpr - oy) / s];
    draw(p);
  });

  async function startCamera() {
    try {
      await chimpCamera.start(video);
      return true;
    } catch (err) {
      const retry = el("button", { onclick: () => { banner(null); startCamera().then((ok) => ok && run()); } }, "Retry");
      setState("camera_refused", [err.message, " ", retry], "bad");
      return false;
    }
  }

  let running = false;
  function run() {
    if (running) return;
    running = true;
    connect();
    setInterval(() => { pump().catch(() => { inFlight = false; }); }, 15);
  }

  (async () => {
    try {
      session = await chimp.session();
    } catch (err) {
      setState("error", err.message, "bad");
      return;
    }
    renderBars(null, session.emotions);
    const params = new URLSearchParams(location.search);
    if (params.get("calibrated")) {
      banner("Calibration finished: your personal model takes over within a few seconds…", "info", "notice");
    }
    if (await startCamera()) run();
  })();
})();
