/* Review page and queue keyboard shortcuts (no inline scripts: the CSP allows 'self' only).
   j / k: next / previous open flagged conversation; u: back to the queue;
   a: assign to me; n: focus the note; e: expand or collapse every LLM call. */
(function () {
  "use strict";

  function typing(event) {
    var el = event.target;
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || typing(event)) return;
    var page = document.querySelector(".cm-review");
    if (!page) return;
    var go = function (url) { if (url) { window.location.href = url; } };
    switch (event.key) {
      case "j": go(page.dataset.nextUrl); break;
      case "k": go(page.dataset.previousUrl); break;
      case "u": go(page.dataset.queueUrl); break;
      case "a": {
        var assign = document.getElementById("action-assign");
        if (assign) assign.click();
        break;
      }
      case "n": {
        var note = document.getElementById("review-note-input");
        if (note) { event.preventDefault(); note.focus(); }
        break;
      }
      case "e": {
        var calls = document.querySelectorAll("details.cm-llm-call");
        var open = Array.prototype.some.call(calls, function (d) { return !d.open; });
        calls.forEach(function (d) { d.open = open; });
        break;
      }
      default: return;
    }
  });
})();
