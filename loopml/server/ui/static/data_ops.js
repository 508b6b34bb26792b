// Charts of the dataset and deployment pages: a uPlot bar chart per numeric column's stored
// histogram, each monitor's drift share over time with its dataset-drift threshold, and a
// deployment's request rate, latency and error rate, fetched from /api/v1 every 10 s.
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

  const MINUTE = { s: 1 / 60, m: 1, h: 60, d: 1440, w: 10080 };
  const CHARTS = {
    rate: function (b, perMin) {
      return [[{ label: "requests/min", stroke: "#2563eb", width: 2, fill: "rgba(37,99,235,.12)" }],
        [b.requests.map(function (n) { return n * perMin; })]];
    },
    latency: function (b) {
      return [[{ label: "p50 ms", stroke: "#1a7f37", width: 2 }, { label: "p99 ms", stroke: "#b42318", width: 2 }],
        [b.p50_ms, b.p99_ms]];
    },
    errors: function (b) {
      return [[{ label: "error rate", stroke: "#b42318", width: 2, fill: "rgba(180,35,24,.1)" }], [b.error_rate]];
    },
  };

  function requests() {
    const section = document.querySelector("section.requests");
    if (!section) return;
    const select = section.querySelector("select.window"), drawn = {};
    let timer = null;

    function draw(buckets, perMin) {
      const t = buckets.t.map(function (ms) { return ms / 1000; });
      section.querySelectorAll("figure.traffic").forEach(function (figure) {
        const made = CHARTS[figure.dataset.chart](buckets, perMin), box = figure.querySelector(".plot");
        const data = [t].concat(made[1]);
        if (drawn[figure.dataset.chart]) { drawn[figure.dataset.chart].setData(data); return; }
        const opts = {
          width: width(box), height: 170,
          scales: { x: { time: true }, y: { range: function (u, lo, hi) { return [0, hi > 0 ? hi * 1.1 : 1]; } } },
          series: [{ label: "bucket (UTC)" }].concat(made[0].map(function (s) { return Object.assign({ spanGaps: false, points: { show: false } }, s); })),
          axes: [{ size: 40 }, { size: 54 }],
          cursor: { drag: { x: true, y: false } },
          tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
        };
        drawn[figure.dataset.chart] = new uPlot(opts, data, box);
        plots.push([box, drawn[figure.dataset.chart], 170]);
      });
    }

    function load() {
      const option = select.selectedOptions[0], bucket = option.dataset.bucket;
      const perMin = 1 / (parseFloat(bucket) * MINUTE[bucket.slice(-1)]);
      const url = "/api/v1/deployments/" + encodeURIComponent(section.dataset.deployment) +
        "/requests?since=" + option.value + "&bucket=" + bucket;
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(function (body) {
          draw(body.buckets, perMin);
          const sum = function (a) { return a.reduce(function (x, y) { return x + y; }, 0); };
          section.querySelector(".totals").textContent = sum(body.buckets.requests) + " requests, " +
            sum(body.buckets.rows) + " rows, " + sum(body.buckets.errors) + " errors in the last " + option.value;
        })
        .catch(function (e) { section.querySelector(".totals").textContent = "could not load requests (" + e.message + ")"; });
    }

    select.addEventListener("change", load);
    load();
    timer = setInterval(function () { if (!document.hidden) load(); }, 10000);
    window.addEventListener("pagehide", function () { clearInterval(timer); });
  }

  function againstSelect() {
    document.querySelectorAll("form.against select").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
  }

  histograms();
  drift();
  requests();
  againstSelect();
  window.addEventListener("resize", function () {
    plots.forEach(function (p) { p[1].setSize({ width: width(p[0]), height: p[2] }); });
  });
})();
