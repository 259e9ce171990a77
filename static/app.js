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
  const back = document.activeElement;
  document.body.appendChild(field);
  field.select();
  let done = false;
  try {
    done = document.execCommand("copy");
  } catch (_) {
    done = false;
  }
  field.remove();
  // Selecting the hidden field took the focus: give it back (to the Copy button).
  if (back && typeof back.focus === "function") back.focus();
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

// Says `message` to a screen reader, which may not read a focused button's new text.
function announce(message) {
  let region = document.getElementById("announcer");
  if (!region) {
    region = document.createElement("div");
    region.id = "announcer";
    region.className = "visually-hidden";
    region.setAttribute("role", "status");
    document.body.appendChild(region);
  }
  region.textContent = "";
  setTimeout(() => { region.textContent = message; }, 50);
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
    announce(button.textContent);
    setTimeout(() => { button.textContent = label; }, done ? 1500 : 6000);
  });
});

// A form, or the button that submits it, may ask for a confirmation first.
document.addEventListener("submit", (event) => {
  const submitter = event.submitter;
  const message = (submitter && submitter.dataset.confirm) || event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

// A wide table scrolls in its own box. Where it does, the box takes the focus, so that a
// keyboard can scroll it (links and buttons inside do not), named after its heading.
function headingBefore(element) {
  let found = null;
  for (const h of document.querySelectorAll("main h1, main h2, main h3")) {
    if (h.compareDocumentPosition(element) & Node.DOCUMENT_POSITION_FOLLOWING) found = h;
  }
  return found ? found.textContent.trim() : "Table";
}

function markScrollingTables() {
  for (const box of document.querySelectorAll(".table-wrap")) {
    if (box.scrollWidth > box.clientWidth + 1) {
      box.tabIndex = 0;
      box.setAttribute("role", "region");
      box.setAttribute("aria-label", headingBefore(box) + " (scrolls sideways)");
    } else if (box.getAttribute("role") === "region") {
      box.removeAttribute("tabindex");
      box.removeAttribute("role");
      box.removeAttribute("aria-label");
    }
  }
}
markScrollingTables();
window.addEventListener("resize", markScrollingTables);

// The tenant menu closes on Escape (focus back on its summary), and when the focus or a
// click goes elsewhere: open, it covers the section tabs below it.
const tenantMenu = document.querySelector(".tenant-switch details");
if (tenantMenu) {
  tenantMenu.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && tenantMenu.open) {
      tenantMenu.open = false;
      tenantMenu.querySelector("summary").focus();
    }
  });
  tenantMenu.addEventListener("focusout", (event) => {
    if (!tenantMenu.contains(event.relatedTarget)) tenantMenu.open = false;
  });
  document.addEventListener("click", (event) => {
    if (!tenantMenu.contains(event.target)) tenantMenu.open = false;
  });
}

// What the last action came to (a saved change, an error) takes the focus when the page
// opens, so a screen reader reads it first; the next Tab goes on from there.
// (`data-standing`: a box that is there whenever the page is, not the outcome of an action.)
const notice = document.querySelector(
  "main > .error-box:not([data-standing]), main > .flash, main .error-box[role=alert]:not([data-standing])");
if (notice) {
  notice.tabIndex = -1;
  notice.focus();
}
