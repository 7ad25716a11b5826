/* Calibration: record frames per emotion, zip them here, upload, train a personal model, go live. */
"use strict";

(() => {
  const { el, banner, api, sleep } = chimp;
  const video = document.getElementById("video");
  const prompt = document.getElementById("prompt");
  const list = document.getElementById("emotions");
  const startButton = document.getElementById("start");
  const progressBox = document.getElementById("progress-box");
  const progress = document.getElementById("progress");
  const phase = document.getElementById("phase");
  const progressText = document.getElementById("progress-text");
  const canvas = document.createElement("canvas");

  const state = window.chimpCalibration = { phase: "starting", frames: 0, taskId: null, error: null };
  let session = null;

  function setPhase(name, text) {
    state.phase = name;
    document.body.dataset.calibrationPhase = name;
    phase.textContent = text;
  }

  function fail(message) {
    state.error = message;
    setPhase("failed", "Calibration did not finish.");
    banner([message, " ", el("button", { onclick: () => location.reload() }, "Start over")], "bad");
    startButton.disabled = false;
  }

  async function record(emotion, item, files) {
    item.className = "recording";
    for (let n = session.calibration_countdown; n > 0; n--) {
      prompt.replaceChildren(el("span", {}, "Look ", el("b", {}, emotion), " in ", el("b", {}, String(n))));
      await sleep(1000);
    }
    prompt.replaceChildren(el("span", {}, "Hold ", el("b", {}, emotion), " — recording"));
    const gap = (1000 * session.calibration_seconds) / session.calibration_frames;
    for (let i = 0; i < session.calibration_frames; i++) {
      const started = performance.now();
      const blob = await chimpCamera.grab(video, canvas, 0.9);
      const name = `train/${emotion}/${String(i).padStart(3, "0")}.jpg`;
      files.push({ name, data: new Uint8Array(await blob.arrayBuffer()) });
      state.frames += 1;
      await sleep(Math.max(0, gap - (performance.now() - started)));
    }
    item.className = "done";
  }

  async function followTask(taskId) {
    for (;;) {
      let task;
      try {
        task = await api(`tasks/${encodeURIComponent(taskId)}`);
      } catch (err) {
        // Training briefly unreachable: keep the progress bar and try again.
        progressText.textContent = err.message + " — retrying";
        await sleep(2000);
        continue;
      }
      progress.value = task.progress || 0;
      progressText.textContent = `${task.status} · ${Math.round(100 * (task.progress || 0))}%`
        + (task.message ? ` · ${task.message}` : "");
      if (task.status === "succeeded") return task;
      if (task.status === "failed" || task.status === "cancelled") {
        throw new Error(`training ${task.status}: ${task.error || task.message || "no reason given"}`);
      }
      await sleep(1000);
    }
  }

  async function run() {
    startButton.disabled = true;
    banner(null);
    state.error = null;
    const files = [];
    const items = [...list.children];
    setPhase("recording", "Recording…");
    progressBox.classList.remove("hidden");
    for (let i = 0; i < session.emotions.length; i++) {
      progress.value = i / session.emotions.length;
      await record(session.emotions[i], items[i], files);
    }
    prompt.classList.add("hidden");
    progress.value = 1;

    const zip = chimpZip.build(files);
    const datasetName = session.calibration_dataset_prefix + Date.now();
    setPhase("uploading", `Uploading ${files.length} frames (${chimp.bytes(zip.size)})…`);
    const form = new FormData();
    form.append("dataset_name", datasetName);
    form.append("file", zip, datasetName + ".zip");
    try {
      await chimp.upload("datasets", form, (p) => {
        progress.value = p;
        progressText.textContent = `${Math.round(100 * p)}% uploaded`;
      });
    } catch (err) {
      fail("Upload failed: " + err.message);
      return;
    }

    setPhase("training", "Training your personal model…");
    progress.value = 0;
    try {
      const started = await api("calibration", { method: "POST", json: { dataset: datasetName } });
      state.taskId = started.task_id;
      await followTask(started.task_id);
    } catch (err) {
      fail(err.message);
      return;
    }
    setPhase("done", "Your personal model is ready. Back to the live page…");
    progress.value = 1;
    await sleep(1200);
    window.location.href = chimp.url("./?calibrated=1");
  }

  (async () => {
    try {
      session = await chimp.session();
    } catch (err) {
      banner(err.message, "bad");
      return;
    }
    list.replaceChildren(...session.emotions.map((e) => el("li", { dataset: { emotion: e } }, e)));
    try {
      await chimpCamera.start(video);
    } catch (err) {
      setPhase("camera_refused", "");
      banner([err.message, " ", el("button", { onclick: () => location.reload() }, "Retry")], "bad");
      return;
    }
    prompt.classList.remove("hidden");
    prompt.textContent = "Press “Start recording” when ready";
    setPhase("ready", "");
    startButton.disabled = false;
    startButton.addEventListener("click", () => run().catch((err) => fail(err.message)));
  })();
})();
