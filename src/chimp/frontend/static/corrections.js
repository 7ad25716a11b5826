/* Corrections on the live page: "that face is really …" in one click (or key 1-9), the count
   and what it leads to, uncertain frames to label later (opt-in), and deleting my data.
   The crop and its provenance are taken by the web app from the frame it sent to serving. */
"use strict";

(() => {
  const { el, api, pct } = chimp;
  const box = document.getElementById("corrections");
  const live = window.chimpLive;
  if (!box || !live) return;

  // Read by the tests: the last receipt and what the panel shows.
  const state = window.chimpCorrections = { receipt: null, info: null, sent: 0, lastError: null };
  let session = null;
  let current = null; // { frame, face, label, score } of the face the bars show
  let requestId = 0;
  const pending = new Map(); // request id -> label sent

  const status = el("p", { id: "correction-status", class: "hint", role: "status", "aria-live": "polite" });
  const count = el("p", { id: "correction-count" });
  const buttons = el("div", { id: "correction-buttons", class: "correct-buttons" });
  const reviewToggle = el("input", { type: "checkbox", id: "review-toggle" });
  const reviewList = el("div", { id: "review-queue", class: "review-queue" });
  const deleteButton = el("button", { id: "delete-my-data", class: "danger" }, "Delete my data");

  function chosenFace(prediction) {
    // The face whose bars live.js shows (the one the user follows).
    const faces = prediction.faces || [];
    if (!faces.length) return -1;
    return live.chosen >= 0 && live.chosen < faces.length ? live.chosen : 0;
  }

  // The buttons are made once per label set and only updated per frame: replacing them at the
  // frame rate would swap the button under the pointer between press and release.
  const hint = el("span", { class: "hint" });
  let shownLabels = null;

  function renderButtons() {
    const labels = session ? session.emotions : [];
    if (labels !== shownLabels) {
      shownLabels = labels;
      buttons.replaceChildren(hint, ...labels.map((label, i) => el("button", {
        type: "button",
        class: "correct",
        dataset: { label },
        title: `Key ${i + 1}`,
        onclick: () => correct(label),
      }, `${i + 1} ${label}`)));
    }
    hint.textContent = current ? `Model says ${current.label} (${pct(current.score)}). It is really:` : "No face to correct.";
    for (const button of buttons.querySelectorAll("button.correct")) {
      button.classList.toggle("same", Boolean(current) && current.label === button.dataset.label);
      button.disabled = !current;
    }
  }

  function correct(label) {
    if (!current) return;
    const id = ++requestId;
    pending.set(id, label);
    if (!live.send({ type: "correct", request: id, frame: current.frame, face: current.face, label })) {
      status.textContent = "Not connected: the correction was not sent.";
      return;
    }
    state.sent += 1;
    status.textContent = `Sending "${label}"…`;
  }

  function describe(info) {
    if (!info) return "";
    const until = Math.max(0, info.feedback_threshold - info.pending_corrections);
    const what = info.personal_model ? "your model is re-trained" : "a personal model is trained for you";
    const next = until === 0 ? `Enough: ${what} shortly.` : `${until} more and ${what}.`;
    return `Corrections: ${info.corrections}. ${next}`;
  }

  function showCount(text) {
    count.textContent = text;
    document.body.dataset.corrections = state.info ? String(state.info.corrections) : "";
  }

  async function refresh() {
    try {
      state.info = await api("me");
      showCount(describe(state.info));
      reviewToggle.checked = !!state.info.review_uncertain;
      live.send({ type: "review", enabled: reviewToggle.checked });
      await refreshReview();
    } catch (err) {
      showCount(`Your data could not be read: ${err.message}`);
    }
  }

  async function refreshReview() {
    if (!reviewToggle.checked) { reviewList.replaceChildren(); return; }
    const items = await api("me/review");
    const labels = session ? session.emotions : [];
    reviewList.replaceChildren(...items.map((item) => el("div", { class: "review-item", dataset: { id: item.id } },
      el("img", { src: chimp.url(`api/me/review/${encodeURIComponent(item.id)}/image`), alt: `face the model called ${item.predicted}`, width: 48, height: 48 }),
      el("span", { class: "hint" }, `${item.predicted} ${pct(item.confidence)}`),
      ...labels.map((label) => el("button", { type: "button", class: "correct small", onclick: () => labelReview(item.id, label) }, label)),
      el("button", { type: "button", class: "link", onclick: () => discardReview(item.id) }, "discard"),
    )));
  }

  async function labelReview(id, label) {
    try {
      const receipt = await api(`me/review/${encodeURIComponent(id)}`, { method: "POST", json: { label } });
      onReceipt(receipt, label);
    } catch (err) {
      status.textContent = err.message;
    }
    await refresh();
  }

  async function discardReview(id) {
    try { await api(`me/review/${encodeURIComponent(id)}`, { method: "DELETE" }); } catch (_) { /* gone already */ }
    await refreshReview();
  }

  function onReceipt(receipt, label) {
    state.receipt = receipt;
    status.textContent = `Saved: "${label}". Thank you.`;
    if (state.info) {
      state.info.corrections = receipt.corrections;
      state.info.pending_corrections = receipt.pending;
    }
    showCount(`Corrections: ${receipt.corrections}. ${receipt.message}`);
  }

  document.addEventListener("chimp:prediction", (event) => {
    const prediction = event.detail;
    const face = chosenFace(prediction);
    current = face < 0 || prediction.frame === undefined ? null : {
      frame: prediction.frame, face, label: prediction.faces[face].label, score: prediction.faces[face].score,
    };
    renderButtons();
  });

  document.addEventListener("chimp:connected", () => {
    live.send({ type: "review", enabled: reviewToggle.checked });
  });

  document.addEventListener("chimp:socket", (event) => {
    const message = event.detail;
    if (message.type === "correction") {
      const label = pending.get(message.request);
      pending.delete(message.request);
      if (message.ok) onReceipt(message.receipt, label);
      else { state.lastError = message.error; status.textContent = `Not saved: ${message.error}`; }
    } else if (message.type === "review" && message.kept) {
      refreshReview().catch(() => {});
    }
  });

  document.addEventListener("keydown", (event) => {
    if (event.target instanceof HTMLInputElement || event.altKey || event.ctrlKey || event.metaKey) return;
    const index = Number.parseInt(event.key, 10);
    if (!session || Number.isNaN(index) || index < 1 || index > session.emotions.length) return;
    correct(session.emotions[index - 1]);
  });

  reviewToggle.addEventListener("change", async () => {
    try {
      await api("me/settings", { method: "PUT", json: { review_uncertain: reviewToggle.checked } });
    } catch (err) {
      status.textContent = err.message;
    }
    await refresh();
  });

  deleteButton.addEventListener("click", async () => {
    if (!window.confirm("Delete your calibration frames, corrections and personal model? This cannot be undone.")) return;
    try {
      const done = await api("me", { method: "DELETE" });
      status.textContent = `Deleted: ${done.datasets.length} datasets, ${done.model_versions.length} model versions.`;
    } catch (err) {
      status.textContent = `Not deleted: ${err.message}`;
    }
    await refresh();
  });

  (async () => {
    session = await chimp.session();
    box.replaceChildren(
      el("h2", {}, "Correct me"),
      buttons, status, count,
      el("label", { class: "hint" }, reviewToggle, " Keep frames I am unsure about, to label later"),
      reviewList,
      deleteButton,
    );
    renderButtons();
    await refresh();
  })();
})();
