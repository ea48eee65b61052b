/* The claim tracker follows the claim: it asks GET /api/v1/claims/{id} every 3 seconds
 * and reloads the page when the stage changes or a new step appears on the timeline.
 * If the customer has chosen a file to upload, it does not reload under them: it shows
 * a link instead.  The claim form's button is disabled while the form is sent (the
 * server answers a second tap with the first claim anyway).  Without the script the
 * page offers a refresh link.
 */
(function () {
  "use strict";

  var form = document.querySelector("[data-claim-form]");
  if (form) {
    form.addEventListener("submit", function () {
      var button = form.querySelector("[data-claim-submit]");
      if (button) {
        button.classList.add("is-busy");
        window.setTimeout(function () { button.disabled = true; }, 0);
      }
    });
  }

  var box = document.querySelector("[data-poll]");
  if (!box || !window.fetch) {
    return;
  }
  var url = box.getAttribute("data-poll");
  var stage = box.getAttribute("data-claim-stage");
  var events = parseInt(box.getAttribute("data-claim-events") || "0", 10);
  var EVERY_MS = 3000;
  var MAX_TRIES = 1200; /* an hour, then the page stays as it is */
  var tries = 0;

  function choosing() {
    var files = document.querySelectorAll("input[type='file']");
    for (var i = 0; i < files.length; i += 1) {
      if (files[i].files && files[i].files.length) {
        return true;
      }
    }
    return false;
  }

  function later() {
    tries += 1;
    if (tries <= MAX_TRIES) {
      window.setTimeout(poll, EVERY_MS);
    }
  }

  function changed() {
    if (choosing()) {
      var note = document.querySelector("[data-poll-changed]");
      if (note) {
        note.hidden = false;
      }
      later();
      return;
    }
    window.location.reload();
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (answer) {
        if (answer && (answer.stage !== stage || (answer.timeline || []).length !== events)) {
          changed();
          return;
        }
        later();
      })
      .catch(later);
  }

  later();
})();
