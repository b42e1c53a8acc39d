// Refreshes the queue's rows every 30 seconds without reloading the page: the server renders the
// fragment (escaped like the page itself), this only swaps it in. Nothing else, nothing from elsewhere.
(function () {
  "use strict";
  var box = document.getElementById("queue-rows");
  if (!box || !window.fetch) { return; }
  function refresh() {
    if (document.hidden) { return; }
    fetch(box.getAttribute("data-src"), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) { if (html !== null) { box.innerHTML = html; } })
      .catch(function () { /* the next tick tries again */ });
  }
  window.setInterval(refresh, 30000);
  var form = document.getElementById("filters");
  if (form) {
    Array.prototype.forEach.call(form.querySelectorAll("select, input[type=checkbox]"), function (el) {
      el.addEventListener("change", function () { form.submit(); });
    });
  }
})();
