/* The application status page refreshes itself while the payment is pending: it asks
 * GET /api/v1/applications/{id} every 2 seconds and reloads the page when the status
 * (or the payment's) changes.  Without the script the page offers a refresh link.
 */
(function () {
  "use strict";

  var box = document.querySelector("[data-poll]");
  if (!box || !window.fetch) {
    return;
  }
  var url = box.getAttribute("data-poll");
  var status = box.getAttribute("data-application-status");
  var paymentStatus = box.getAttribute("data-payment-status") || null;
  var EVERY_MS = 2000;
  var MAX_TRIES = 450; /* 15 minutes, then the page stays as it is */
  var tries = 0;

  function later() {
    tries += 1;
    if (tries <= MAX_TRIES) {
      window.setTimeout(poll, EVERY_MS);
    }
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (answer) {
        if (answer && (answer.status !== status || (answer.payment_status || null) !== paymentStatus)) {
          window.location.reload();
          return;
        }
        later();
      })
      .catch(later);
  }

  later();
})();
