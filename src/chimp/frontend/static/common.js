/* Shared helpers. Every URL is relative to <base>, so the app works under any host, port or prefix. */
"use strict";

const chimp = (() => {
  function url(path) {
    return new URL(path, document.baseURI).toString();
  }

  /** A ws:// or wss:// URL for `path`, derived from where the page was served. */
  function wsUrl(path) {
    const u = new URL(path, document.baseURI);
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    return u.toString();
  }

  /** The message of an error answer ({"error", "code", "detail"}), with field details. */
  function describeError(status, body) {
    if (body && typeof body.error === "string") {
      let text = body.error;
      if (Array.isArray(body.detail) && body.detail.length && body.detail[0].loc) {
        text += ": " + body.detail.map((d) => `${(d.loc || []).join(".")} ${d.msg}`).join("; ");
      }
      return text;
    }
    if (status === 401) return "Sign in first.";
    return `request failed (${status})`;
  }

  class ApiError extends Error {
    constructor(status, body) {
      super(describeError(status, body));
      this.status = status;
      this.code = body && body.code;
    }
  }

  async function api(path, { method = "GET", json, signal } = {}) {
    const init = { method, signal, credentials: "same-origin", headers: {} };
    if (json !== undefined) {
      init.body = JSON.stringify(json);
      init.headers["content-type"] = "application/json";
    }
    let response;
    try {
      response = await fetch(url("api/" + path), init);
    } catch (err) {
      throw new ApiError(0, { error: "the web app is not reachable (network error)" });
    }
    const text = await response.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
    if (response.status === 401 && !path.startsWith("session")) {
      window.location.href = url("login?next=" + encodeURIComponent(location.pathname));
    }
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  /** POST a FormData with upload progress (fetch has none); resolves to the JSON answer. */
  function upload(path, form, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url("api/" + path));
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
      xhr.onload = () => {
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch (_) { body = null; }
        if (xhr.status >= 200 && xhr.status < 300) resolve(body);
        else reject(new ApiError(xhr.status, body));
      };
      xhr.onerror = () => reject(new ApiError(0, { error: "upload failed: the web app is not reachable" }));
      xhr.send(form);
    });
  }

  let sessionPromise = null;
  function session() {
    if (!sessionPromise) sessionPromise = api("session");
    return sessionPromise;
  }

  /** Build an element: el("td", {class: "x"}, "text", child, ...). */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  /** Show a message in the page's banner; kind: "warn" | "bad" | "info"; nodes allowed. */
  function banner(content, kind = "warn", id = "banner") {
    const box = document.getElementById(id);
    if (!box) return;
    if (!content) { box.classList.add("hidden"); box.replaceChildren(); box.dataset.state = ""; return; }
    box.className = "banner " + kind;
    box.replaceChildren(...(Array.isArray(content) ? content : [content]));
  }

  function pct(p) { return (100 * p).toFixed(1) + "%"; }

  function bytes(n) {
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
    return (n / 1024 / 1024).toFixed(1) + " MB";
  }

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  return { url, wsUrl, api, upload, session, el, banner, pct, bytes, when, sleep, ApiError };
})();
