// Loft console: the little behaviour that HTML alone lacks. No inline script anywhere (the
// Content-Security-Policy allows scripts from this server only).
"use strict";
document.addEventListener("click", (ev) => {
  const copy = ev.target.closest("[data-copy]");
  if (copy) {
    const field = document.getElementById(copy.dataset.copy);
    if (field) {
      field.select();
      if (navigator.clipboard) {
        navigator.clipboard.writeText(field.value).then(() => { copy.textContent = "Copied"; });
      }
    }
  }
});
document.addEventListener("submit", (ev) => {
  const button = ev.submitter;
  const ask = (button && button.dataset.confirm) || ev.target.dataset.confirm;
  if (ask && !window.confirm(ask)) {
    ev.preventDefault();
  }
});
document.addEventListener("change", (ev) => {
  // "Select all": a checkbox with data-select-all="FORM" ticks or clears every checkbox
  // belonging to that form.
  const all = ev.target.closest("[data-select-all]");
  if (all) {
    for (const box of document.querySelectorAll(`input[type="checkbox"][form="${all.dataset.selectAll}"]`)) {
      box.checked = all.checked;
    }
  }
});
