/* The apply form, one step at a time.  Without this script every step shows on one
 * page and the form posts the same fields.  It also records when each step was shown
 * (the hidden shown.<document> inputs, R13), keeps a step from being left with its
 * confirmation unticked or a health question unanswered, shows the insured's and the
 * named beneficiaries' fields only when they apply, and sends the form once.
 */
(function () {
  "use strict";

  var form = document.querySelector("[data-apply-form]");
  var dataElement = document.getElementById("apply-data");
  if (!form || !dataElement) {
    return;
  }
  var text = JSON.parse(dataElement.textContent);
  var steps = Array.prototype.slice.call(form.querySelectorAll("[data-step]"));
  var current = 0;

  function stamp(step) {
    var now = new Date().toISOString();
    step.querySelectorAll("[data-shown]").forEach(function (input) {
      input.value = now;
    });
  }

  function problem(step, message) {
    var box = step.querySelector("[data-step-problem]");
    if (box) {
      box.textContent = message || "";
      box.hidden = !message;
    }
  }

  function show(index, focus) {
    current = Math.max(0, Math.min(index, steps.length - 1));
    steps.forEach(function (step, i) {
      step.hidden = i !== current;
    });
    var step = steps[current];
    stamp(step);
    if (focus) {
      var title = step.querySelector(".buy-step__title");
      window.scrollTo(0, 0);
      if (title) {
        title.focus({ preventScroll: true });
      }
    }
  }

  /* What keeps this step from being left: an unticked confirmation, an unanswered question. */
  function check(step) {
    var bad = null;
    step.querySelectorAll("[data-confirm]").forEach(function (box) {
      box.removeAttribute("aria-invalid");
      if (!box.checked && !bad) {
        bad = { element: box, message: text.confirm };
      }
    });
    var groups = {};
    step.querySelectorAll("[data-answer]").forEach(function (radio) {
      groups[radio.name] = groups[radio.name] || radio.checked;
    });
    Object.keys(groups).forEach(function (name) {
      if (!groups[name] && !bad) {
        bad = { element: step.querySelector("[name='" + name + "']"), message: text.answer };
      }
    });
    return bad;
  }

  function relationshipChanged() {
    var chosen = form.querySelector("[data-relationship]:checked");
    var insured = form.querySelector("[data-insured]");
    if (insured) {
      insured.hidden = !chosen || chosen.value === "self";
    }
    var hint = form.querySelector("[data-insured-hint]");
    if (hint) {
      hint.hidden = true;
    }
  }

  function beneficiariesChanged() {
    var chosen = form.querySelector("[data-beneficiary-mode]:checked");
    var named = form.querySelector("[data-named]");
    if (named) {
      named.hidden = !chosen || chosen.value !== "named";
    }
  }

  form.classList.add("buy-form--stepped");
  steps.forEach(function (step, index) {
    var nav = step.querySelector("[data-step-buttons]");
    if (nav) {
      nav.hidden = false;
    }
    var next = step.querySelector("[data-next]");
    if (next) {
      next.addEventListener("click", function () {
        var bad = check(step);
        if (bad) {
          problem(step, bad.message);
          if (bad.element) {
            bad.element.setAttribute("aria-invalid", "true");
            bad.element.focus();
          }
          return;
        }
        problem(step, "");
        show(index + 1, true);
      });
    }
    var prev = step.querySelector("[data-prev]");
    if (prev) {
      prev.addEventListener("click", function () {
        problem(step, "");
        show(index - 1, true);
      });
    }
  });
  form.querySelectorAll("[data-confirm], [data-answer]").forEach(function (input) {
    input.addEventListener("change", function () {
      input.removeAttribute("aria-invalid");
      var step = input.closest("[data-step]");
      if (step && !check(step)) {
        problem(step, "");
      }
    });
  });
  form.querySelectorAll("[data-relationship]").forEach(function (radio) {
    radio.addEventListener("change", relationshipChanged);
  });
  form.querySelectorAll("[data-beneficiary-mode]").forEach(function (radio) {
    radio.addEventListener("change", beneficiariesChanged);
  });
  relationshipChanged();
  beneficiariesChanged();

  var sent = false;
  form.addEventListener("submit", function (event) {
    if (sent) {
      event.preventDefault();  /* a double tap: the first post is on its way */
      return;
    }
    sent = true;
    form.querySelectorAll("[data-submit]").forEach(function (button) {
      button.setAttribute("aria-busy", "true");
      button.classList.add("is-busy");
    });
  });
  /* Coming back to the page (back button) lets the form be sent again. */
  window.addEventListener("pageshow", function () {
    sent = false;
  });

  var start = 0;
  var errorStep = form.getAttribute("data-error-step");
  steps.forEach(function (step, index) {
    if (errorStep && step.getAttribute("data-step") === errorStep) {
      start = index;
    }
  });
  show(start, false);
})();
