// The lineage page: connect each node to the nodes it came from with SVG curves.
(function () {
  "use strict";
  const graph = document.getElementById("lineage");
  if (!graph) return;
  const svg = graph.querySelector("svg.edges"), ns = "http://www.w3.org/2000/svg";
  function draw() {
    const origin = graph.getBoundingClientRect();
    svg.setAttribute("width", graph.scrollWidth);
    svg.setAttribute("height", graph.scrollHeight);
    svg.replaceChildren();
    graph.querySelectorAll(".node[data-inputs]").forEach(function (node) {
      const to = node.getBoundingClientRect();
      node.dataset.inputs.split(" ").filter(Boolean).forEach(function (key) {
        const src = document.getElementById(key);
        if (!src) return;
        const from = src.getBoundingClientRect();
        const x1 = from.right - origin.left, y1 = from.top + from.height / 2 - origin.top;
        const x2 = to.left - origin.left, y2 = to.top + to.height / 2 - origin.top;
        const path = document.createElementNS(ns, "path"), mid = (x1 + x2) / 2;
        path.setAttribute("d", "M" + x1 + "," + y1 + " C" + mid + "," + y1 + " " + mid + "," + y2 + " " + x2 + "," + y2);
        svg.appendChild(path);
      });
    });
  }
  window.addEventListener("resize", draw);
  draw();
})();
