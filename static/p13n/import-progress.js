// Admin: keeps an import job's progress bar current until the job finishes,
// then reloads the page to show the final counts and the rejects link.
(function () {
  "use strict";
  function watch(box) {
    var url = box.getAttribute("data-progress-url");
    var bar = box.querySelector("progress");
    var text = box.querySelector("[data-progress-text]");
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (job) {
          if (job.total_rows !== null) bar.max = Math.max(job.total_rows, 1);
          bar.value = job.processed;
          text.textContent =
            job.processed + " of " + (job.total_rows === null ? "?" : job.total_rows) +
            " rows: " + job.stored + " stored, " + job.duplicates + " already there, " +
            job.rejected + " rejected";
          if (job.finished) window.location.reload();
          else window.setTimeout(poll, 1000);
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    poll();
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-progress-url][data-finished='false']").forEach(watch);
  });
})();
