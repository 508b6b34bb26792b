// Curves on the run page: one uPlot chart per metric, with log scale and EMA smoothing.
(function () {
  "use strict";
  const source = document.getElementById("curves");
  if (!source) return;
  const curves = JSON.parse(source.textContent);
  const logBox = document.getElementById("logy");
  const slider = document.getElementById("smooth");
  const shown = document.getElementById("smooth-value");
  const plots = new Map();

  const smooth = window.loopml.smooth;

  function draw(figure) {
    const key = figure.dataset.key, curve = curves[key], box = figure.querySelector(".plot");
    const positive = curve.value.every(function (v) { return v === null || v > 0; });
    const log = logBox.checked && positive;
    figure.title = logBox.checked && !positive ? "log scale needs values > 0" : "";
    const weight = parseFloat(slider.value);
    const series = [{ label: "step" }, {
      label: key, width: 1.5, stroke: weight > 0 ? "rgba(37,99,235,.28)" : "#2563eb",
      points: { show: curve.step.length < 50 },
    }];
    const data = [curve.step, curve.value];
    if (weight > 0) {
      series.push({ label: "smoothed", stroke: "#2563eb", width: 1.5 });
      data.push(smooth(curve.value, weight));
    }
    const old = plots.get(key);
    if (old) old.destroy();
    const opts = {
      width: Math.max(box.clientWidth, 200), height: 200, series: series,
      scales: { x: { time: false }, y: { distr: log ? 3 : 1 } },
      axes: [{ label: "step", size: 34, labelSize: 14 }, { size: 56 }],
      cursor: { drag: { x: true, y: false } },
    };
    plots.set(key, new uPlot(opts, data, box));
  }

  function drawAll() { document.querySelectorAll("figure.chart").forEach(draw); }
  logBox.addEventListener("change", drawAll);
  slider.addEventListener("input", function () { shown.textContent = slider.value; drawAll(); });
  window.addEventListener("resize", function () {
    document.querySelectorAll("figure.chart").forEach(function (f) {
      const plot = plots.get(f.dataset.key);
      if (plot) plot.setSize({ width: Math.max(f.querySelector(".plot").clientWidth, 200), height: 200 });
    });
  });
  drawAll();
})();
