// The compare page: overlaid curves per metric (log scale, EMA smoothing; a click on a run in
// a legend hides it) and parallel coordinates, drawn with uPlot.
(function () {
  "use strict";
  const source = document.getElementById("compare-data");
  if (!source) return;
  const data = JSON.parse(source.textContent);
  const colors = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c",
                  "#0891b2", "#db2777", "#65a30d", "#4b5563", "#ca8a04"];
  const names = data.ids.map(function (id, i) { return data.names[i] || id.slice(0, 8); });
  const logBox = document.getElementById("logy");
  const slider = document.getElementById("smooth");
  const plots = [];
  document.querySelectorAll(".swatch").forEach(function (s) {
    s.style.background = colors[+s.dataset.i % colors.length];
  });

  // Runs log at different steps: join their steps into one x axis, null where a run has none.
  function join(perRun) {
    const steps = Array.from(new Set([].concat.apply([], perRun.map(function (c) { return c[0]; }))))
      .sort(function (a, b) { return a - b; });
    const columns = perRun.map(function (c) {
      const at = new Map(c[0].map(function (s, j) { return [s, c[1][j]]; }));
      return steps.map(function (s) { return at.has(s) ? at.get(s) : null; });
    });
    return [steps].concat(columns);
  }

  function series(extra) {
    return [{ label: "step" }].concat(names.map(function (n, i) {
      return Object.assign({ label: n, stroke: colors[i % colors.length], width: 1.5, spanGaps: true }, extra);
    }));
  }

  function drawCurves() {
    document.querySelectorAll("figure.overlay").forEach(function (figure) {
      const key = figure.dataset.key, box = figure.querySelector(".plot");
      const weight = slider ? parseFloat(slider.value) : 0;
      const perRun = data.curves[key].map(function (c) {
        return weight > 0 ? [c[0], window.loopml.smooth(c[1], weight)] : c;
      });
      const joined = join(perRun);
      const positive = joined.slice(1).every(function (c) { return c.every(function (v) { return v === null || v > 0; }); });
      const log = logBox && logBox.checked && positive;
      box.innerHTML = "";
      plots.push(new uPlot({
        width: Math.max(box.clientWidth, 240), height: 220, series: series({ points: { show: joined[0].length < 50 } }),
        scales: { x: { time: false }, y: { distr: log ? 3 : 1 } },
        axes: [{ label: "step", size: 34, labelSize: 14 }, { size: 56 }],
        cursor: { drag: { x: true, y: false } },
      }, joined, box));
    });
  }

  // One series per run across the axes (x = axis index, y = value scaled to 0..1).
  function drawParallel() {
    const figure = document.getElementById("parallel");
    if (!figure) return;
    const p = data.parallel, box = figure.querySelector(".plot");
    const xs = p.axes.map(function (_, i) { return i; });
    const fmt = function (v) { return Number.isInteger(v) ? String(v) : v.toPrecision(3); };
    // The legend shows a run's own value at the hovered axis, not its 0..1 position.
    const raw = function (u, v, si, i) {
      if (v == null || i == null) return "--";
      const r = p.ranges[i];
      return fmt(r[0] + (r[1] === r[0] ? 0 : v * (r[1] - r[0])));
    };
    const labels = {
      id: "axis-labels",
      hooks: { draw: [function (u) {
        const ctx = u.ctx, top = u.valToPos(1.06, "y", true), bottom = u.valToPos(-0.06, "y", true);
        ctx.save();
        ctx.strokeStyle = "#9ca3af"; ctx.fillStyle = "#374151"; ctx.lineWidth = 1;
        ctx.font = 11 * devicePixelRatio + "px sans-serif"; ctx.textAlign = "center";
        xs.forEach(function (i) {
          const x = u.valToPos(i, "x", true);
          ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, bottom); ctx.stroke();
          ctx.fillText(fmt(p.ranges[i][1]), x, top - 5 * devicePixelRatio);
          ctx.fillText(fmt(p.ranges[i][0]), x, bottom + 13 * devicePixelRatio);
        });
        ctx.restore();
      }] },
    };
    const opts = {
      width: Math.max(box.clientWidth, 320), height: 280, plugins: [labels],
      padding: [24, 48, 8, 48], legend: { show: true },
      series: [{ label: "axis", value: function (u, i) { return i == null ? "--" : p.axes[i]; } }]
        .concat(series({ points: { show: true, size: 6 }, value: raw }).slice(1)),
      scales: { x: { time: false, range: [-0.05, xs.length - 0.95] }, y: { range: [-0.06, 1.06] } },
      axes: [
        { splits: function () { return xs; }, values: function () { return p.axes; }, gap: 18, size: 44, grid: { show: false } },
        { show: false },
      ],
      cursor: { drag: { x: false, y: false } },
    };
    plots.push(new uPlot(opts, [xs].concat(p.runs.map(function (r) { return r; })), box));
  }

  function drawAll() {
    plots.splice(0).forEach(function (u) { u.destroy(); });
    drawCurves();
    drawParallel();
  }
  if (logBox) logBox.addEventListener("change", drawAll);
  if (slider) slider.addEventListener("input", function () {
    document.getElementById("smooth-value").textContent = slider.value;
    drawAll();
  });
  window.addEventListener("resize", drawAll);
  drawAll();
})();
