// Charts of the dataset and deployment pages: a uPlot bar chart per numeric column's stored
// histogram, and each monitor's drift share over time with its dataset-drift threshold.
(function () {
  "use strict";
  const plots = [];

  function width(box) { return Math.max(box.clientWidth, 200); }

  function histograms() {
    const source = document.getElementById("histograms");
    if (!source) return;
    const charts = JSON.parse(source.textContent);
    document.querySelectorAll("figure.hist").forEach(function (figure) {
      const chart = charts[figure.dataset.column], box = figure.querySelector(".plot");
      if (!chart) return;
      const edges = chart.edges;
      const opts = {
        width: width(box), height: 180,
        scales: { x: { time: false, range: [edges[0], edges[edges.length - 1]] }, y: { range: function (u, lo, hi) { return [0, hi * 1.05 || 1]; } } },
        series: [{ label: "bin", value: function (u, v, s, i) { return i == null ? "" : edges[i].toPrecision(4) + " – " + edges[i + 1].toPrecision(4); } },
          { label: "rows", fill: "rgba(37,99,235,.55)", stroke: "#2563eb", width: 1, paths: uPlot.paths.bars({ size: [0.92, Infinity], align: 0 }), points: { show: false } }],
        axes: [{ size: 30 }, { size: 50 }],
        cursor: { drag: { x: false, y: false } },
        legend: { show: true },
      };
      plots.push([box, new uPlot(opts, [chart.x, chart.y], box), 180]);
    });
  }

  function drift() {
    const source = document.getElementById("drift");
    if (!source) return;
    const found = JSON.parse(source.textContent);
    document.querySelectorAll("figure.drift").forEach(function (figure) {
      const name = figure.dataset.monitor, series = found.series[name], box = figure.querySelector(".plot");
      if (!series) return;
      const threshold = found.thresholds[name];
      const line = series.t.map(function () { return threshold; });
      const opts = {
        width: width(box), height: 200,
        scales: {
          x: series.t.length > 1 ? { time: true }  // one check: an hour either side of it
            : { time: true, auto: false, range: [series.t[0] - 3600, series.t[0] + 3600] },
          y: { range: [0, 1] },
        },
        series: [{ label: "checked (UTC)" },
          { label: "drift share", stroke: "#b42318", width: 2, points: { show: true, size: 6, fill: "#b42318" } },
          { label: "threshold", stroke: "#656d76", dash: [6, 4], width: 1, points: { show: false } }],
        axes: [{ size: 50 }, { size: 44 }],
        cursor: { drag: { x: true, y: false } },
        tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      };
      plots.push([box, new uPlot(opts, [series.t, series.drift_share, line], box), 200]);
    });
  }

  function againstSelect() {
    document.querySelectorAll("form.against select").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
  }

  histograms();
  drift();
  againstSelect();
  window.addEventListener("resize", function () {
    plots.forEach(function (p) { p[1].setSize({ width: width(p[0]), height: p[2] }); });
  });
})();
