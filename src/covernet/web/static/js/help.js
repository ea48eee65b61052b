/* The help centre's ask box: sends the question to POST /api/v1/assistant/ask and shows
 * the answer with its source article, or that a person will take it over.  Without the
 * script the form searches the help articles instead.  Questions of one visit form one
 * exchange (the conversation id the last answer gave).
 */
(function () {
  "use strict";

  var form = document.querySelector("[data-ask-form]");
  var box = document.querySelector("[data-ask-answer]");
  if (!form || !box || !window.fetch) {
    return;
  }
  var input = form.querySelector("textarea");
  var button = form.querySelector("[data-ask-button]");
  var meta = document.querySelector("meta[name='csrf-token']");
  var conversation = null;

  function line(cls, text) {
    var el = document.createElement("span");
    el.className = cls;
    el.textContent = text;
    return el;
  }

  function show(body) {
    box.textContent = "";
    box.className = "help-answer" + (body.handed_off ? " help-answer--handoff" : "");
    box.appendChild(document.createTextNode(body.answer));
    var info = line("help-answer__meta", "");
    if (body.source) {
      info.appendChild(document.createTextNode(box.getAttribute("data-source-label") + "："));
      var link = document.createElement("a");
      link.href = body.source.url;
      link.textContent = body.source.title;
      link.setAttribute("data-ask-source", body.source.id);
      info.appendChild(link);
      info.appendChild(document.createTextNode(
        " · " + box.getAttribute("data-confidence-label") + " " + Math.round(body.confidence * 100) + "%"
      ));
    } else if (body.handed_off) {
      info.textContent = box.getAttribute("data-handed-off-label");
    }
    box.appendChild(info);
    box.hidden = false;
  }

  function fail(message) {
    box.textContent = message || box.getAttribute("data-error");
    box.className = "help-answer help-answer--handoff";
    box.hidden = false;
  }

  form.addEventListener("submit", function (event) {
    var question = input.value.trim();
    if (!question) {
      return;
    }
    event.preventDefault();
    button.disabled = true;
    var headers = { "Content-Type": "application/json", "Accept": "application/json" };
    if (meta) {
      headers["X-CSRF-Token"] = meta.getAttribute("content");
    }
    var payload = { question: question, lang: form.getAttribute("data-lang") };
    if (conversation) {
      payload.conversation_id = conversation;
    }
    fetch("/api/v1/assistant/ask", {
      method: "POST",
      headers: headers,
      credentials: "same-origin",
      body: JSON.stringify(payload)
    }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) {
          fail();
          return;
        }
        if (body.conversation_id) {
          conversation = body.conversation_id;
        }
        show(body);
      });
    }).catch(function () {
      fail();
    }).then(function () {
      button.disabled = false;
    });
  });
})();
