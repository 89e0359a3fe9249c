// watchkeeper dashboard: refreshes the page's live part in place, runs the SLA countdowns
// on the collector's clock, and says plainly when the page has lost contact.
// No framework, no build step: this file is served as it is.
(function () {
  "use strict";

  var body = document.body;
  var live = document.getElementById("live");
  var updated = document.getElementById("last-updated");
  var banner = document.getElementById("lost-contact");
  var refresh = parseInt(body.getAttribute("data-refresh") || "2000", 10);
  var SOON = 15 * 60; // seconds: a clock this close to its due time is marked "soon"

  // Collector clock minus this browser's clock, in seconds (from X-Server-Time).
  var serverTime = parseFloat(body.getAttribute("data-server-time"));
  var offset = isNaN(serverTime) ? 0 : serverTime - Date.now() / 1000;
  var lastUpdate = isNaN(serverTime) ? Date.now() / 1000 : serverTime;
  var lastHtml = null;
  var lostSince = null;

  function now() { return Date.now() / 1000 + offset; }

  function duration(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    function two(n) { return (n < 10 ? "0" : "") + n; }
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + two(s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + two(Math.floor(s % 3600 / 60)) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor(s % 86400 / 3600) + "h";
  }

  function clockTime(epoch) {
    var d = new Date(epoch * 1000);
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return two(d.getUTCHours()) + ":" + two(d.getUTCMinutes()) + ":" + two(d.getUTCSeconds()) + " UTC";
  }

  function tick() {
    var t = now();
    var clocks = document.querySelectorAll("[data-due]");
    for (var i = 0; i < clocks.length; i++) {
      var el = clocks[i];
      var left = parseFloat(el.getAttribute("data-due")) - t;
      var state = left < 0 ? "breached" : (left < SOON ? "soon" : "running");
      el.setAttribute("data-state", state);
      var text = el.querySelector(".clock-text");
      if (text) text.textContent = left < 0 ? "overdue " + duration(-left) : duration(left) + " left";
      var shape = el.querySelector(".shape");
      if (shape) shape.textContent = left < 0 ? "\u2716" : "\u25F7";
    }
    if (updated) {
      var ago = now() - lastUpdate;
      updated.textContent = "Updated " + clockTime(lastUpdate) + (ago >= 10 ? " (" + duration(ago) + " ago)" : "");
      updated.setAttribute("data-at", lastUpdate.toFixed(3));
    }
    if (lostSince !== null && banner) {
      var text2 = banner.querySelector(".lost-text");
      if (text2) {
        text2.textContent = "No answer since " + clockTime(lastUpdate) + " (" + duration(now() - lastUpdate) +
          " ago): what you see may be out of date. Retrying every " + duration(refresh / 1000) + ".";
      }
    }
  }

  function setLost(lost, why) {
    if (!banner) return;
    if (lost) {
      if (lostSince === null) lostSince = now();
      banner.hidden = false;
      body.classList.add("is-lost");
      banner.setAttribute("data-why", why || "");
    } else {
      lostSince = null;
      banner.hidden = true;
      body.classList.remove("is-lost");
    }
  }

  function schedule() {
    var wait = document.hidden ? Math.max(refresh, 30000) : refresh;
    window.setTimeout(poll, wait);
  }

  function poll() {
    var controller = window.AbortController ? new AbortController() : null;
    var timer = window.setTimeout(function () { if (controller) controller.abort(); }, Math.max(2 * refresh, 5000));
    fetch(window.location.href, {
      headers: { "X-Live": "1" },
      credentials: "same-origin",
      cache: "no-store",
      signal: controller ? controller.signal : undefined
    }).then(function (response) {
      window.clearTimeout(timer);
      if (response.status === 401) {
        var here = window.location.pathname + window.location.search;
        window.location.assign("/login?next=" + encodeURIComponent(here));
        return null;
      }
      if (!response.ok) throw new Error("the collector answered HTTP " + response.status);
      var stamp = parseFloat(response.headers.get("X-Server-Time"));
      if (!isNaN(stamp)) { offset = stamp - Date.now() / 1000; lastUpdate = stamp; }
      return response.text().then(function (html) {
        if (html !== lastHtml) {
          live.innerHTML = html;
          lastHtml = html;
        }
        setLost(false);
        tick();
        schedule();
      });
    }).catch(function (error) {
      window.clearTimeout(timer);
      setLost(true, String(error && error.message || error));
      tick();
      schedule();
    });
  }

  if (live && updated) {
    tick();
    window.setInterval(tick, 1000);
    schedule();
  }
})();
