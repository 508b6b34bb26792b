// Helpers shared by the chart pages (run, compare).
window.loopml = window.loopml || {};
// Exponential moving average, debiased at the start (as TensorBoard smooths); nulls stay.
window.loopml.smooth = function (values, weight) {
  "use strict";
  let last = 0, n = 0;
  return values.map(function (v) {
    if (v === null) return null;
    last = last * weight + (1 - weight) * v;
    n += 1;
    return last / (1 - Math.pow(weight, n));
  });
};
