// otaforge dashboard: live updates by polling the page's #live part (no framework, no CDN).
"use strict";
(function () {
  var live = document.getElementById("live");
  if (!live || live.dataset.live !== "on") { return; }
  var every = 5000;
  function busy() {
    var el = document.activeElement;
    return el && el !== document.body && live.contains(el) &&
      /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName);
  }
  function poll() {
    if (document.hidden || busy()) { return schedule(); }
    fetch(window.location.href, {headers: {"X-Partial": "1"}, credentials: "same-origin"})
      .then(function (r) {
        if (r.redirected || !r.ok) { throw new Error("status " + r.status); }
        return r.text();
      })
      .then(function (html) {
        live.innerHTML = html;
        live.dataset.updated = String(Date.now());
        document.dispatchEvent(new CustomEvent("otaforge:updated"));
      })
      .catch(function () { live.dataset.stale = "1"; })
      .then(schedule);
  }
  function schedule() { window.setTimeout(poll, every); }
  schedule();
})();
