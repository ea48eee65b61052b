// The customer's chat with an advisor (web chat; on live pages, questions to the
// session).  A WebSocket brings new messages; the history comes from the API after the
// socket is ready, so nothing falls between the two.  Anonymous visitors keep their
// signed visitor token in localStorage.
(function () {
  "use strict";
  var root = document.querySelector("[data-chat]");
  if (!root) return;
  var t = root.dataset;
  var panel = root.querySelector("[data-chat-panel]");
  var toggle = root.querySelector("[data-chat-toggle]");
  var log = root.querySelector("[data-chat-log]");
  var form = root.querySelector("[data-chat-form]");
  var csatForm = root.querySelector("[data-chat-csat]");
  var statusLine = root.querySelector("[data-chat-status]");
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var signedIn = t.signedIn === "1";
  var VISITOR_KEY = "covernet_visitor";
  var visitor = signedIn ? null : window.localStorage.getItem(VISITOR_KEY);
  var conversation = null;
  var socket = null;
  var started = false;
  var seen = {};
  var retry = 1000;

  var pathMatch = window.location.pathname.match(/^\/products\/([^/]+)/);
  var productCode = pathMatch ? decodeURIComponent(pathMatch[1]) : null;
  var liveMatch = window.location.pathname.match(/^\/live\/([^/]+)/);
  var liveSession = liveMatch ? decodeURIComponent(liveMatch[1]) : null;

  function say(text) { statusLine.textContent = text || ""; }

  function api(path, options) {
    options = options || {};
    var headers = { "Accept": "application/json" };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    if (csrfMeta) headers["X-CSRF-Token"] = csrfMeta.content;
    if (visitor) headers["X-Visitor-Token"] = visitor;
    return fetch(path, {
      method: options.method || "GET",
      headers: headers,
      credentials: "same-origin",
      body: options.body === undefined ? undefined : JSON.stringify(options.body)
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) throw new Error(data.message || t.tError);
        return data;
      });
    });
  }

  function ensureVisitor() {
    if (signedIn || visitor) return Promise.resolve();
    return api("/api/v1/chat/visitor", { method: "POST" }).then(function (data) {
      visitor = data.visitor_token;
      window.localStorage.setItem(VISITOR_KEY, visitor);
    });
  }

  function who(message) {
    if (message.author_kind === "customer") return t.tYou;
    if (message.author_kind === "bot") return t.tBot;
    if (message.author_kind === "advisor" && message.advisor) {
      var a = message.advisor;
      var parts = [t.tAdvisor + " " + a.name];
      if (a.institution) parts.push(a.institution);
      if (a.license_no) parts.push(t.tLicense + " " + a.license_no);
      return parts.join(" · ");
    }
    return "";
  }

  function add(message) {
    if (seen[message.id] || message.private) return;
    seen[message.id] = true;
    var item = document.createElement("li");
    item.className = "chat__msg chat__msg--" + message.author_kind;
    item.dataset.author = message.author_kind;
    if (message.author_kind === "system") {
      if (message.purpose === "csat_request") {
        item.textContent = t.tCsat;
        if (!conversation || !conversation.csat_given) csatForm.hidden = false;
      } else if (message.purpose === "handoff") {
        item.textContent = t.tHandoff;
      } else if (message.purpose === "transfer") {
        item.textContent = t.tTransfer;
      } else {
        item.textContent = message.body;
      }
    } else {
      var label = document.createElement("span");
      label.className = "chat__who";
      label.textContent = who(message);
      var body = document.createElement("span");
      body.className = "chat__body";
      body.textContent = message.body;
      item.appendChild(label);
      item.appendChild(body);
    }
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
  }

  function history() {
    if (!conversation) return Promise.resolve();
    return api("/api/v1/conversations/" + encodeURIComponent(conversation.id) + "/messages")
      .then(function (rows) { rows.forEach(add); });
  }

  function connect() {
    var query = new URLSearchParams();
    if (visitor) query.set("visitor", visitor);
    if (conversation) query.set("conversation", conversation.id);
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(scheme + "//" + window.location.host + "/ws/chat?" + query.toString());
    socket.addEventListener("message", function (event) {
      var frame = JSON.parse(event.data);
      if (frame.type === "ready") {
        retry = 1000;
        say("");
        root.dataset.ready = "1";
        history().catch(function (e) { say(e.message); });
      } else if (frame.type === "message") {
        add(frame.message);
      } else if (frame.type === "started") {
        conversation = frame.conversation;
      } else if (frame.type === "conversation" && conversation) {
        conversation.state = frame.conversation.state;
        conversation.csat_given = frame.conversation.csat_given;
        if (conversation.csat_given) csatForm.hidden = true;
      } else if (frame.type === "error") {
        say(frame.message || t.tError);
      }
    });
    socket.addEventListener("close", function () {
      socket = null;
      root.dataset.ready = "0";
      if (!panel.hidden) {
        say(t.tOffline);
        window.setTimeout(connect, retry);
        retry = Math.min(retry * 2, 30000);
      }
    });
  }

  function begin() {
    if (started) return;
    started = true;
    ensureVisitor()
      .then(function () { return api("/api/v1/me/conversations"); })
      .then(function (rows) {
        var current = rows.filter(function (c) {
          if (liveSession) return c.channel === "live";
          return c.state !== "resolved" || !c.csat_given;
        })[0];
        conversation = current || null;
        if (!conversation) say(t.tEmpty);
        connect();
      })
      .catch(function (e) { started = false; say(e.message); });
  }

  function send(text) {
    if (!conversation && liveSession) {
      return api("/api/v1/live/" + encodeURIComponent(liveSession) + "/questions", {
        method: "POST", body: { body: text }
      }).then(function (conv) {
        conversation = conv;
        if (socket) socket.close();  // reconnects on this conversation and loads it
      });
    }
    if (socket && socket.readyState === WebSocket.OPEN) {
      var frame = { type: "message", body: text };
      if (!conversation && productCode) frame.product_code = productCode;
      socket.send(JSON.stringify(frame));
      return Promise.resolve();
    }
    if (conversation) {  // the REST fallback
      return api("/api/v1/conversations/" + encodeURIComponent(conversation.id) + "/messages", {
        method: "POST", body: { body: text }
      }).then(add);
    }
    return api("/api/v1/conversations", {
      method: "POST", body: { body: text, product_code: productCode }
    }).then(function (conv) { conversation = conv; return history(); });
  }

  toggle.addEventListener("click", function () {
    var open = panel.hidden;
    panel.hidden = !open;
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      begin();
      form.querySelector("textarea").focus();
    }
  });
  root.querySelector("[data-chat-close]").addEventListener("click", function () {
    panel.hidden = true;
    toggle.setAttribute("aria-expanded", "false");
    toggle.focus();
  });

  function submitMessage() {
    var box = form.querySelector("textarea");
    var text = box.value.trim();
    if (!text) return;
    send(text).then(function () { box.value = ""; say(""); })
      .catch(function (e) { say(e.message); });
  }
  form.addEventListener("submit", function (event) { event.preventDefault(); submitMessage(); });
  form.querySelector("[data-chat-send]").addEventListener("click", submitMessage);
  form.querySelector("textarea").addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submitMessage();
    }
  });

  function submitRating() {
    if (!conversation) return;
    var data = new FormData(csatForm);
    if (!data.get("score")) { say(t.tCsat); return; }
    api("/api/v1/conversations/" + encodeURIComponent(conversation.id) + "/csat", {
      method: "POST",
      body: { score: Number(data.get("score")), comment: data.get("comment") || null }
    }).then(function (conv) {
      conversation = conv;
      csatForm.hidden = true;
      say(t.tThanks);
    }).catch(function (e) { say(e.message); });
  }
  csatForm.addEventListener("submit", function (event) { event.preventDefault(); submitRating(); });
  csatForm.querySelector("[data-chat-csat-send]").addEventListener("click", submitRating);
})();
