/* Draws the server-built Plotly figures and keeps live charts fresh. Used by every portal page.
 *
 * <div class="chart" id="c" data-figure="c-data"></div> {{ figure|json_script:"c-data" }}
 *   draws the figure {data, layout, config}.
 * Add data-poll-url="/x.json" data-poll-seconds="20" to redraw trace 0 from the JSON's x and y,
 * and fill every element with data-live-source="c" data-live-field="name" from JSON field name.
 */
(function () {
  "use strict";

  function readFigure(el) {
    return JSON.parse(document.getElementById(el.dataset.figure).textContent);
  }

  function draw(el) {
    var figure = readFigure(el);
    el.mdmsFigure = figure;
    return Plotly.newPlot(el, figure.data, figure.layout, figure.config);
  }

  function formatField(name, value) {
    if (value === null || value === undefined) { return "—"; }
    if (/_at$/.test(name)) {
      return new Date(value).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
    }
    if (/_kw$/.test(name)) { return value.toFixed(2) + " kW"; }
    return String(value);
  }

  function applyLive(el, payload) {
    var update = {x: [payload.x], y: [payload.y]};
    Plotly.restyle(el, update, [0]);
    if (payload.x && payload.x.length) { Plotly.relayout(el, {annotations: []}); }
    document.querySelectorAll('[data-live-source="' + el.id + '"]').forEach(function (target) {
      target.textContent = formatField(target.dataset.liveField, payload[target.dataset.liveField]);
    });
    el.dataset.lastRefresh = new Date().toISOString();
  }

  function poll(el) {
    var seconds = parseInt(el.dataset.pollSeconds || "20", 10);
    function refresh() {
      if (document.hidden) { return; }  // a background tab does not need fresh power
      fetch(el.dataset.pollUrl, {credentials: "same-origin", headers: {Accept: "application/json"}})
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (payload) { if (payload) { applyLive(el, payload); } })
        .catch(function () { /* the next tick tries again; a blip must not stop the refresh */ });
    }
    setInterval(refresh, seconds * 1000);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) { refresh(); } });
  }

  function drawAll(root) {
    (root || document).querySelectorAll("[data-figure]").forEach(function (el) {
      draw(el);
      if (el.dataset.pollUrl) { poll(el); }
    });
  }

  window.MDMS = window.MDMS || {};
  window.MDMS.charts = {draw: draw, drawAll: drawAll, poll: poll};
  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
})();
