// scimd admin UI: progressive enhancement only; every page works without this file.
"use strict";

// Copies `text`: the Clipboard API where the page may use it (HTTPS or localhost), else
// the older selection copy, which works over plain HTTP too. Resolves to whether it did.
function copy(text, source) {
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text).then(() => true, () => copyBySelection(text, source));
  }
  return Promise.resolve(copyBySelection(text, source));
}

function copyBySelection(text, source) {
  const field = document.createElement("textarea");
  field.value = text;
  field.setAttribute("readonly", "");
  field.style.position = "fixed";
  field.style.opacity = "0";
  document.body.appendChild(field);
  field.select();
  let done = false;
  try {
    done = document.execCommand("copy");
  } catch (_) {
    done = false;
  }
  field.remove();
  if (!done && source) {
    // Leave what was to be copied selected, so the admin can copy it by hand.
    if (typeof source.select === "function") {
      source.focus();
      source.select();
    } else {
      const range = document.createRange();
      range.selectNodeContents(source);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    }
  }
  return done;
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  const text = source.value !== undefined ? source.value : source.textContent;
  const label = button.dataset.label || button.textContent;
  button.dataset.label = label;
  copy(text.trim(), source).then((done) => {
    button.textContent = done ? "Copied" : "Not copied: it is selected, press Ctrl+C";
    setTimeout(() => { button.textContent = label; }, done ? 1500 : 6000);
  });
});

// A form, or the button that submits it, may ask for a confirmation first.
document.addEventListener("submit", (event) => {
  const submitter = event.submitter;
  const message = (submitter && submitter.dataset.confirm) || event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});
