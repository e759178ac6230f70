/*
 * omnihub live chat widget. Embed with
 *   <script src="https://HUB/channels/chat/widget.js" data-lang="de" defer></script>
 * It connects to the hub that served it (same origin as the script), speaks the
 * protocol described in channels/chat/protocol.py, keeps its session token,
 * log id, last seq and unacknowledged messages in sessionStorage, re-sends
 * unacknowledged messages after each welcome, reconnects with backoff, and
 * offers to leave a message by e-mail when no agent is online.
 * Plain JavaScript, no framework, no CDN; all text is set with textContent.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__omnihubChat) return;
  window.__omnihubChat = true;

  var LABELS = {
    en: {
      open: "Chat with us", title: "Chat", close: "Close",
      intro: "Tell us who you are (optional), then start the chat.",
      name: "Name", email: "E-mail", phone: "Phone", start: "Start chat",
      placeholder: "Your message", send: "Send", typing: "An agent is typing…",
      offline: "No one is online right now. Leave us a message and we will answer by e-mail.",
      leave: "Leave a message", left: "Thank you! We will answer by e-mail.",
      connecting: "Connecting…", online: "Online", away: "Offline",
      sent: "sent", pending: "sending…", slow: "Too many messages; please wait a moment.",
      invalidContact: "That e-mail or phone number looks wrong; the chat continues without it."
    },
    de: {
      open: "Chatten Sie mit uns", title: "Chat", close: "Schließen",
      intro: "Sagen Sie uns gern, wer Sie sind (freiwillig), und starten Sie den Chat.",
      name: "Name", email: "E-Mail", phone: "Telefon", start: "Chat starten",
      placeholder: "Ihre Nachricht", send: "Senden", typing: "Ein Mitarbeiter schreibt…",
      offline: "Gerade ist niemand online. Hinterlassen Sie uns eine Nachricht, wir antworten per E-Mail.",
      leave: "Nachricht hinterlassen", left: "Vielen Dank! Wir antworten Ihnen per E-Mail.",
      connecting: "Verbinde…", online: "Online", away: "Offline",
      sent: "gesendet", pending: "wird gesendet…", slow: "Zu viele Nachrichten; bitte kurz warten.",
      invalidContact: "E-Mail oder Telefonnummer scheint falsch; der Chat geht ohne sie weiter."
    }
  };
  var lang = (script.getAttribute("data-lang") || navigator.language || "en").slice(0, 2).toLowerCase();
  var T = LABELS[lang] || LABELS.en;

  var socketUrl = new URL("ws", script.src);
  socketUrl.protocol = socketUrl.protocol === "https:" ? "wss:" : "ws:";
  var KEY = "omnihub-chat:" + socketUrl.host;
  var KEEP = 200;

  function load() {
    try { return JSON.parse(sessionStorage.getItem(KEY)) || {}; } catch (e) { return {}; }
  }
  var state = Object.assign({ token: null, logId: null, lastSeq: 0, unacked: [], log: [], contact: null, started: false }, load());
  function save() {
    state.log = state.log.slice(-KEEP);
    try { sessionStorage.setItem(KEY, JSON.stringify(state)); } catch (e) { /* storage full or blocked */ }
  }

  // ---- the view --------------------------------------------------------------
  var host = document.createElement("div");
  var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  var style = document.createElement("style");
  style.textContent = [
    ":host{all:initial}", "*{box-sizing:border-box;font:14px/1.4 system-ui,sans-serif}",
    ".launch{position:fixed;right:20px;bottom:20px;z-index:2147483000;border:0;border-radius:24px;padding:12px 18px;background:#1f5fbf;color:#fff;cursor:pointer}",
    ".panel{position:fixed;right:20px;bottom:20px;z-index:2147483001;width:340px;max-width:calc(100vw - 40px);height:480px;max-height:calc(100vh - 40px);display:flex;flex-direction:column;background:#fff;color:#222;border-radius:10px;box-shadow:0 6px 30px rgba(0,0,0,.25);overflow:hidden}",
    ".head{display:flex;justify-content:space-between;align-items:center;padding:10px 12px;background:#1f5fbf;color:#fff}",
    ".head button{background:none;border:0;color:#fff;cursor:pointer;font-size:18px}",
    ".status{font-size:12px;opacity:.85;margin-left:8px}",
    ".body{flex:1;overflow:auto;padding:10px;display:flex;flex-direction:column;gap:6px}",
    ".msg{max-width:80%;padding:6px 10px;border-radius:10px;white-space:pre-wrap;word-wrap:break-word}",
    ".me{align-self:flex-end;background:#dce8fb}", ".agent{align-self:flex-start;background:#eee}",
    ".note{font-size:12px;color:#666;text-align:center}", ".meta{display:block;font-size:11px;color:#777}",
    "form{display:flex;flex-direction:column;gap:6px;padding:10px}", "input,textarea{padding:6px;border:1px solid #bbb;border-radius:6px;width:100%}",
    "form button,.compose button{padding:8px;border:0;border-radius:6px;background:#1f5fbf;color:#fff;cursor:pointer}",
    ".compose{display:flex;gap:6px;padding:8px;border-top:1px solid #ddd}", ".compose textarea{flex:1;resize:none;height:40px}",
    ".typing{font-size:12px;color:#666;padding:0 10px;min-height:16px}", "[hidden]{display:none!important}"
  ].join("\n");
  root.appendChild(style);

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (name === "text") node.textContent = attrs[name];
      else node.setAttribute(name, attrs[name]);
    });
    (children || []).forEach(function (child) { node.appendChild(child); });
    return node;
  }
  function field(name, type, label) {
    return el("input", { name: name, type: type, placeholder: label, "aria-label": label, autocomplete: name === "phone" ? "tel" : name });
  }

  var launch = el("button", { class: "launch", type: "button", text: T.open });
  var statusLine = el("span", { class: "status", text: T.connecting });
  var closeButton = el("button", { type: "button", "aria-label": T.close, text: "×" });
  var messages = el("div", { class: "body", role: "log", "aria-live": "polite" });
  var typingLine = el("div", { class: "typing" });
  var prechat = el("form", {}, [el("p", { text: T.intro }), field("name", "text", T.name), field("email", "email", T.email), field("phone", "tel", T.phone), el("button", { type: "submit", text: T.start })]);
  var leaveText = el("textarea", { name: "text", required: "", placeholder: T.placeholder, "aria-label": T.placeholder });
  var leaveEmail = field("email", "email", T.email);
  leaveEmail.required = true;
  var leave = el("form", { hidden: "" }, [el("p", { text: T.offline }), leaveEmail, leaveText, el("button", { type: "submit", text: T.leave })]);
  var input = el("textarea", { placeholder: T.placeholder, "aria-label": T.placeholder });
  var compose = el("div", { class: "compose" }, [input, el("button", { type: "button", text: T.send })]);
  var panel = el("div", { class: "panel", hidden: "", role: "dialog", "aria-label": T.title }, [
    el("div", { class: "head" }, [el("div", {}, [el("strong", { text: T.title }), statusLine]), closeButton]),
    prechat, messages, typingLine, leave, compose
  ]);
  root.appendChild(launch);
  root.appendChild(panel);

  function showPanel(open) {
    panel.hidden = !open;
    launch.hidden = open;
    prechat.hidden = state.started;
    compose.hidden = !state.started;
    if (open && state.started) input.focus();
  }
  function note(text) {
    messages.appendChild(el("div", { class: "note", text: text }));
    messages.scrollTop = messages.scrollHeight;
  }
  function render() {
    messages.textContent = "";
    state.log.forEach(function (entry) {
      var bubble = el("div", { class: "msg " + entry.from, text: entry.text });
      if (entry.from === "me") bubble.appendChild(el("span", { class: "meta", text: entry.acked ? T.sent : T.pending }));
      messages.appendChild(bubble);
    });
    messages.scrollTop = messages.scrollHeight;
  }

  // ---- the connection ---------------------------------------------------------
  var socket = null;
  var attempt = 0;
  var retryTimer = null;
  var typingTimer = null;
  var lastTyping = 0;

  function newClientId() {
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
  }
  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  }
  function connect() {
    clearTimeout(retryTimer);
    if (socket && socket.readyState <= WebSocket.OPEN) return;
    statusLine.textContent = T.connecting;
    socket = new WebSocket(socketUrl.href);
    socket.onopen = function () {
      var hello = { type: "hello", last_seq: state.lastSeq };
      if (state.token) { hello.token = state.token; hello.log_id = state.logId; }
      else if (state.contact) Object.assign(hello, state.contact);
      send(hello);
    };
    socket.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      (HANDLERS[frame.type] || function () {})(frame);
    };
    socket.onclose = function (event) { socket = null; reconnectAfter(event.code); };
  }
  function reconnectAfter(code) {
    statusLine.textContent = T.connecting;
    if (code === 4401) { state.token = null; state.logId = null; state.lastSeq = 0; save(); }
    var delay = Math.min(30000, 1000 * Math.pow(2, attempt++)) * (0.5 + Math.random() / 2);
    if (code === 4429) delay = Math.max(delay, 15000);
    retryTimer = setTimeout(connect, code === 4401 ? 0 : delay);
  }
  function resendUnacked() {
    state.unacked.forEach(send);
  }
  function place(entry) {
    // Settled entries stay in the hub's order (seq order): an agent's message or an ack
    // goes before the visitor's messages still waiting for their ack, which stay last.
    var index = state.log.findIndex(function (item) { return item.from === "me" && !item.acked; });
    if (index < 0) state.log.push(entry); else state.log.splice(index, 0, entry);
  }
  function accept(frame) {
    // A frame at or below last_seq was seen already (a replay overlapping a re-ack).
    if (frame.seq <= state.lastSeq) return false;
    state.lastSeq = frame.seq;
    return true;
  }

  var HANDLERS = {
    welcome: function (frame) {
      attempt = 0;
      state.token = frame.token;
      if (frame.log_id !== state.logId) { state.logId = frame.log_id; state.lastSeq = 0; }
      save();
      statusLine.textContent = frame.agents_online ? T.online : T.away;
      leave.hidden = frame.agents_online;
      if (!frame.agents_online && state.contact && state.contact.email) leaveEmail.value = state.contact.email;
      resendUnacked();
    },
    ack: function (frame) {
      state.unacked = state.unacked.filter(function (item) { return item.client_id !== frame.client_id; });
      var index = state.log.findIndex(function (entry) { return entry.client_id === frame.client_id; });
      if (index >= 0 && !state.log[index].acked) {
        var entry = state.log.splice(index, 1)[0];
        entry.acked = true;
        place(entry);
      }
      accept(frame);
      save();
      render();
    },
    message: function (frame) {
      if (!accept(frame)) return;
      place({ from: "agent", text: frame.text });
      typingLine.textContent = "";
      save();
      render();
    },
    typing: function () {
      typingLine.textContent = T.typing;
      clearTimeout(typingTimer);
      typingTimer = setTimeout(function () { typingLine.textContent = ""; }, 4000);
    },
    ping: function () { send({ type: "pong" }); },
    error: function (frame) {
      if (frame.code === "rate_limited") note(T.slow);
      else if (frame.code === "invalid_contact") note(T.invalidContact);
      else if (frame.code === "not_stored") setTimeout(resendUnacked, 3000);
      else if (window.console) console.warn("omnihub chat:", frame.code, frame.message);
    }
  };

  // ---- what the visitor does --------------------------------------------------------
  function queue(frame, shown) {
    state.unacked.push(frame);
    if (shown) state.log.push({ from: "me", text: shown, client_id: frame.client_id, acked: false });
    save();
    render();
    send(frame);
  }
  function sendMessage() {
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    queue({ type: "message", client_id: newClientId(), text: text }, text);
  }
  compose.querySelector("button").addEventListener("click", sendMessage);
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); sendMessage(); }
  });
  input.addEventListener("input", function () {
    var now = Date.now();
    if (now - lastTyping > 4000) { lastTyping = now; send({ type: "typing" }); }
  });
  prechat.addEventListener("submit", function (event) {
    event.preventDefault();
    var contact = {};
    ["name", "email", "phone"].forEach(function (name) {
      var value = prechat.elements[name].value.trim();
      if (value) contact[name] = value;
    });
    state.contact = contact;
    state.started = true;
    save();
    showPanel(true);
    connect();
  });
  leave.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = leaveText.value.trim();
    if (!text) return;
    var frame = { type: "leave_message", client_id: newClientId(), email: leaveEmail.value.trim(), text: text };
    if (state.contact && state.contact.name) frame.name = state.contact.name;
    leaveText.value = "";
    queue(frame, null);
    leave.hidden = true;
    note(T.left);
  });
  window.addEventListener("online", function () {
    // Back on the network: try now instead of waiting out the backoff.
    if (state.started && !socket) { attempt = 0; connect(); }
  });
  launch.addEventListener("click", function () { showPanel(true); if (state.started) connect(); });
  closeButton.addEventListener("click", function () { showPanel(false); });

  function mount() {
    document.body.appendChild(host);
    render();
    showPanel(false);
    if (state.started) connect();
  }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
