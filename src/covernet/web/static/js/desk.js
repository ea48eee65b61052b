// The desk: the inbox reloads when a conversation it may show changes; a conversation
// page watches its conversation and appends new messages as they are written.
(function () {
  "use strict";
  var root = document.querySelector("[data-desk]");
  if (!root) return;
  var t = root.dataset;
  var conversation = t.conversation || null;
  var log = root.querySelector("[data-desk-log]");
  var reloadTimer = null;

  function label(m) {
    if (m.author_kind === "advisor" && m.advisor) {
      var text = (m.private ? t.tPrivate + " · " : "") + m.advisor.name;
      if (m.advisor.license_no) text += " · " + t.tLicense + " " + m.advisor.license_no;
      return text;
    }
    if (m.author_kind === "bot") return t.tBot;
    return t.tCustomer;
  }

  function append(m) {
    if (!log || log.querySelector('[data-message="' + m.id + '"]')) return;
    var item = document.createElement("li");
    item.className = "chat__msg chat__msg--" + m.author_kind + (m.private ? " chat__msg--private" : "");
    item.dataset.message = m.id;
    if (m.author_kind === "system") {
      item.textContent = m.body;
    } else {
      var who = document.createElement("span");
      who.className = "chat__who";
      who.textContent = label(m);
      var body = document.createElement("span");
      body.className = "chat__body";
      body.textContent = m.body;
      item.appendChild(who);
      item.appendChild(body);
    }
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
  }

  function connect(delay) {
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    var socket = new WebSocket(scheme + "//" + window.location.host + "/ws/desk");
    socket.addEventListener("message", function (event) {
      var frame = JSON.parse(event.data);
      if (frame.type === "ready") {
        delay = 1000;
        if (conversation) socket.send(JSON.stringify({ type: "watch", conversation_id: conversation }));
        root.dataset.ready = "1";
      } else if (frame.type === "message" && frame.message.conversation_id === conversation) {
        append(frame.message);
      } else if (frame.type === "inbox" && !conversation) {
        if (reloadTimer === null) reloadTimer = window.setTimeout(function () { window.location.reload(); }, 800);
      }
    });
    socket.addEventListener("close", function () {
      root.dataset.ready = "0";
      window.setTimeout(function () { connect(Math.min(delay * 2, 30000)); }, delay);
    });
  }
  connect(1000);
  if (log) log.scrollTop = log.scrollHeight;
})();
