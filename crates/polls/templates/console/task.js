// A console task's page: while the task runs, its lines arrive as server-sent events and are
// appended; its outcome replaces "Running…" at the end.
(function () {
  "use strict";
  var lines = document.getElementById("lines");
  var outcome = document.getElementById("outcome");
  if (!lines || !outcome || outcome.dataset.outcome !== "running") {
    return;
  }
  var events = new EventSource(lines.dataset.events);
  events.addEventListener("line", function (event) {
    var line = document.createElement("li");
    line.textContent = event.data;
    lines.appendChild(line);
  });
  events.addEventListener("done", function (event) {
    outcome.dataset.outcome = event.data;
    outcome.textContent = event.data === "ok" ? "Done." : "Failed.";
    events.close();
  });
})();
