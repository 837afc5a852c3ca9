/* Dashboard charts from the JSON the page embeds with json_script (data, not code). */
(function () {
  "use strict";

  function ready(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }

  ready(function () {
    var source = document.getElementById("dashboard-charts");
    if (!source || typeof window.Chart === "undefined") return;
    var data = JSON.parse(source.textContent);
    var Chart = window.Chart;
    var css = getComputedStyle(document.documentElement);
    var text = css.getPropertyValue("--body-fg").trim() || "#333";
    Chart.defaults.color = text;
    Chart.defaults.maintainAspectRatio = false;
    Chart.defaults.animation = false;

    function make(id, config) {
      var canvas = document.getElementById(id);
      if (canvas) new Chart(canvas, config);
    }

    make("chart-volume", {
      type: "bar",
      data: {
        labels: data.volume.labels,
        datasets: [
          { label: "turns", data: data.volume.turns, backgroundColor: "#79aec8" },
          { label: "errors", data: data.volume.errors, backgroundColor: "#ba2121" },
          { label: "flagged", data: data.volume.flagged, backgroundColor: "#e0a800" }
        ]
      },
      options: { scales: { x: { ticks: { maxTicksLimit: 12 } }, y: { beginAtZero: true } } }
    });
    make("chart-cost", {
      type: "bar",
      data: { labels: data.cost.labels, datasets: [{ label: "USD", data: data.cost.cost, backgroundColor: "#417690" }] },
      options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } }
    });
    make("chart-judge", {
      type: "line",
      data: { labels: data.judge.labels, datasets: [{ label: "average overall", data: data.judge.average, borderColor: "#44b78b", spanGaps: true, tension: 0.2 }] },
      options: { plugins: { legend: { display: false } }, scales: { y: { min: 0, max: 10 } } }
    });
    make("chart-risk", {
      type: "doughnut",
      data: { labels: data.risk.labels, datasets: [{ data: data.risk.counts, backgroundColor: ["#44b78b", "#e0a800", "#e86a1a", "#ba2121"] }] }
    });
  });
})();
