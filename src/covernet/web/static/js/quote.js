/* In-page quotes: the product page's quote form, posted as JSON to POST /api/v1/quotes.
 * Without this script the form posts to /products/{code}/quote and the server renders
 * the same result.  Labels and messages come from the page (#quote-data), in its language.
 */
(function () {
  "use strict";

  var form = document.querySelector("[data-quote-form]");
  var dataElement = document.getElementById("quote-data");
  var template = document.getElementById("quote-result-template");
  var out = document.querySelector("[data-quote-result]");
  if (!form || !dataElement || !template || !out || !window.fetch || !window.FormData) {
    return;
  }
  var data = JSON.parse(dataElement.textContent);
  var button = form.querySelector("[data-quote-submit]");
  var buttonLabel = button ? button.textContent : "";
  var EN_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  var FIELD_NAMES = { order_amount_fen: "order_amount", product_code: null };

  /* "{age}周岁" with {age: 30}; null when a placeholder has no value. */
  function fill(text, params) {
    var missing = false;
    var filled = text.replace(/\{(\w+)\}/g, function (whole, key) {
      var value = params ? params[key] : undefined;
      if (value === undefined || value === null) {
        missing = true;
        return whole;
      }
      return String(value);
    });
    return missing ? null : filled;
  }

  /* 1234550 -> "¥12,345.50" (as covernet.core.money.format_fen). */
  function money(fen) {
    var yuan = Math.floor(Math.abs(fen) / 100);
    var cents = Math.abs(fen) % 100;
    var grouped = String(yuan).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return (fen < 0 ? "-" : "") + "¥" + grouped + "." + (cents < 10 ? "0" : "") + cents;
  }

  /* "2025-01-02" -> "2025年1月2日" / "2 Jan 2025" (as covernet.core.i18n.format_date). */
  function dateText(iso) {
    var parts = String(iso).slice(0, 10).split("-");
    var y = parseInt(parts[0], 10);
    var m = parseInt(parts[1], 10);
    var d = parseInt(parts[2], 10);
    if (data.lang === "en") {
      return d + " " + EN_MONTHS[m - 1] + " " + y;
    }
    return y + "年" + m + "月" + d + "日";
  }

  /* An instant shown in Beijing time, to the minute. */
  function dateTimeText(iso) {
    var moment = new Date(iso);
    if (isNaN(moment.getTime())) {
      return "";
    }
    var parts = {};
    new Intl.DateTimeFormat("en-CA", {
      timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23"
    }).formatToParts(moment).forEach(function (part) {
      parts[part.type] = part.value;
    });
    var day = dateText(parts.year + "-" + parts.month + "-" + parts.day);
    return day + (data.lang === "en" ? ", " : " ") + parts.hour + ":" + parts.minute;
  }

  /* "99.5" -> 9950 fen; null for anything that is not an amount of yuan. */
  function yuanToFen(text) {
    var clean = text.replace(/,/g, "");
    if (!/^\d{1,12}(\.\d{1,2})?$/.test(clean)) {
      return null;
    }
    var pieces = clean.split(".");
    var cents = ((pieces[1] || "") + "00").slice(0, 2);
    return parseInt(pieces[0], 10) * 100 + parseInt(cents, 10);
  }

  function clearProblems() {
    form.querySelectorAll("[aria-invalid]").forEach(function (element) {
      element.removeAttribute("aria-invalid");
      element.removeAttribute("aria-describedby");
    });
  }

  function markField(field) {
    var name = field.split(".").pop();
    if (Object.prototype.hasOwnProperty.call(FIELD_NAMES, name)) {
      name = FIELD_NAMES[name];
    }
    if (!name) {
      return;
    }
    form.querySelectorAll("[name='" + name + "']").forEach(function (element) {
      element.setAttribute("aria-invalid", "true");
      element.setAttribute("aria-describedby", "form-error");
    });
  }

  function showError(code, message, detail) {
    var text = message || data.messages.network;
    var known = code && data.messages[code];
    if (known) {
      text = fill(known, detail && typeof detail === "object" ? detail : {}) || message || known;
    }
    var paragraph = document.createElement("p");
    paragraph.className = "form-error";
    paragraph.id = "form-error";
    paragraph.textContent = text;
    out.replaceChildren(paragraph);
    if (detail && typeof detail.field === "string") {
      markField(detail.field);
    }
  }

  function setSlot(card, name, value) {
    var slot = card.querySelector("[data-slot='" + name + "']");
    if (slot) {
      slot.textContent = value;
    }
  }

  function showRow(card, name, visible) {
    var row = card.querySelector("[data-row='" + name + "']");
    if (row) {
      row.hidden = !visible;
    }
  }

  function showResult(quote) {
    var card = template.content.querySelector("[data-quote-card]").cloneNode(true);
    var plan = data.plans[quote.plan_code] || { name: quote.plan_code, sum_insured: money(quote.sum_insured_fen) };
    setSlot(card, "premium", money(quote.premium_fen));
    setSlot(card, "unit", data.units[quote.frequency] || "");
    setSlot(card, "plan", plan.name);
    setSlot(card, "sum_insured", plan.sum_insured);
    setSlot(card, "term", data.terms[quote.term] || quote.term);
    setSlot(card, "payment", data.payments[quote.payment] || quote.payment);
    setSlot(card, "effective_date", dateText(quote.effective_date));
    setSlot(card, "end_date", quote.end_date ? dateText(quote.end_date) : data.labels.whole_life);
    var insured = quote.insured || {};
    var hasAge = insured.age !== null && insured.age !== undefined;
    setSlot(card, "age", hasAge ? fill(data.labels.age, { age: insured.age }) : "");
    showRow(card, "age", hasAge);
    setSlot(card, "id_number", insured.id_number || "");
    showRow(card, "id_number", Boolean(insured.id_number));
    setSlot(card, "valid_until", dateTimeText(quote.valid_until));
    var apply = card.querySelector("[data-slot-href='apply']");
    if (apply && quote.quote_id) {
      apply.href = "/apply/" + encodeURIComponent(quote.quote_id);
    }
    showRow(card, "apply", Boolean(apply && quote.quote_id));
    var list = card.querySelector("[data-slot='disclosures']");
    list.replaceChildren();
    (quote.disclosures || []).forEach(function (disclosure) {
      var item = document.createElement("li");
      var text = disclosure.text[data.lang] || disclosure.text.zh;
      item.className = "disclosure";
      if (disclosure.emphasis) {
        item.className += " disclosure--emphasis";
        var strong = document.createElement("strong");
        strong.textContent = text;
        item.appendChild(strong);
      } else {
        item.textContent = text;
      }
      list.appendChild(item);
    });
    out.replaceChildren(card);
    out.scrollIntoView({ block: "start", behavior: "smooth" });
  }

  function value(formData, name) {
    var found = formData.get(name);
    return typeof found === "string" ? found.trim() : "";
  }

  function request(formData) {
    var insured = { region: value(formData, "region") };
    var body = { product_code: data.product, plan_code: value(formData, "plan_code"), insured: insured };
    if (!body.plan_code) {
      return { error: "plan_required", field: "plan_code" };
    }
    if (!insured.region) {
      return { error: "region_required", field: "region" };
    }
    ["term", "payment"].forEach(function (name) {
      if (value(formData, name)) {
        body[name] = value(formData, name);
      }
    });
    ["birth_date", "gender", "id_number"].forEach(function (name) {
      if (value(formData, name)) {
        insured[name] = value(formData, name);
      }
    });
    if (value(formData, "occupation_class")) {
      insured.occupation_class = parseInt(value(formData, "occupation_class"), 10);
    }
    if (form.elements.namedItem("order_amount")) {
      var amount = value(formData, "order_amount");
      if (!amount) {
        return { error: "order_amount_required", field: "order_amount" };
      }
      body.order_amount_fen = yuanToFen(amount);
      if (body.order_amount_fen === null) {
        return { error: "invalid_order_amount", field: "order_amount" };
      }
    }
    return { body: body };
  }

  function busy(on) {
    if (button) {
      button.disabled = on;
      button.textContent = on ? data.labels.busy : buttonLabel;
    }
    if (on) {
      out.setAttribute("aria-busy", "true");
    } else {
      out.removeAttribute("aria-busy");
    }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (button && button.disabled) {
      return;
    }
    clearProblems();
    var built = request(new FormData(form));
    if (built.error) {
      showError(built.error, "", { field: built.field });
      return;
    }
    var headers = { "Content-Type": "application/json", "Accept": "application/json" };
    var token = document.querySelector("meta[name='csrf-token']");
    if (token && token.content) {
      headers["X-CSRF-Token"] = token.content;
    }
    busy(true);
    fetch("/api/v1/quotes", {
      method: "POST", headers: headers, body: JSON.stringify(built.body), credentials: "same-origin"
    })
      .then(function (response) {
        return response.json().then(
          function (json) { return { ok: response.ok, json: json }; },
          function () { return { ok: false, json: {} }; }
        );
      })
      .then(function (answer) {
        if (answer.ok) {
          showResult(answer.json);
        } else {
          showError(answer.json.error, answer.json.message, answer.json.detail);
        }
      })
      .catch(function () {
        showError("network", "", null);
      })
      .finally(function () {
        busy(false);
      });
  });
})();
