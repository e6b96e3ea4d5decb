/* The dashboard's only script: keeps the progress of a running send up to date.
   Without it the pages still work; the numbers are simply those of the last load. */
(function () {
  "use strict";
  var script = document.currentScript;
  var url = (script && script.dataset.progressUrl) || "/admin/digests/progress.json";
  // On the overview and the digests page every unfinished digest is shown, so
  // one that appears means the page is out of date; a digest's own page shows one.
  var listsAll = !!(script && script.dataset.listsAll === "true");
  var every = 3000;
  var sendWasRunning = null;

  function shownStatuses() {
    var shown = {};
    document.querySelectorAll(".progress-block[data-digest-id]").forEach(function (block) {
      shown[block.dataset.digestId] = block.dataset.status;
    });
    return shown;
  }

  function fill(block, digest) {
    var bar = block.querySelector("progress.progress");
    bar.value = digest.percent;
    bar.textContent = digest.percent + "%";
    block.querySelectorAll("[data-field]").forEach(function (field) {
      var value = digest[field.dataset.field];
      if (value !== undefined) { field.textContent = value; }
    });
  }

  function update(data) {
    var shown = shownStatuses();
    var running = {};
    var changed = false;
    data.digests.forEach(function (digest) {
      running[digest.id] = true;
      if (digest.id in shown ? shown[digest.id] !== digest.status : listsAll) { changed = true; }
      document.querySelectorAll('.progress-block[data-digest-id="' + digest.id + '"]').forEach(function (block) {
        fill(block, digest);
      });
    });
    Object.keys(shown).forEach(function (id) { if (!running[id]) { changed = true; } });
    if (sendWasRunning !== null && sendWasRunning !== data.send.running) { changed = true; }
    sendWasRunning = data.send.running;
    // A digest started, finished or was paused elsewhere: the buttons and
    // tables of the page are out of date, so load it again.
    if (changed) { window.location.reload(); return false; }
    return data.digests.length > 0 || data.send.running;
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (data && update(data)) { window.setTimeout(poll, every); }
      })
      .catch(function () { window.setTimeout(poll, every * 5); });
  }

  // A select marked data-autosubmit (the preview's language) sends its form when changed:
  // here, not in an onchange attribute, which the pages' Content-Security-Policy refuses.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  var log = document.getElementById("send-log");
  if (log) { sendWasRunning = log.dataset.running === "true"; }
  if (document.querySelector(".progress-block[data-digest-id]") || sendWasRunning) {
    window.setTimeout(poll, every);
  }
})();
