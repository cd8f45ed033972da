/* mora wizard: refresh the regions marked data-live="URL" every 2 s.
 * The pages work without this script; it only saves a reload while an update runs.
 * A 401 (the session ended) stops the polling; nothing here touches form fields. */
(function () {
  "use strict";
  var regions = Array.prototype.slice.call(document.querySelectorAll("[data-live]"));
  if (!regions.length || !window.fetch) { return; }
  var last = new Map();
  var timer = null;

  function refresh() {
    if (document.hidden) { return; }
    regions.forEach(function (el) {
      fetch(el.getAttribute("data-live"), {
        credentials: "same-origin",
        headers: { "Accept": "text/html" },
        cache: "no-store"
      }).then(function (response) {
        if (response.status === 401) { window.clearInterval(timer); return null; }
        return response.ok ? response.text() : null;
      }).then(function (html) {
        if (html === null || html === undefined || last.get(el) === html) { return; }
        if (el.contains(document.activeElement) && document.activeElement !== document.body) {
          return; /* do not pull a button from under the keyboard focus */
        }
        last.set(el, html);
        el.innerHTML = html;
      }).catch(function () { /* the manager restarts: try again next time */ });
    });
  }

  timer = window.setInterval(refresh, 2000);
})();
