// New documents without watching the screen: every few seconds the page asks the node for the
// office's unread counts, shows them in the tab title and the menu, and reloads the list on the
// first page of the inbox when a message has arrived. Everything works without this script.
(function () {
  "use strict";
  var body = document.body;
  var office = body.getAttribute("data-office");
  if (!office || !window.fetch || !window.DOMParser) {
    return;
  }
  var url = "/offices/" + encodeURIComponent(office) + "/inbox/unread.json";
  var INTERVAL_MS = 15000;
  var list = document.getElementById("inbox-list");
  var latest = list ? list.getAttribute("data-latest") : null;
  var baseTitle = document.title.replace(/^\(\d+\) /, "");
  var timer = null;

  function show(counts) {
    document.title = (counts.unread > 0 ? "(" + counts.unread + ") " : "") + baseTitle;
    document.querySelectorAll("[data-count]").forEach(function (el) {
      var value = counts[el.getAttribute("data-count")];
      if (typeof value === "number") {
        el.textContent = String(value);
      }
    });
    document.querySelectorAll(".nav-unread").forEach(function (el) {
      el.hidden = counts.unread === 0;
    });
  }

  function announce() {
    var notice = document.getElementById("live-notice");
    if (notice) {
      notice.textContent = notice.getAttribute("data-new") || "";
    }
  }

  function reloadList() {
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) {
          return;
        }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("inbox-list");
        if (fresh && list) {
          list.replaceWith(fresh);
          list = fresh;
        }
      })
      .catch(function () {});
  }

  function poll() {
    timer = null;
    fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (counts) {
        if (!counts) {
          return;
        }
        show(counts);
        var newest = String(counts.latest);
        if (latest !== null && newest !== latest) {
          latest = newest;
          announce();
          if (list && list.getAttribute("data-live-list") === "1") {
            reloadList();
          }
        }
      })
      .catch(function () {})
      .then(schedule);
  }

  function schedule() {
    if (timer === null) {
      timer = window.setTimeout(poll, INTERVAL_MS);
    }
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && timer !== null) {
      window.clearTimeout(timer);
      poll();
    }
  });
  schedule();
})();
