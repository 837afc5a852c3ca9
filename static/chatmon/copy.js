// Copy buttons: <button data-copy="#element-id">. A file, not an inline script: the CSP allows
// scripts from this site only. navigator.clipboard needs a secure context (https or localhost);
// elsewhere the text is selected and copied the old way.
(function () {
  "use strict";
  function textOf(target) {
    return "value" in target && typeof target.value === "string" ? target.value : target.textContent;
  }
  function selectText(target) {
    if (typeof target.select === "function") { target.focus(); target.select(); return; }
    const range = document.createRange();
    range.selectNodeContents(target);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }
  function confirm(button, label) {
    const original = button.dataset.label || button.textContent;
    button.dataset.label = original;
    button.textContent = label;
    setTimeout(function () { button.textContent = original; }, 2000);
  }
  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    event.preventDefault();
    const target = document.querySelector(button.dataset.copy);
    if (!target) return;
    const text = textOf(target).trim();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { confirm(button, "Copied"); },
        function () { selectText(target); confirm(button, "Press Ctrl+C"); }
      );
    } else {
      selectText(target);
      let copied = false;
      try { copied = document.execCommand("copy"); } catch (error) { copied = false; }
      confirm(button, copied ? "Copied" : "Press Ctrl+C");
    }
  });
})();
