/* Live fragments for the staff pages: a part of the page that fetches its own fresh HTML.
 *
 * <div data-fragment-url="/billing/reads/list/" data-fragment-seconds="2">...</div>
 * replaces its content with the URL's response every few seconds while the tab is visible.
 * Add data-fragment-until="selector": polling stops once nothing in it matches the selector
 * (for instance no pending read is left), and starts again on the next page load.
 */
(function () {
  "use strict";

  function start(el) {
    var seconds = parseFloat(el.dataset.fragmentSeconds || "5");
    var timer = null;
    if (el.dataset.fragmentUntil && !el.querySelector(el.dataset.fragmentUntil)) { return; }  // nothing live
    function refresh() {
      if (document.hidden) { return; }
      fetch(el.dataset.fragmentUrl, {credentials: "same-origin", headers: {Accept: "text/html"}})
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (html === null) { return; }
          el.innerHTML = html;
          el.dataset.lastRefresh = new Date().toISOString();
          if (el.dataset.fragmentUntil && !el.querySelector(el.dataset.fragmentUntil)) {
            clearInterval(timer);
          }
        })
        .catch(function () { /* the next tick tries again */ });
    }
    timer = setInterval(refresh, seconds * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-fragment-url]").forEach(start);
  });
})();
