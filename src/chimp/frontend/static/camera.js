/* Webcam access with messages a person can act on. */
"use strict";

const chimpCamera = (() => {
  function explain(err) {
    const name = err && err.name;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      return "This browser gives no camera access here. Use a recent browser, over https or on localhost.";
    }
    if (name === "NotAllowedError" || name === "SecurityError") {
      return "Camera access was refused. Allow the camera for this site (the icon in the address bar), then retry.";
    }
    if (name === "NotFoundError" || name === "OverconstrainedError") return "No camera was found on this device.";
    if (name === "NotReadableError") return "The camera is busy in another application. Close it, then retry.";
    return "The camera could not start: " + (err && err.message ? err.message : String(err));
  }

  /** Start the camera into `video`; resolves once frames flow. Throws Error with a readable message. */
  async function start(video) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) throw new Error(explain(null));
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false,
      });
    } catch (err) {
      const e = new Error(explain(err));
      e.cameraRefused = true;
      throw e;
    }
    video.srcObject = stream;
    await video.play().catch(() => {});
    if (!video.videoWidth) await new Promise((r) => video.addEventListener("loadedmetadata", r, { once: true }));
    return stream;
  }

  /** The current frame as a JPEG Blob, at most `maxWidth` wide. */
  function grab(video, canvas, quality, maxWidth = 640) {
    const scale = Math.min(1, maxWidth / video.videoWidth);
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
  }

  return { start, grab, explain };
})();
