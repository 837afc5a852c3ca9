/* Dashboard charts from the JSON the page embeds with json_script (data, not code), the
   breakdown table's sorting, and the chatbot selector that applies at once. */
(function () {
  "use strict";

  function ready(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }

  function sortable(table) {
    var headers = table.querySelectorAll("th[data-sort]");
    headers.forEach(function (header, column) {
      header.tabIndex = 0;
      function sort() {
        var descending = header.getAttribute("aria-sort") !== "descending";
        headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
        header.setAttribute("aria-sort", descending ? "descending" : "ascending");
        var numeric = header.getAttribute("data-sort") === "number";
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[column].getAttribute("data-value"), y = b.cells[column].getAttribute("data-value");
          if (numeric) {
            x = x === "" ? -Infinity : parseFloat(x);
            y = y === "" ? -Infinity : parseFloat(y);
            return descending ? y - x : x - y;
          }
          return descending ? y.localeCompare(x) : x.localeCompare(y);
        });
        rows.forEach(function (row) { body.appendChild(row); });
      }
      header.addEventListener("click", sort);
      header.addEventListener("keydown", function (event) { if (event.key === "Enter") sort(); });
    });
  }

  ready(function () {
    document.querySelectorAll("[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
    document.querySelectorAll("table.cm-sortable").forEach(sortable);

    var source = document.getElementById("dashboard-charts");
    if (!source || typeof window.Chart === "undefined") return;
    var data = JSON.parse(source.textContent);
    var Chart = window.Chart;
    var css = getComputedStyle(document.documentElement);
    var text = css.getPropertyValue("--body-fg").trim() || "#333";
    Chart.defaults.color = text;
    Chart.defaults.maintainAspectRatio = false;
    Chart.defaults.animation = false;
    var ticks = { maxTicksLimit: data.interval === "day" ? 16 : 12 };

    function make(canvas, config) {
      if (typeof canvas === "string") canvas = document.getElementById(canvas);
      if (canvas) new Chart(canvas, config);
    }

    make("chart-volume", {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [
          { label: "turns", data: data.volume.turns, backgroundColor: "#79aec8" },
          { label: "errors", data: data.volume.errors, backgroundColor: "#ba2121" },
          { label: "flagged", data: data.volume.flagged, backgroundColor: "#e0a800" }
        ]
      },
      options: { scales: { x: { ticks: ticks }, y: { beginAtZero: true } } }
    });
    make("chart-cost", {
      type: "bar",
      data: { labels: data.labels, datasets: [{ label: "USD", data: data.cost, backgroundColor: "#417690" }] },
      options: { plugins: { legend: { display: false } }, scales: { x: { ticks: ticks }, y: { beginAtZero: true } } }
    });
    make("chart-latency", {
      type: "line",
      data: { labels: data.labels, datasets: [
        { label: "p50", data: data.latency.p50, borderColor: "#79aec8", spanGaps: true, pointRadius: 0 },
        { label: "p95", data: data.latency.p95, borderColor: "#e86a1a", spanGaps: true, pointRadius: 0 }
      ] },
      options: { scales: { x: { ticks: ticks }, y: { beginAtZero: true } } }
    });
    make("chart-judge", {
      type: "line",
      data: { labels: data.labels, datasets: [{ label: "average overall", data: data.judge, borderColor: "#44b78b", spanGaps: true, tension: 0.2, pointRadius: 0 }] },
      options: { plugins: { legend: { display: false } }, scales: { x: { ticks: ticks }, y: { min: 0, max: 10 } } }
    });
    make("chart-risk", {
      type: "doughnut",
      data: { labels: data.risk.labels, datasets: [{ data: data.risk.counts, backgroundColor: ["#44b78b", "#e0a800", "#e86a1a", "#ba2121"] }] }
    });
    document.querySelectorAll(".cm-spark canvas").forEach(function (canvas) {
      var series = data.sparklines[canvas.getAttribute("data-metric")] || [];
      make(canvas, {
        type: data.interval === "day" ? "bar" : "line",
        data: { labels: data.labels, datasets: [{ data: series, borderColor: "#417690", backgroundColor: "#79aec8", borderWidth: 1, pointRadius: 0, spanGaps: true }] },
        options: { events: [], plugins: { legend: { display: false }, tooltip: { enabled: false } },
                   scales: { x: { display: false }, y: { display: false, beginAtZero: true } } }
      });
    });
  });
})();

/* The engagement panel: grouped live by the staff API after the page has rendered. Values are
   set as text (never HTML). */
(function () {
  "use strict";
  function fill() {
    var panel = document.getElementById("engagement");
    if (!panel) return;
    var status = panel.querySelector("[data-engagement-status]");
    fetch(panel.getAttribute("data-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        function text(value, suffix) { return value === null || value === undefined ? "—" : value.toLocaleString() + (suffix || ""); }
        panel.querySelector('[data-field="conversations"]').textContent = text(data.conversations);
        panel.querySelector('[data-field="turns_per_conversation"]').textContent = text(data.turns_per_conversation);
        panel.querySelector('[data-field="returning_share"]').textContent = text(data.returning_share, " %");
        panel.querySelector('[data-field="end_users"]').textContent = text(data.end_users);
        var body = panel.querySelector("#turns-per-conversation tbody");
        var peak = Math.max.apply(null, data.turn_count_distribution.map(function (b) { return b.conversations; }).concat([1]));
        data.turn_count_distribution.forEach(function (bucket) {
          var row = body.insertRow();
          row.insertCell().textContent = bucket.turns;
          row.insertCell().textContent = text(bucket.conversations);
          var bar = document.createElement("span");
          bar.className = "cm-bar";
          bar.style.width = Math.round(100 * bucket.conversations / peak) + "%";
          var cell = row.insertCell();
          var holder = document.createElement("span");
          holder.className = "cm-bar-cell";
          holder.appendChild(bar);
          cell.appendChild(holder);
        });
        panel.querySelectorAll("[data-drop]").forEach(function (cell) {
          var figure = data.drop_off[cell.getAttribute("data-drop")];
          cell.textContent = text(figure.conversations) + (figure.share === null ? "" : " (" + figure.share + " %)");
        });
        status.hidden = true;
        panel.querySelector(".cm-engagement").hidden = false;
      })
      .catch(function (error) { status.textContent = "Could not load engagement: " + error.message; });
  }
  if (document.readyState !== "loading") fill(); else document.addEventListener("DOMContentLoaded", fill);
})();
