// Draw motion masks and zones on a camera's snapshot (Settings > Cameras > Motion areas).
// The textarea is the truth: clicks add points, "finish" appends a line to it, and typing in
// it redraws the shapes, so the page also works with the keyboard alone or without scripts.
"use strict";

(function () {
  const editor = document.querySelector("[data-areas-editor]");
  if (!editor) return;
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.getElementById("areas-overlay");
  const text = document.getElementById("areas");
  const count = document.getElementById("points-count");
  const zoneName = document.getElementById("zone-name");
  let current = [];

  function readAreas() {
    // Lines the server would refuse are simply not drawn; the server says what is wrong.
    const areas = [];
    text.value.split("\n").forEach((line) => {
      const at = line.indexOf(":");
      if (at < 0) return;
      const head = line.slice(0, at).trim();
      const points = line.slice(at + 1).trim().split(/\s+/).map((p) => p.split(",").map(Number));
      if (points.length < 3 || points.some((p) => p.length !== 2 || p.some((v) => !(v >= 0 && v <= 1)))) return;
      if (head === "mask") areas.push({ kind: "mask", points });
      else if (head.startsWith("zone ")) areas.push({ kind: "zone", name: head.slice(5).trim(), points });
    });
    return areas;
  }

  function shape(tag, attrs) {
    const element = document.createElementNS(NS, tag);
    Object.entries(attrs).forEach(([k, v]) => element.setAttribute(k, v));
    svg.appendChild(element);
    return element;
  }

  function draw() {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    readAreas().forEach((area) => {
      shape("polygon", { points: area.points.map((p) => p.join(",")).join(" "),
                         class: area.kind === "mask" ? "area-mask" : "area-zone",
                         "vector-effect": "non-scaling-stroke" });
    });
    if (current.length) {
      shape("polyline", { points: current.map((p) => p.join(",")).join(" "), class: "area-drawing",
                          "vector-effect": "non-scaling-stroke" });
    }
    count.textContent = current.length + (current.length === 1 ? " point" : " points") + " placed.";
  }

  function round(v) {
    return String(Math.round(Math.min(1, Math.max(0, v)) * 10000) / 10000);
  }

  svg.addEventListener("click", (event) => {
    const box = svg.getBoundingClientRect();
    current.push([round((event.clientX - box.left) / box.width), round((event.clientY - box.top) / box.height)]);
    draw();
  });

  function finish(kind) {
    if (current.length < 3) {
      count.textContent = "An area needs at least 3 points.";
      return;
    }
    const name = (zoneName.value || "zone").trim();
    const head = kind === "mask" ? "mask" : "zone " + name;
    const line = head + ": " + current.map((p) => p.join(",")).join(" ");
    text.value = text.value.replace(/\s*$/, "") + (text.value.trim() ? "\n" : "") + line + "\n";
    current = [];
    draw();
  }

  document.getElementById("finish-mask").addEventListener("click", () => finish("mask"));
  document.getElementById("finish-zone").addEventListener("click", () => finish("zone"));
  document.getElementById("undo-point").addEventListener("click", () => { current.pop(); draw(); });
  text.addEventListener("input", draw);
  document.getElementById("areas-tools").hidden = false;
  draw();
})();
