/* Red envelope pages, both working without this script:
 * - the sender's page: the copy button (shown only when the script runs) copies the
 *   share link; without it the link is in a read-only field to select by hand;
 * - the send form: the preview (cover per share, total premium) follows the form as it
 *   changes, with the same figures the server computes (the preview button asks the
 *   server when the script does not run).
 */
(function () {
  "use strict";

  function copyLink(button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field) {
      return;
    }
    var done = function () {
      button.textContent = button.getAttribute("data-copied");
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(field.value).then(done, function () {
        field.select();
      });
    } else {
      field.select();
      try {
        if (document.execCommand("copy")) {
          done();
        }
      } catch (e) {
        /* the text stays selected for a manual copy */
      }
    }
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-copy]"), function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      copyLink(button);
    });
  });

  var form = document.querySelector("[data-envelope-form]");
  var preview = document.querySelector("[data-envelope-preview]");
  if (!form || !preview) {
    return;
  }
  var MAX = parseInt(form.querySelector("[name=shares]").getAttribute("max"), 10);

  function yuan(fen) {
    var whole = Math.floor(fen / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    var cents = (fen % 100).toString();
    return "\u00a5" + whole + "." + (cents.length < 2 ? "0" + cents : cents);
  }

  function put(name, text) {
    var node = preview.querySelector("[data-preview='" + name + "']");
    if (node) {
      node.textContent = text;
    }
  }

  function update() {
    var option = form.querySelector("[name=option]:checked");
    var shares = parseInt(form.querySelector("[name=shares]").value, 10);
    var split = form.querySelector("[name=split]:checked");
    if (!option || !(shares >= 1 && shares <= MAX)) {
      return; /* the server names the problem when the form is sent */
    }
    var premium = parseInt(option.getAttribute("data-premium-fen"), 10);
    var cover = parseInt(option.getAttribute("data-cover-fen"), 10);
    var floor = parseInt(option.getAttribute("data-floor-fen"), 10);
    var random = split && split.value === "random" && shares > 1;
    put("shares", String(shares));
    put("cover_each", yuan(cover));
    put("cover_floor", yuan(Math.floor((cover * floor) / premium)));
    put("total_cover", yuan(cover * shares));
    put("total_premium", yuan(premium * shares));
    preview.querySelector("[data-preview-row='equal']").hidden = random;
    preview.querySelector("[data-preview-row='random']").hidden = !random;
  }

  form.addEventListener("input", update);
  form.addEventListener("change", update);
})();
