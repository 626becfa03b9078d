// Draws the report charts with Chart.js (from npm, served by the app). Each canvas[data-chart] names the
// <script type="application/json"> with its data: {labels: [...], datasets: [{label, data: [dollars]}]}.
// The table after each chart has the same figures, so nothing is lost without JavaScript.
document.addEventListener("DOMContentLoaded", function () {
  if (typeof Chart === "undefined") { return; }
  var dollars = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
  var colours = ["#1b7a3a", "#1f5fbf"];
  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var data = JSON.parse(document.getElementById(canvas.dataset.chart).textContent);
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: data.datasets.map(function (set, index) {
          return { label: set.label, data: set.data, backgroundColor: colours[index % colours.length] };
        }),
      },
      options: {
        animation: false,  // drawn at once: nothing moves for people who prefer less motion
        maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, ticks: { callback: function (value) { return dollars.format(value); } } } },
        plugins: {
          tooltip: { callbacks: { label: function (item) { return item.dataset.label + ": " + dollars.format(item.parsed.y); } } },
        },
      },
    });
  });
});
