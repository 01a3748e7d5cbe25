// kassa's PIX page: copies the copy-and-paste code, and reloads the page when the order's
// status changes (polling its small JSON endpoint; at most one hour).
(function () {
  "use strict";
  var copy = document.getElementById("copy");
  var code = document.getElementById("code");
  if (copy && code) {
    copy.addEventListener("click", function () {
      code.select();
      // The confirmation in the page's language, announced by screen readers (a live region).
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
  var main = document.querySelector("main[data-status-url]");
  if (!main) return;
  var state = main.getAttribute("data-state");
  var url = main.getAttribute("data-status-url");
  var polls = 0;
  function poll() {
    if (++polls > 1200) return;
    fetch(url, { cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        if (s.state !== state) location.reload();
        else setTimeout(poll, 3000);
      })
      .catch(function () { setTimeout(poll, 6000); });
  }
  setTimeout(poll, 3000);
})();
