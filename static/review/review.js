/* Review page and queue keyboard (no inline scripts: the CSP allows 'self' only).
   Queue: j / k move down / up the rows, Enter or o opens the highlighted one.
   Review page: j / k next / previous item of the list the reviewer came from; u back to it;
   ] / [ next / previous turn; r / x / i decide (resolved, false positive, in review);
   n note; a assign to me; s score, c correct, f flag the current turn; g re-run its judge;
   e expand every LLM call. In a form, Ctrl+Enter saves it and Esc leaves it. */
(function () {
  "use strict";

  function typing(event) {
    var el = event.target;
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }

  function go(url) { if (url) { window.location.href = url; } }

  // --- review page ---
  var page = document.querySelector(".cm-review");
  var turns = page ? Array.prototype.slice.call(page.querySelectorAll("article.cm-turn")) : [];
  var current = null;

  function focusTurn(turn, scroll) {
    if (!turn) return;
    if (current) current.classList.remove("cm-current");
    current = turn;
    turn.classList.add("cm-current");
    if (scroll) turn.scrollIntoView({ block: "start" });
  }

  function openPanel(prefix) {
    if (!current) return;
    var panel = document.getElementById(prefix + "-" + current.dataset.turn);
    if (!panel) return;
    panel.open = true;
    var field = panel.querySelector("input:not([type=hidden]), textarea, select");
    if (field) { field.focus(); if (field.select && field.tagName === "TEXTAREA") field.select(); }
  }

  if (page && turns.length) {
    var fromHash = /^#turn-(\d+)$/.exec(window.location.hash);
    var wanted = fromHash ? fromHash[1] : page.dataset.focusTurn;
    var start = turns.filter(function (t) { return t.dataset.turn === wanted; })[0] || turns[0];
    focusTurn(start, Boolean(wanted) && start !== turns[0]);
  }

  function pageKey(event) {
    var key = event.key;
    if (typing(event)) {
      var form = event.target.form;
      if (key === "Enter" && (event.ctrlKey || event.metaKey) && form) {
        event.preventDefault();
        var resolve = form.querySelector('button[data-key="r"]');
        (resolve || form.querySelector("button[type=submit]") || form).click();
      } else if (key === "Escape") {
        var details = event.target.closest("details");
        event.target.blur();
        if (details) details.open = false;
      }
      return;
    }
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    var index = turns.indexOf(current);
    switch (key) {
      case "j": go(page.dataset.nextUrl); break;
      case "k": go(page.dataset.previousUrl); break;
      case "u": go(page.dataset.queueUrl); break;
      case "]": focusTurn(turns[Math.min(index + 1, turns.length - 1)], true); break;
      case "[": focusTurn(turns[Math.max(index - 1, 0)], true); break;
      case "r": case "x": case "i": {
        var decision = page.querySelector('button.cm-decision[data-key="' + key + '"]');
        if (decision) decision.click();
        break;
      }
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
      case "s": event.preventDefault(); openPanel("score"); break;
      case "c": event.preventDefault(); openPanel("correct"); break;
      case "f": event.preventDefault(); openPanel("flag"); break;
      case "g": {
        var rerun = current && current.querySelector(".cm-rerun-form button");
        if (rerun) rerun.click();
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
  }

  // --- queue ---
  var table = document.querySelector(".cm-queue #result_list");
  var rows = table ? Array.prototype.slice.call(table.querySelectorAll("tbody tr")) : [];
  var row = -1;

  function highlight(next) {
    if (!rows.length) return;
    if (row >= 0) rows[row].classList.remove("cm-current");
    row = Math.max(0, Math.min(rows.length - 1, next));
    rows[row].classList.add("cm-current");
    rows[row].scrollIntoView({ block: "nearest" });
  }

  function queueKey(event) {
    if (typing(event) || event.altKey || event.ctrlKey || event.metaKey) return;
    switch (event.key) {
      case "j": highlight(row + 1); break;
      case "k": highlight(row - 1); break;
      case "o": case "Enter": {
        if (row < 0) return;
        var link = rows[row].querySelector("th a, td a");
        if (link) { event.preventDefault(); go(link.href); }
        break;
      }
      default: return;
    }
  }

  document.addEventListener("keydown", function (event) {
    if (page) pageKey(event);
    else if (table) queueKey(event);
  });
})();
