// Line charts as inline SVG, drawn here (no library): one line per series over shared x labels.
"use strict";

window.OssCharts = (function () {
  const SVG = "http://www.w3.org/2000/svg";
  const COLOURS = ["#1b5e8c", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207", "#4d7c0f",
                   "#be185d", "#334155", "#0369a1", "#9a3412", "#166534", "#6b21a8"];
  const WIDTH = 560, HEIGHT = 260, LEFT = 48, RIGHT = 30, TOP = 12, BOTTOM = 54;

  function node(name, attributes, text) {
    const element = document.createElementNS(SVG, name);
    Object.entries(attributes || {}).forEach(([key, value]) => element.setAttribute(key, value));
    if (text !== undefined) element.textContent = text;
    return element;
  }

  // The axis top: four equal steps of a round size (whole numbers for counts), at least `value`.
  function niceMax(value, integer) {
    if (value <= 0) return integer ? 4 : 1;
    const quarter = value / 4;
    const power = Math.pow(10, Math.floor(Math.log10(quarter)));
    const factors = integer ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10];
    let step = factors.find((factor) => factor * power >= quarter) * power;
    if (integer) step = Math.max(1, Math.ceil(step));
    return 4 * step;
  }

  // series: [{name, values: [number|null per label]}]; options: {max, minTop, format, empty, integer}
  function line(container, labels, series, options) {
    options = options || {};
    const format = options.format || ((value) => String(Math.round(value * 10) / 10));
    const svg = node("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", class: "chart" });
    const values = series.flatMap((item) => item.values).filter((value) => value !== null && value !== undefined);
    container.replaceChildren(svg);
    if (!labels.length || !values.length) {
      svg.append(node("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", class: "empty" }, options.empty || ""));
      return svg;
    }
    const top = options.max !== undefined ? options.max
      : Math.max(niceMax(Math.max(...values), options.integer), options.minTop || 0);
    const plotWidth = WIDTH - LEFT - RIGHT, plotHeight = HEIGHT - TOP - BOTTOM;
    const x = (index) => LEFT + (labels.length === 1 ? plotWidth / 2 : index * plotWidth / (labels.length - 1));
    const y = (value) => TOP + plotHeight - (value / top) * plotHeight;
    for (let tick = 0; tick <= 4; tick += 1) {
      const value = top * tick / 4;
      svg.append(node("line", { x1: LEFT, x2: WIDTH - RIGHT, y1: y(value), y2: y(value), class: "grid" }));
      svg.append(node("text", { x: LEFT - 6, y: y(value) + 4, "text-anchor": "end", class: "tick" }, format(value)));
    }
    const every = Math.ceil(labels.length / 8);
    labels.forEach((label, index) => {
      if (index % every === 0 || index === labels.length - 1) {
        svg.append(node("text", { x: x(index), y: HEIGHT - BOTTOM + 16, "text-anchor": "middle", class: "tick" }, label));
      }
    });
    series.forEach((item, number) => {
      const colour = COLOURS[number % COLOURS.length];
      const group = node("g", { "data-series": item.name });
      let path = "";
      item.values.forEach((value, index) => {
        if (value === null || value === undefined) return;
        path += `${path && item.values[index - 1] !== null && item.values[index - 1] !== undefined ? "L" : "M"}${x(index)},${y(value)}`;
        const point = node("circle", { cx: x(index), cy: y(value), r: 3, fill: colour, "data-value": value });
        point.append(node("title", {}, `${item.name} ${labels[index]}: ${format(value)}`));
        group.append(point);
      });
      group.prepend(node("path", { d: path, fill: "none", stroke: colour, "stroke-width": 2 }));
      svg.append(group);
      const legendX = LEFT + (number % 4) * (plotWidth / 4);
      const legendY = HEIGHT - 18 + Math.floor(number / 4) * 14 - (series.length > 4 ? 10 : 0);
      svg.append(node("rect", { x: legendX, y: legendY - 8, width: 10, height: 10, fill: colour }));
      svg.append(node("text", { x: legendX + 14, y: legendY + 1, class: "legend" }, item.name));
    });
    return svg;
  }

  return { line };
}());
