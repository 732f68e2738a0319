/* Tally explorer: live updates. The explorer's /explorer/events stream announces each
 * committed block; this script tells htmx, and the parts of the page marked with
 * hx-trigger="tally:block from:body" fetch their fresh HTML. At most one refresh a second. */
(function () {
  "use strict";
  var url = document.body.getAttribute("data-events");
  var indicator = document.getElementById("live-indicator");
  var label = document.getElementById("live-text");
  var pending = null;
  var lastRefresh = 0;

  function show(state, text) {
    if (!indicator) return;
    indicator.setAttribute("data-state", state);
    label.textContent = text;
  }

  function refresh() {
    pending = null;
    lastRefresh = Date.now();
    if (window.htmx) window.htmx.trigger(document.body, "tally:block");
  }

  function schedule() {
    if (pending) return;
    var wait = Math.max(100, 1000 - (Date.now() - lastRefresh));
    pending = window.setTimeout(refresh, wait);
  }

  // Rows that a live refresh brings in are highlighted for a moment.
  var seen = null;
  document.body.addEventListener("htmx:beforeSwap", function () {
    seen = {};
    document.querySelectorAll("tr[data-height]").forEach(function (row) {
      seen[row.getAttribute("data-height")] = true;
    });
  });
  document.body.addEventListener("htmx:afterSettle", function () {
    if (!seen) return;
    document.querySelectorAll("tr[data-height]").forEach(function (row) {
      if (!seen[row.getAttribute("data-height")]) row.classList.add("fresh");
    });
    seen = null;
  });

  if (!url || !window.EventSource) {
    show("off", "not live");
    return;
  }
  var source = new EventSource(url);
  source.addEventListener("hello", function () { show("on", "live"); });
  source.addEventListener("block", function (event) {
    var data = {};
    try { data = JSON.parse(event.data); } catch (e) { data = {}; }
    show("on", "block " + (data.height || "?"));
    if (indicator) {
      indicator.classList.remove("pulse");
      void indicator.offsetWidth;
      indicator.classList.add("pulse");
    }
    schedule();
  });
  source.onerror = function () { show("off", "reconnecting"); };
  window.addEventListener("pagehide", function () { source.close(); });
})();
