/* chaoskit report: draws the journal's series with uPlot; fault windows shaded, events marked.
   Everything comes from the JSON block the report embeds: no network, no other input. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("chaoskit-data").textContent);
  var ratio = (window.uPlot && uPlot.pxRatio) || window.devicePixelRatio || 1;
  var SERIES = ["#1f6feb", "#d9480f", "#2b8a3e", "#7048e8", "#c2255c", "#0b7285"];
  var FAULTS = ["rgba(240,140,0,0.16)", "rgba(112,72,232,0.14)", "rgba(11,114,133,0.14)",
                "rgba(194,37,92,0.13)", "rgba(43,138,62,0.14)"];
  var FAULT_INK = ["#b35c00", "#5f3dc4", "#0b7285", "#a61e4d", "#2b8a3e"];
  var EVENT_INK = { "guardrail": "#e8590c", "abort": "#c92a2a", "inject-failed": "#c92a2a",
                    "revert-failed": "#c92a2a", "error": "#c92a2a", "probe-error": "#868e96" };
  var SECTION_TITLES = { traffic: "Traffic (load engine)", schedule: "Schedule lag",
                         offline: "Offline work", hypothesis: "Hypothesis",
                         guardrails: "Guardrails", history: "Over earlier runs",
                         capacity: "Capacity: each measure against the arrival rate" };
  var drawn = 0;

  function fmt(v) {
    if (v == null || isNaN(v)) return "-";
    var a = Math.abs(v);
    if (a !== 0 && (a < 0.001 || a >= 1e6)) return v.toExponential(2);
    return (+v.toPrecision(4)).toString();
  }

  function px(n) { return Math.round(n * ratio); }

  function font(size, weight) {
    return (weight || "") + " " + px(size) + "px system-ui, sans-serif";
  }

  function shadeFaults(u) {
    var ctx = u.ctx, box = u.bbox;
    ctx.save();
    data.faults.forEach(function (f, i) {
      var x0 = Math.max(u.valToPos(f.start, "x", true), box.left);
      var x1 = Math.min(u.valToPos(f.end, "x", true), box.left + box.width);
      if (x1 <= x0) return;
      ctx.fillStyle = FAULTS[i % FAULTS.length];
      ctx.fillRect(x0, box.top, x1 - x0, box.height);
      ctx.fillStyle = FAULT_INK[i % FAULT_INK.length];
      ctx.font = font(11, "600");
      ctx.textAlign = "left";  // uPlot leaves the alignment of its last axis label behind
      ctx.textBaseline = "top";
      var wide = ctx.measureText(f.name).width + px(6);
      var right = x0 + wide > box.left + box.width;
      ctx.textAlign = right ? "right" : "left";
      ctx.fillText(f.name, right ? x1 - px(3) : x0 + px(3), box.top + px(16 + 13 * i));
    });
    ctx.restore();
  }

  function drawPhases(u) {
    var ctx = u.ctx, box = u.bbox;
    ctx.save();
    ctx.strokeStyle = "#adb5bd";
    ctx.setLineDash([px(2), px(3)]);
    ctx.lineWidth = px(1);
    ctx.fillStyle = "#868e96";
    ctx.font = font(10);
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    var lastLabel = -1e9;
    data.phases.forEach(function (p) {
      var x = u.valToPos(p.from, "x", true);
      if (x < box.left - 1 || x > box.left + box.width) return;
      ctx.beginPath(); ctx.moveTo(x, box.top); ctx.lineTo(x, box.top + box.height); ctx.stroke();
      var end = u.valToPos(p.to, "x", true);
      if (x - lastLabel < px(50) || end - x < px(30)) return;  // too short to name legibly
      ctx.fillText(p.name, x + px(3), box.top + px(2));
      lastLabel = x;
    });
    ctx.restore();
  }

  function drawThresholds(u, plot) {
    var ctx = u.ctx, box = u.bbox;
    ctx.save();
    ctx.lineWidth = px(1.5);
    ctx.setLineDash([px(6), px(4)]);
    ctx.font = font(10, "600");
    ctx.textBaseline = "bottom";
    var previous = null;
    plot.thresholds.forEach(function (t) {
      var y = u.valToPos(t.value, "y", true);
      var x0 = Math.max(u.valToPos(t.from, "x", true), box.left);
      var x1 = Math.min(u.valToPos(t.to, "x", true), box.left + box.width);
      if (y < box.top || y > box.top + box.height || x1 <= x0) return;
      ctx.strokeStyle = ctx.fillStyle = t.held ? "#c92a2a" : "#e03131";
      ctx.beginPath(); ctx.moveTo(x0, y); ctx.lineTo(x1, y); ctx.stroke();
      var key = t.value + "/" + t.held;
      if (key === previous) return;  // label where the limit or its outcome changes
      previous = key;
      var text = (t.kind === "abort" ? "abort when > " : "limit ") + fmt(t.value);
      if (t.kind === "abort") text = t.label;
      ctx.textAlign = "right";
      ctx.fillText(text + (t.held ? "" : " ✗ failed here"), x1 - px(4), y - px(2));
      ctx.textAlign = "left";
    });
    ctx.restore();
  }

  function drawEvents(u) {
    var ctx = u.ctx, box = u.bbox;
    ctx.save();
    ctx.font = font(10, "600");
    ctx.textBaseline = "bottom";
    var lastX = -1e9, stack = 0;
    data.events.forEach(function (e) {
      var x = u.valToPos(e.t, "x", true);
      if (x < box.left || x > box.left + box.width) return;
      var minor = e.kind === "probe-error";
      ctx.strokeStyle = ctx.fillStyle = EVENT_INK[e.kind] || "#c92a2a";
      ctx.lineWidth = px(minor ? 1 : 2);
      ctx.setLineDash(minor ? [px(1), px(2)] : []);
      ctx.beginPath();
      ctx.moveTo(x, minor ? box.top + box.height - px(12) : box.top);
      ctx.lineTo(x, box.top + box.height);
      ctx.stroke();
      if (minor) return;
      stack = x - lastX < px(70) ? stack + 1 : 0;  // events at one moment: stack their names
      lastX = x;
      var nearEnd = x + ctx.measureText(e.kind).width + px(6) > box.left + box.width;
      ctx.textAlign = nearEnd ? "right" : "left";  // keep the name inside the plot
      ctx.fillText(e.kind, x + px(nearEnd ? -3 : 3), box.top + box.height - px(3 + 12 * stack));
    });
    ctx.restore();
  }

  function yRange(plot) {
    return function (u, min, max) {
      var values = plot.thresholds.map(function (t) { return t.value; });
      if (min != null) values.push(min, max);
      if (plot.zero) values.push(0);
      if (!values.length) return [0, 1];
      var lo = Math.min.apply(null, values), hi = Math.max.apply(null, values);
      var pad = (hi - lo) * 0.15 || Math.abs(hi) * 0.15 || 1;
      return [lo === 0 ? 0 : lo - pad, hi + pad];
    };
  }

  function axisOptions(plot, width, series) {
    /* a plot whose x is not the run's clock (earlier runs, arrival rates): no fault shading */
    var axis = plot.xaxis;
    series[0] = { label: axis.label, value: function (u, v) {
      if (v == null) return "-";
      return axis.labels ? (axis.labels[v - 1] || String(v)) : fmt(v) + (axis.unit || ""); } };
    return {
      title: plot.title, width: width, height: 210, series: series,
      scales: { x: { time: false }, y: { range: yRange(plot) } },
      axes: [{ label: axis.label, labelSize: 18, size: 36,
               values: function (u, splits) { return splits.map(function (v) {
                 return axis.labels ? (Number.isInteger(v) ? "#" + v : "") : fmt(v); }); } },
             { label: plot.unit || "", labelSize: plot.unit ? 18 : 0, size: 56,
               values: function (u, splits) { return splits.map(fmt); } }],
      hooks: { draw: [function (u) { markDrawn(u); }] }
    };
  }

  function options(plot, width) {
    var series = [{ label: "t (s)", value: function (u, v) { return v == null ? "-" : v.toFixed(2) + " s"; } }];
    plot.series.forEach(function (s, i) {
      series.push({ label: s.label + (plot.unit ? " (" + plot.unit + ")" : ""),
                    stroke: SERIES[i % SERIES.length], width: 1.5, spanGaps: true,
                    points: { show: plot.x.length < 80, size: 4 },
                    value: function (u, v) { return fmt(v); } });
    });
    if (plot.xaxis) return axisOptions(plot, width, series);
    return {
      title: plot.title, width: width, height: 210, series: series,
      scales: { x: { time: false, range: function () { return [0, Math.max(data.end, 0.001)]; } },
                y: { range: yRange(plot) } },
      axes: [{ label: "seconds since the run started", labelSize: 18, size: 36 },
             { label: plot.unit || "", labelSize: plot.unit ? 18 : 0, size: 56,
               values: function (u, splits) { return splits.map(fmt); } }],
      cursor: { sync: { key: "chaoskit" }, drag: { x: true, y: false } },
      hooks: {
        drawClear: [function (u) { shadeFaults(u); drawPhases(u); }],
        draw: [function (u) { drawThresholds(u, plot); drawEvents(u); markDrawn(u); }]
      }
    };
  }

  function markDrawn(u) {
    if (u._chaoskitDrawn) return;
    u._chaoskitDrawn = true;
    drawn += 1;
    document.body.setAttribute("data-plots-drawn", String(drawn));
  }

  function legend() {
    var box = document.getElementById("legend");
    var items = data.faults.map(function (f, i) {
      return '<span><span class="swatch" style="background:' + FAULTS[i % FAULTS.length] +
        '"></span>' + escape(f.name) + " (" + escape(f.type) + ") " + fmt(f.start) + "–" +
        fmt(f.end) + " s</span>";
    });
    items.push('<span><span class="swatch" style="background:#c92a2a"></span>limit (dashed) / abort</span>');
    items.push('<span><span class="swatch" style="background:#e8590c"></span>guardrail trip</span>');
    items.push("<span>drag to zoom, double-click to reset; the crosshair is shared</span>");
    box.innerHTML = items.join("");
  }

  function escape(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function sectionElement(root, name, cache) {
    if (!cache[name]) {
      var h = document.createElement("h3");
      h.textContent = SECTION_TITLES[name] || name;
      root.appendChild(h);
      cache[name] = document.createElement("div");
      root.appendChild(cache[name]);
    }
    return cache[name];
  }

  function draw() {
    var root = document.getElementById("plot-sections");
    var width = Math.max(480, Math.min(root.clientWidth || 1200, 1200));
    var cache = {}, charts = [];
    legend();
    data.plots.forEach(function (plot) {
      var el = document.createElement("div");
      el.className = "plot";
      el.id = "plot-" + plot.id;
      sectionElement(root, plot.section, cache).appendChild(el);
      if (!plot.x.length) {
        var empty = document.createElement("div");
        empty.className = "empty";
        empty.textContent = "no samples: the probe never answered";
        el.appendChild(empty);
      }
      var columns = [plot.x].concat(plot.series.map(function (s) { return s.values; }));
      charts.push(new uPlot(options(plot, width), columns, el));
    });
    window.addEventListener("resize", function () {
      var w = Math.max(480, Math.min(root.clientWidth, 1200));
      charts.forEach(function (c) { c.setSize({ width: w, height: 210 }); });
    });
  }

  draw();
})();
