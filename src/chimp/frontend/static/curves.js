/* Models page pictures (training curves, confusion matrix) full-size: click one to open it
   over the page, click or press Escape to close. Works on any `.pictures img`, however the
   page that shows them was built. */
"use strict";

(() => {
  const { el } = chimp;
  let box = null;

  function close() {
    if (!box) return;
    box.remove();
    box = null;
    document.body.classList.remove("lightbox-open");
  }

  function open(img) {
    close();
    const name = img.alt || img.title || "picture";
    box = el("div", { id: "lightbox", class: "lightbox", role: "dialog", "aria-modal": "true", "aria-label": name,
      onclick: close },
      el("figure", {},
        el("img", { src: img.currentSrc || img.src, alt: name }),
        el("figcaption", {}, name, el("span", { class: "muted" }, " · click or press Escape to close"))));
    document.body.append(box);
    document.body.classList.add("lightbox-open");
  }

  document.addEventListener("click", (event) => {
    const img = event.target instanceof Element && event.target.closest(".pictures img");
    if (img) { event.preventDefault(); open(img); }
  });
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") close(); });
})();
