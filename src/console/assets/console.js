// Optional: the pages are complete without it. It shows times in the
// browser's zone, filters the fleet as you type, and refreshes the page's
// content every few seconds without a reload.
"use strict";
(function () {
  var dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
  var timeOnly = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  var dayOnly = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

  function relative(ms) {
    var s = Math.round((Date.now() - ms) / 1000), future = s < 0, n = Math.abs(s), text;
    if (n < 60) text = n + "s";
    else if (n < 3600) text = Math.floor(n / 60) + "m";
    else if (n < 86400) text = Math.floor(n / 3600) + "h";
    else text = Math.floor(n / 86400) + "d";
    return future ? "in " + text : text + " ago";
  }

  function localTimes(root) {
    root.querySelectorAll("time[data-ms]").forEach(function (el) {
      var ms = Number(el.dataset.ms);
      el.textContent = dateTime.format(new Date(ms));
      var rel = el.nextElementSibling;
      if (rel && rel.classList.contains("rel")) rel.textContent = "(" + relative(ms) + ")";
    });
    root.querySelectorAll("text[data-ms]").forEach(function (el) {
      var d = new Date(Number(el.dataset.ms));
      el.textContent = el.dataset.fmt === "date" ? dayOnly.format(d) : timeOnly.format(d);
    });
  }

  function applyFilter() {
    var box = document.getElementById("filter");
    if (!box) return;
    var needle = box.value.trim().toLowerCase();
    document.querySelectorAll("[data-filter]").forEach(function (el) {
      el.hidden = needle !== "" && el.dataset.filter.toLowerCase().indexOf(needle) < 0;
    });
  }

  // The address follows the box, so a refresh (or a reload) fetches what is shown.
  function rememberFilter() {
    var box = document.getElementById("filter");
    if (!box) return;
    var url = new URL(location.href);
    if (box.value.trim() === "") url.searchParams.delete("q");
    else url.searchParams.set("q", box.value.trim());
    history.replaceState(null, "", url.toString());
  }

  // One refresh at a time: the next is scheduled when this one is done, so a
  // slow store is never asked twice at once by the same page.
  function refresh(every) {
    var live = document.getElementById("live");
    var again = function () { setTimeout(function () { refresh(every); }, every * 1000); };
    if (!live || document.hidden) return again();
    fetch(location.href, { headers: { "X-Hapwatch-Refresh": "1" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (text) {
        var next = new DOMParser().parseFromString(text, "text/html").getElementById("live");
        if (!next) return;
        live.replaceChildren.apply(live, Array.prototype.slice.call(next.childNodes));
        var stamp = document.getElementById("updated");
        if (stamp) stamp.dataset.ms = String(Date.now());
        localTimes(document);
        applyFilter();
        live.dataset.refreshed = String(Number(live.dataset.refreshed || "0") + 1);
      })
      .catch(function () { /* the next turn tries again */ })
      .then(again);
  }

  document.addEventListener("input", function (e) {
    if (e.target && e.target.id === "filter") {
      applyFilter();
      rememberFilter();
    }
  });
  localTimes(document);
  applyFilter();
  var live = document.getElementById("live");
  var every = live ? Number(live.dataset.refresh || "0") : 0;
  if (every > 0) setTimeout(function () { refresh(every); }, every * 1000);
})();
