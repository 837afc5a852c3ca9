/*!
 * chatmon feedback widget — thumbs up/down (+ optional comment) under one bot answer.
 * Dependency-free; include once with <script src=".../static/chatmon/feedback.js" defer></script>.
 *
 *   Chatmon.feedback(element, { endpoint: "https://chatmon.example/api/v1/feedback",
 *                               token: turn.feedback_token });
 *
 * or, with no script of your own (works under a strict CSP), mark up the slot and the widget
 * initialises itself on load:
 *
 *   <div data-chatmon-feedback data-endpoint="…/api/v1/feedback" data-token="…"></div>
 *
 * Nothing here ever throws into the host page: every entry point catches and reports through
 * the widget's own visible error state (and options.onError).
 */
(function (window, document) {
  "use strict";

  var VERSION = "1.0.0";
  var ROOT_CLASS = "chatmon-feedback";
  var instanceCount = 0;

  var DEFAULT_LABELS = {
    group: "Was this answer helpful?",
    up: "Helpful",
    down: "Not helpful",
    commentPrompt: "What went wrong? (optional)",
    commentPlaceholder: "Tell us what was wrong or missing",
    send: "Send",
    skip: "Skip",
    sending: "Sending…",
    thanks: "Thanks for your feedback!",
    thanksComment: "Thanks, your comment was sent.",
    retry: "Retry",
    errorNetwork: "Couldn't send your feedback. Check your connection and retry.",
    errorServer: "The feedback service had a problem. Please retry.",
    errorRateLimited: "Too many ratings right now. Retry in {seconds} s.",
    errorExpired: "This answer can no longer be rated.",
    errorUnavailable: "Feedback isn't available for this answer.",
    errorCommentTooLong: "Your comment is too long (at most {max} characters).",
    errorInvalid: "Your feedback couldn't be accepted."
  };

  // Captured while this file is being executed; used to find feedback.css next to it.
  var scriptSrc = (document.currentScript && document.currentScript.src) || "";

  function warn(message, error) {
    try {
      if (window.console && window.console.warn) window.console.warn("[chatmon feedback] " + message, error || "");
    } catch (ignored) { /* a host without console */ }
  }

  function assign(target) {
    for (var i = 1; i < arguments.length; i++) {
      var source = arguments[i];
      if (!source) continue;
      for (var key in source) {
        if (Object.prototype.hasOwnProperty.call(source, key) && source[key] !== undefined) target[key] = source[key];
      }
    }
    return target;
  }

  function format(template, values) {
    return String(template).replace(/\{(\w+)\}/g, function (match, name) {
      return values && values[name] !== undefined ? String(values[name]) : match;
    });
  }

  function el(tag, attributes, text) {
    var node = document.createElement(tag);
    for (var name in attributes || {}) {
      if (Object.prototype.hasOwnProperty.call(attributes, name)) node.setAttribute(name, attributes[name]);
    }
    // Text only, ever: user-visible strings are never parsed as HTML.
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Thumbs outlines (Feather icons, MIT): drawn the same on every OS, unlike emoji fonts.
  var ICON_PATHS = {
    up: "M14 9V5a3 3 0 0 0-3-3l-4 9v11h11.28a2 2 0 0 0 2-1.7l1.38-9a2 2 0 0 0-2-2.3zM7 22H4a2 2 0 0 1-2-2v-7a2 2 0 0 1 2-2h3",
    down: "M10 15v4a3 3 0 0 0 3 3l4-9V2H5.72a2 2 0 0 0-2 1.7l-1.38 9a2 2 0 0 0 2 2.3zm7-13h2.67A2.31 2.31 0 0 1 22 4v7a2.31 2.31 0 0 1-2.33 2H17"
  };
  var SVG_NS = "http://www.w3.org/2000/svg";

  function icon(kind, emoji) {
    if (emoji || typeof document.createElementNS !== "function") {
      return el("span", { "aria-hidden": "true", "class": ROOT_CLASS + "__emoji" }, kind === "up" ? "👍" : "👎");
    }
    var svg = document.createElementNS(SVG_NS, "svg");
    var attributes = { viewBox: "0 0 24 24", width: "1.1em", height: "1.1em", fill: "none", stroke: "currentColor", "stroke-width": "2", "stroke-linecap": "round", "stroke-linejoin": "round", "aria-hidden": "true", focusable: "false", "class": ROOT_CLASS + "__icon" };
    for (var name in attributes) svg.setAttribute(name, attributes[name]);
    var path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", ICON_PATHS[kind]);
    svg.appendChild(path);
    return svg;
  }

  function ensureStylesheet(option) {
    if (option === false) return;
    try {
      if (document.querySelector("link[data-chatmon-feedback-css]")) return;
      var href = typeof option === "string" ? option : "";
      if (!href && scriptSrc) href = scriptSrc.replace(/feedback(\.[0-9a-f]+)?(\.min)?\.js(\?.*)?$/, "feedback.css");
      if (!href || href === scriptSrc) return;
      var link = el("link", { rel: "stylesheet", href: href, "data-chatmon-feedback-css": "" });
      (document.head || document.documentElement).appendChild(link);
    } catch (error) {
      warn("could not add the stylesheet", error);
    }
  }

  function resolveElement(target) {
    if (!target) return null;
    if (typeof target === "string") return document.querySelector(target);
    return target.nodeType === 1 ? target : null;
  }

  function Widget(element, options) {
    this.element = element;
    this.options = options;
    this.labels = assign({}, DEFAULT_LABELS, options.labels);
    this.rating = options.rating === "up" || options.rating === "down" ? options.rating : null;
    this.pending = false;
    this.disabled = false;
    this.lastRequest = null;
    this.id = "chatmon-feedback-" + (++instanceCount);
    this.render();
  }

  Widget.prototype.render = function () {
    var self = this;
    var labels = this.labels;
    var root = el("div", { "class": ROOT_CLASS, role: "group", "aria-label": labels.group });

    this.upButton = el("button", { type: "button", "class": ROOT_CLASS + "__button " + ROOT_CLASS + "__button--up", "aria-label": labels.up, title: labels.up, "aria-pressed": "false" });
    this.upButton.appendChild(icon("up", this.options.emoji));
    this.downButton = el("button", { type: "button", "class": ROOT_CLASS + "__button " + ROOT_CLASS + "__button--down", "aria-label": labels.down, title: labels.down, "aria-pressed": "false" });
    this.downButton.appendChild(icon("down", this.options.emoji));
    this.status = el("span", { "class": ROOT_CLASS + "__status", role: "status", "aria-live": "polite" });

    this.errorBox = el("div", { "class": ROOT_CLASS + "__error", role: "alert" });
    this.errorBox.hidden = true;
    this.errorText = el("span", { "class": ROOT_CLASS + "__error-text" });
    this.retryButton = el("button", { type: "button", "class": ROOT_CLASS + "__retry" }, labels.retry);
    this.errorBox.appendChild(this.errorText);
    this.errorBox.appendChild(this.retryButton);

    var textareaId = this.id + "-comment";
    this.form = el("form", { "class": ROOT_CLASS + "__comment", novalidate: "" });
    this.form.hidden = true;
    this.form.appendChild(el("label", { "for": textareaId, "class": ROOT_CLASS + "__comment-label" }, labels.commentPrompt));
    this.textarea = el("textarea", { id: textareaId, rows: "3", placeholder: labels.commentPlaceholder });
    if (this.options.maxCommentLength > 0) this.textarea.setAttribute("maxlength", String(this.options.maxCommentLength));
    this.form.appendChild(this.textarea);
    var actions = el("div", { "class": ROOT_CLASS + "__comment-actions" });
    this.sendButton = el("button", { type: "submit", "class": ROOT_CLASS + "__send" }, labels.send);
    this.skipButton = el("button", { type: "button", "class": ROOT_CLASS + "__skip" }, labels.skip);
    actions.appendChild(this.sendButton);
    actions.appendChild(this.skipButton);
    this.form.appendChild(actions);

    var row = el("div", { "class": ROOT_CLASS + "__row" });
    row.appendChild(this.upButton);
    row.appendChild(this.downButton);
    row.appendChild(this.status);
    root.appendChild(row);
    root.appendChild(this.errorBox);
    root.appendChild(this.form);

    this.handlers = {
      up: guard(function () { self.vote("up"); }),
      down: guard(function () { self.vote("down"); }),
      retry: guard(function () { self.retry(); }),
      submit: guard(function (event) { event.preventDefault(); self.sendComment(); }),
      skip: guard(function () { self.closeComment(true); }),
      keydown: guard(function (event) {
        if (event.key === "Escape" || event.key === "Esc") { event.preventDefault(); self.closeComment(true); }
        // Ctrl/Cmd+Enter sends, as in most chat inputs; plain Enter makes a new line.
        if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); self.sendComment(); }
      })
    };
    this.upButton.addEventListener("click", this.handlers.up);
    this.downButton.addEventListener("click", this.handlers.down);
    this.retryButton.addEventListener("click", this.handlers.retry);
    this.form.addEventListener("submit", this.handlers.submit);
    this.skipButton.addEventListener("click", this.handlers.skip);
    this.textarea.addEventListener("keydown", this.handlers.keydown);

    this.root = root;
    this.element.appendChild(root);
    this.showRating();
  };

  Widget.prototype.showRating = function () {
    this.upButton.setAttribute("aria-pressed", this.rating === "up" ? "true" : "false");
    this.downButton.setAttribute("aria-pressed", this.rating === "down" ? "true" : "false");
    this.root.setAttribute("data-rating", this.rating || "");
  };

  Widget.prototype.setBusy = function (busy, rating) {
    this.pending = busy;
    this.root.setAttribute("aria-busy", busy ? "true" : "false");
    // aria-disabled rather than disabled: a disabled button would drop keyboard focus.
    var buttons = [this.upButton, this.downButton, this.sendButton, this.retryButton];
    for (var i = 0; i < buttons.length; i++) buttons[i].setAttribute("aria-disabled", busy || this.disabled ? "true" : "false");
    this.root.setAttribute("data-pending", busy && rating ? rating : "");
    if (busy) this.status.textContent = this.labels.sending;
  };

  Widget.prototype.vote = function (rating) {
    if (this.pending || this.disabled) return;
    if (rating === this.rating) {
      // Same choice again: nothing to send; 👎 reopens the comment box.
      if (rating === "down" && this.options.comment) this.openComment();
      return;
    }
    this.send({ rating: rating }, "vote");
  };

  Widget.prototype.sendComment = function () {
    if (this.pending || this.disabled) return;
    this.send({ rating: "down", comment: this.textarea.value }, "comment");
  };

  Widget.prototype.retry = function () {
    if (this.pending || this.disabled || !this.lastRequest) return;
    this.send(this.lastRequest.body, this.lastRequest.kind);
  };

  Widget.prototype.openComment = function () {
    this.form.hidden = false;
    try { this.textarea.focus(); } catch (ignored) { /* not focusable yet */ }
  };

  Widget.prototype.closeComment = function (returnFocus) {
    var wasOpen = !this.form.hidden;
    this.form.hidden = true;
    if (wasOpen && returnFocus) {
      try { this.downButton.focus(); } catch (ignored) { /* detached */ }
    }
  };

  Widget.prototype.showError = function (message, canRetry) {
    this.errorText.textContent = message;
    this.retryButton.hidden = !canRetry;
    this.errorBox.hidden = false;
    this.status.textContent = "";
  };

  Widget.prototype.clearError = function () {
    this.errorBox.hidden = true;
    this.errorText.textContent = "";
  };

  Widget.prototype.send = function (body, kind) {
    var self = this;
    var options = this.options;
    this.lastRequest = { body: body, kind: kind };
    this.clearError();
    this.setBusy(true, body.rating);

    var payload;
    try {
      payload = JSON.stringify(assign({ token: options.token }, body));
    } catch (error) {
      this.finishWithError({ kind: "invalid", error: error });
      return;
    }
    if (typeof window.fetch !== "function") {
      this.finishWithError({ kind: "network", error: new Error("fetch is not available") });
      return;
    }
    var controller = typeof window.AbortController === "function" ? new window.AbortController() : null;
    var timer = controller && options.timeoutMs > 0 ? window.setTimeout(function () { controller.abort(); }, options.timeoutMs) : null;

    var request;
    try {
      request = window.fetch(options.endpoint, {
        method: "POST",
        mode: "cors",
        // Never the host page's cookies: the signed token is the only credential.
        credentials: "omit",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        body: payload,
        signal: controller ? controller.signal : undefined
      });
    } catch (error) {
      if (timer) window.clearTimeout(timer);
      this.finishWithError({ kind: "network", error: error });
      return;
    }

    request.then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (ignored) { data = null; }
        return { response: response, data: data };
      });
    }).then(function (result) {
      if (timer) window.clearTimeout(timer);
      if (result.response.ok) {
        self.finishWithSuccess(body, kind, result.data);
      } else {
        self.finishWithError({ kind: "http", status: result.response.status, data: result.data, retryAfter: result.response.headers.get("Retry-After") });
      }
    }).catch(function (error) {
      if (timer) window.clearTimeout(timer);
      self.finishWithError({ kind: "network", error: error });
    });
  };

  Widget.prototype.finishWithSuccess = function (body, kind, data) {
    try {
      this.setBusy(false);
      this.rating = body.rating;
      this.showRating();
      if (kind === "comment") {
        this.closeComment(true);
        this.status.textContent = this.labels.thanksComment;
      } else {
        this.status.textContent = this.labels.thanks;
        if (body.rating === "down" && this.options.comment) this.openComment();
        else this.closeComment(false);
      }
      callback(this.options.onChange, [body.rating, data, body.comment]);
    } catch (error) {
      warn("could not show the result", error);
    }
  };

  Widget.prototype.finishWithError = function (failure) {
    try {
      this.setBusy(false);
      var labels = this.labels;
      var message = labels.errorServer;
      var canRetry = true;
      var code = failure.data && typeof failure.data.code === "string" ? failure.data.code : "";
      if (failure.kind === "network") {
        message = labels.errorNetwork;
      } else if (failure.kind === "invalid") {
        message = labels.errorInvalid;
        canRetry = false;
      } else if (failure.status === 429) {
        var seconds = parseInt(failure.retryAfter, 10);
        message = format(labels.errorRateLimited, { seconds: seconds > 0 ? seconds : 60 });
      } else if (code === "token_expired") {
        message = labels.errorExpired;
        canRetry = false;
        this.disable();
      } else if (failure.status === 403 || failure.status === 404 || failure.status === 401) {
        message = labels.errorUnavailable;
        canRetry = false;
        this.disable();
      } else if (failure.status === 400 && failure.data && failure.data.comment) {
        message = format(labels.errorCommentTooLong, { max: this.options.maxCommentLength || "?" });
        canRetry = false;
      } else if (failure.status >= 400 && failure.status < 500) {
        message = labels.errorInvalid;
        canRetry = false;
      }
      // The last confirmed rating stays shown: a failed vote did not change anything.
      this.showRating();
      this.showError(message, canRetry);
      callback(this.options.onError, [failure]);
    } catch (error) {
      warn("could not show the error", error);
    }
  };

  Widget.prototype.disable = function () {
    this.disabled = true;
    this.closeComment(false);
    this.root.setAttribute("data-disabled", "true");
    this.upButton.setAttribute("aria-disabled", "true");
    this.downButton.setAttribute("aria-disabled", "true");
  };

  Widget.prototype.destroy = function () {
    try {
      this.upButton.removeEventListener("click", this.handlers.up);
      this.downButton.removeEventListener("click", this.handlers.down);
      this.retryButton.removeEventListener("click", this.handlers.retry);
      this.form.removeEventListener("submit", this.handlers.submit);
      this.skipButton.removeEventListener("click", this.handlers.skip);
      this.textarea.removeEventListener("keydown", this.handlers.keydown);
      if (this.root.parentNode) this.root.parentNode.removeChild(this.root);
      if (this.element && this.element.__chatmonFeedback === this) this.element.__chatmonFeedback = undefined;
    } catch (error) {
      warn("could not remove the widget", error);
    }
  };

  function guard(fn) {
    return function (event) {
      try { fn(event); } catch (error) { warn("unexpected error", error); }
    };
  }

  function callback(fn, args) {
    if (typeof fn !== "function") return;
    try { fn.apply(null, args); } catch (error) { warn("a callback threw", error); }
  }

  function controllerFor(widget) {
    return {
      version: VERSION,
      getRating: function () { return widget.rating; },
      destroy: function () { widget.destroy(); }
    };
  }

  /**
   * Render the widget into `target` (an element or a CSS selector).
   * Returns a small controller {getRating(), destroy()} or null when it could not start.
   */
  function feedback(target, options) {
    try {
      var element = resolveElement(target);
      if (!element) { warn("no element to render into", target); return null; }
      options = assign({
        endpoint: "",
        token: "",
        rating: null,
        comment: true,
        emoji: false,
        maxCommentLength: 2000,
        timeoutMs: 10000,
        stylesheet: undefined,
        labels: null,
        onChange: null,
        onError: null
      }, options || {});
      if (!options.endpoint || !options.token) { warn("options.endpoint and options.token are required"); return null; }
      if (element.__chatmonFeedback) element.__chatmonFeedback.destroy();
      ensureStylesheet(options.stylesheet);
      var widget = new Widget(element, options);
      element.__chatmonFeedback = widget;
      return controllerFor(widget);
    } catch (error) {
      warn("could not start", error);
      return null;
    }
  }

  function optionsFromData(element) {
    var data = element.dataset || {};
    var options = { endpoint: data.endpoint, token: data.token, rating: data.rating || null };
    if (data.comment === "false") options.comment = false;
    if (data.emoji === "true") options.emoji = true;
    var max = parseInt(data.maxCommentLength, 10);
    if (max > 0) options.maxCommentLength = max;
    if (data.stylesheet === "false") options.stylesheet = false;
    else if (data.stylesheet) options.stylesheet = data.stylesheet;
    return options;
  }

  /** Start every `[data-chatmon-feedback]` element under `root` that has no widget yet. */
  function autoInit(root) {
    try {
      var scope = root && root.querySelectorAll ? root : document;
      var nodes = scope.querySelectorAll("[data-chatmon-feedback]");
      var started = [];
      for (var i = 0; i < nodes.length; i++) {
        if (nodes[i].__chatmonFeedback) continue;
        var controller = feedback(nodes[i], optionsFromData(nodes[i]));
        if (controller) started.push(controller);
      }
      return started;
    } catch (error) {
      warn("auto-init failed", error);
      return [];
    }
  }

  feedback.autoInit = autoInit;
  feedback.version = VERSION;
  feedback.defaultLabels = assign({}, DEFAULT_LABELS);

  var namespace = window.Chatmon = window.Chatmon || {};
  namespace.feedback = feedback;

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { autoInit(document); });
  } else {
    autoInit(document);
  }
})(window, document);
