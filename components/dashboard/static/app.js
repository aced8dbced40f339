// kiln dashboard: live updates. Every page works without this script;
// with it, the page listens to /events/stream and, when the cluster's
// version moves past the one the page was rendered at, fetches the same
// URL with ?fragment=1 and swaps the <main> element's content. The
// fragment is HTML rendered by the server with html/template, so every
// string from the cluster in it is already escaped; and the page's
// Content-Security-Policy runs no inline script whatever it contains.
(function () {
  "use strict";
  var main = document.getElementById("main");
  var live = document.getElementById("live");
  if (!main || !window.EventSource || !window.fetch) {
    return;
  }
  var version = main.getAttribute("data-version");
  var busy = false;
  var again = false;

  function setLive(state, text) {
    if (!live) {
      return;
    }
    live.hidden = false;
    live.className = "live " + state;
    live.textContent = text;
  }

  function fragmentURL() {
    var u = new URL(window.location.href);
    u.searchParams.set("fragment", "1");
    return u.toString();
  }

  // openDetails remembers which <details> are open, by their summary's
  // text, so a swap does not fold the log lines a person is reading.
  function openDetails() {
    var open = {};
    main.querySelectorAll("details[open] > summary").forEach(function (s) {
      open[s.textContent] = true;
    });
    return open;
  }

  function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    fetch(fragmentURL(), { credentials: "same-origin", cache: "no-store", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (!r.ok) {
          throw new Error("status " + r.status);
        }
        var v = r.headers.get("X-Kiln-Version");
        return r.text().then(function (html) {
          return { v: v, html: html };
        });
      })
      .then(function (res) {
        var open = openDetails();
        main.innerHTML = res.html;
        main.querySelectorAll("details > summary").forEach(function (s) {
          if (open[s.textContent]) {
            s.parentElement.open = true;
          }
        });
        if (res.v) {
          version = res.v;
          main.setAttribute("data-version", version);
        }
        setLive("on", "live");
      })
      .catch(function () {
        setLive("off", "update failed");
      })
      .then(function () {
        busy = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }

  var stream = new EventSource("/events/stream");
  stream.addEventListener("version", function (e) {
    setLive("on", "live");
    // Numbers, not strings: a push older than the page asks for nothing.
    if (Number(e.data) > Number(version)) {
      refresh();
    }
  });
  stream.onerror = function () {
    setLive("off", "reconnecting…");
  };
})();
