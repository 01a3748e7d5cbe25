// kassa's PIX page: copies the copy-and-paste code (the confirmation announced by screen
// readers), counts down to the order's deadline (the deadline itself is in the page as text),
// and reloads the page when the order's status changes — asking its small JSON endpoint for the
// order's whole lifetime, as a long poll (the server answers when the order changes), backing
// off from 3 s to 30 s whenever the server answers at once or fails.
(function () {
  "use strict";
  var copy = document.getElementById("copy");
  var code = document.getElementById("code");
  if (copy && code) {
    copy.addEventListener("click", function () {
      code.select();
      var done = function () {
        var said = copy.getAttribute("data-copied") || "";
        copy.textContent = said;
        var status = document.getElementById("copied");
        if (status) status.textContent = said;
      };
      if (navigator.clipboard) {
        navigator.clipboard.writeText(code.value).then(done, function () {
          document.execCommand("copy");
          done();
        });
      } else {
        document.execCommand("copy");
        done();
      }
    });
  }

  var time = document.querySelector("time[datetime]");
  var countdown = document.getElementById("countdown");
  var deadline = time ? Date.parse(time.getAttribute("datetime")) : NaN;
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function tick() {
    var left = Math.max(0, Math.floor((deadline - Date.now()) / 1000));
    countdown.textContent = "(" + pad(Math.floor(left / 3600)) + ":" + pad(Math.floor(left / 60) % 60) +
      ":" + pad(left % 60) + ")";
    if (left > 0) setTimeout(tick, 1000);
  }
  if (countdown && !isNaN(deadline)) tick();

  var main = document.querySelector("main[data-status-url]");
  if (!main) return;
  var state = main.getAttribute("data-state");
  var url = main.getAttribute("data-status-url");
  // Until a minute after the deadline (the sweep then has failed the order), or 25 h at most.
  var until = Math.min(isNaN(deadline) ? Date.now() + 3600e3 : deadline + 60e3, Date.now() + 25 * 3600e3);
  var wait = 3000;
  // A long poll: the server holds the request until the order leaves the state shown (or
  // 20 s). An answer that came at once (the server busy, or the network) backs off instead.
  function poll() {
    if (Date.now() > until) return;
    var asked = Date.now();
    fetch(url + "?wait=" + encodeURIComponent(state), { cache: "no-store" })
      .then(function (r) {
        if (!r.ok) throw new Error("status " + r.status);
        return r.json();
      })
      .then(function (s) {
        if (s.state !== state) location.reload();
        else if (Date.now() - asked > 5000) { wait = 3000; poll(); }
        else later();
      })
      .catch(later);
  }
  function later() {
    wait = Math.min(wait * 1.5, 30000);
    setTimeout(poll, wait);
  }
  poll();
})();
