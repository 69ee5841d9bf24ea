// aci-reconciler status page: refresh <main> in place from `?fragment=1` (server-rendered, escaped HTML),
// say when the data is stale, and filter as you type. The page reads fine without it.
(function () {
  "use strict";
  var main = document.getElementById("main");
  var freshness = document.getElementById("freshness");
  if (!main || !main.dataset.refresh) { return; }
  var interval = Math.max(500, Number(main.dataset.interval) || 3000);
  var lastOk = Date.now();
  var failing = null;
  var busy = false;
  var queued = false;

  function fragmentUrl() {
    var url = new URL(main.dataset.refresh, window.location.href);
    new URLSearchParams(window.location.search).forEach(function (value, key) {
      if (key !== "fragment") { url.searchParams.set(key, value); }
    });
    url.searchParams.set("fragment", "1");
    return url;
  }

  function showFresh(doc) {
    var template = doc.getElementById("fresh-data");
    if (template && freshness) {
      freshness.replaceChildren(document.importNode(template.content, true));
      freshness.classList.remove("stale");
    }
  }

  function showStale(reason) {
    if (!freshness) { return; }
    var seconds = Math.round((Date.now() - lastOk) / 1000);
    freshness.textContent = "Stale: " + reason + "; the data is " + seconds + "s old";
    freshness.classList.add("stale");
  }

  async function refresh() {
    if (busy) { queued = true; return; }
    busy = true;
    try {
      var response = await fetch(fragmentUrl(), { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) { throw new Error("the daemon answered " + response.status); }
      var doc = new DOMParser().parseFromString(await response.text(), "text/html");
      var openDetails = Array.prototype.map.call(main.querySelectorAll("details"), function (d) { return d.open; });
      main.replaceChildren.apply(main, Array.prototype.map.call(doc.body.childNodes, function (n) {
        return document.importNode(n, true);
      }));
      main.querySelectorAll("details").forEach(function (d, i) {
        if (i < openDetails.length) { d.open = openDetails[i]; }
      });
      lastOk = Date.now();
      failing = null;
      showFresh(doc);
    } catch (err) {
      failing = (err && err.message) || "cannot reach the daemon";
      showStale(failing);
    } finally {
      busy = false;
      if (queued) { queued = false; refresh(); }
    }
  }

  window.setInterval(refresh, interval);
  window.setInterval(function () { if (failing) { showStale(failing); } }, 1000);

  var form = document.getElementById("filter");
  if (form) {
    var timer = null;
    form.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(function () {
        var params = new URLSearchParams(new FormData(form));
        Array.from(params.keys()).forEach(function (k) { if (!params.get(k)) { params.delete(k); } });
        var query = params.toString();
        window.history.replaceState(null, "", query ? "?" + query : window.location.pathname);
        refresh();
      }, 200);
    });
    form.addEventListener("submit", function (event) { event.preventDefault(); refresh(); });
  }
})();
