// The live console: the agent socket, live lists, the open conversation, the composer,
// collision markers, screen pops and keyboard shortcuts.
//
// Nothing here turns text into markup: HTML comes only from the hub's own autoescaped
// fragments, and everything else (a stale draft's changes, errors, names) is set as
// textContent. State-changing requests carry the session's CSRF token.
(() => {
  "use strict";

  const app = document.getElementById("app");
  const T = JSON.parse(document.getElementById("labels").textContent);
  const ME = Number(app.dataset.agentId);
  const CSRF = app.dataset.csrf;
  const workspace = document.getElementById("workspace");
  const VIEWING_EVERY_MS = 15000;
  const VIEWING_FORGET_MS = 40000;
  const TYPING_SHOWN_MS = 6000;
  const TYPING_SENT_EVERY_MS = 2000;

  let lastEventId = Number(app.dataset.lastEventId) || 0;
  let socket = null;
  let retries = 0;
  let current = null; // {id, customerId}
  let draft = null; // {seen, clientId}
  let lastTypingSent = 0;
  // conversation id -> Map(agent id -> {name, seen, typingUntil})
  const others = new Map();

  // ---- requests -------------------------------------------------------------------

  function api(method, url, body) {
    const headers = { Accept: "application/json", "X-CSRF-Token": CSRF };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(url, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  async function fragment(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (response.status === 401) location.assign("/");
    return response;
  }

  function parse(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content;
  }

  async function detail(response) {
    try {
      const body = await response.json();
      return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch (error) {
      return String(response.status);
    }
  }

  // ---- the socket -----------------------------------------------------------------

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}/agent/ws?last_event_id=${lastEventId}`);
    socket.addEventListener("open", () => {
      retries = 0;
      setConnection(true);
      if (current) announce("viewing", current.id, true);
    });
    socket.addEventListener("message", (message) => {
      // One commit's events come as a list: the rows they touch are fetched once.
      const frames = [].concat(JSON.parse(message.data));
      holdRows = true;
      try {
        frames.forEach(handle);
      } finally {
        holdRows = false;
        for (const id of heldRows) refreshRow(id);
        heldRows.clear();
      }
    });
    socket.addEventListener("close", () => {
      setConnection(false);
      setTimeout(connect, Math.min(5000, 200 * 2 ** retries++));
    });
  }

  function setConnection(live) {
    const badge = document.getElementById("connection");
    badge.dataset.state = live ? "live" : "lost";
    badge.textContent = live ? T.connection_live : T.connection_lost;
  }

  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  }

  function announce(type, conversationId, hello = false) {
    send({ type, conversation_id: conversationId, hello });
  }

  function handle(frame) {
    if (frame.type === "heartbeat") return;
    if (frame.type === "resync") {
      // A resync after Redis came back carries the id to resume from next time.
      if (frame.id) lastEventId = Math.max(lastEventId, frame.id);
      refreshAll();
      return;
    }
    if (frame.id) {
      lastEventId = Math.max(lastEventId, frame.id);
      app.dataset.lastEventId = String(lastEventId);
    }
    const data = frame.data || {};
    if (frame.type.startsWith("agent.") && frame.type !== "agent.presence_changed") {
      collision(frame.type, data, frame.at);
      return;
    }
    if (frame.type === "agent.presence_changed") {
      if (data.agent_id === ME) document.getElementById("presence").value = data.status;
      return;
    }
    if (frame.type === "call.ringing") {
      screenPop(data);
      return;
    }
    if (data.conversation_id) {
      refreshRow(data.conversation_id);
      if (current && data.conversation_id === current.id) conversationChanged(frame.type);
    }
    if (frame.type.startsWith("complaint.") && data.customer_id) {
      // A complaint marks (and may reorder) every row of its customer.
      const selector = `tr.row[data-customer-id="${Number(data.customer_id)}"]`;
      for (const found of document.querySelectorAll(selector)) {
        refreshRow(Number(found.dataset.conversationId));
      }
      if (current && data.customer_id === current.customerId) refreshComplaints();
    }
  }

  // ---- the lists ------------------------------------------------------------------

  // One commit brings several events for one conversation (created, assigned, received):
  // one fetch runs per row at a time, and one more follows if news came in meanwhile.
  const rowFetches = new Map(); // id -> "running" | "again"

  let holdRows = false;
  const heldRows = new Set();

  function refreshRow(id) {
    if (holdRows) {
      heldRows.add(id);
      return;
    }
    if (rowFetches.has(id)) {
      rowFetches.set(id, "again");
      return;
    }
    rowFetches.set(id, "running");
    fetchRow(id).finally(() => {
      const again = rowFetches.get(id) === "again";
      rowFetches.delete(id);
      if (again) refreshRow(id);
    });
  }

  async function fetchRow(id) {
    const response = await fragment(`/console/rows/${id}`);
    const old = document.getElementById(`row-${id}`);
    if (response.status === 204) {
      if (old) old.remove();
      listsChanged();
      return;
    }
    if (!response.ok) return;
    const row = parse(await response.text()).querySelector("tr.row");
    if (!row) return;
    if (old) old.remove();
    insertSorted(document.getElementById(`list-${row.dataset.section}`), row);
    if (current && current.id === id) row.classList.add("selected");
    listsChanged();
  }

  function insertSorted(body, row) {
    const priority = Number(row.dataset.priority);
    const id = Number(row.dataset.conversationId);
    for (const other of body.querySelectorAll("tr")) {
      if (other.classList.contains("more-row")) return body.insertBefore(row, other);
      const p = Number(other.dataset.priority);
      if (p < priority || (p === priority && Number(other.dataset.conversationId) > id)) {
        return body.insertBefore(row, other);
      }
    }
    body.appendChild(row);
  }

  function listsChanged() {
    for (const section of ["mine", "queue"]) {
      const count = document.querySelectorAll(`#list-${section} tr.row`).length;
      const empty = document.querySelector(`[data-empty-of="${section}"]`);
      if (empty) empty.hidden = count > 0;
      const badge = document.querySelector(`[data-count-of="${section}"]`);
      if (badge) badge.textContent = count ? `(${count})` : "";
    }
    for (const conversationId of others.keys()) paintViewers(conversationId);
    tick();
  }

  async function refreshAll() {
    const response = await fragment("/console/lists");
    if (response.ok) {
      const body = document.getElementById("lists-body");
      body.innerHTML = await response.text();
      htmx.process(body);
      listsChanged();
    }
    if (current) refreshThread();
  }

  function minutesSince(iso) {
    const minutes = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 60000));
    return minutes < 60 ? `${minutes} min` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }

  function tick() {
    for (const time of document.querySelectorAll("time.since")) {
      time.textContent = minutesSince(time.dataset.since);
    }
    for (const sla of document.querySelectorAll("span.sla[data-due]")) {
      if (!sla.dataset.due || !sla.dataset.waiting) continue;
      const left = Date.parse(sla.dataset.due) - Date.now();
      const state = left <= 0 ? "breached" : left <= 15 * 60000 ? "soon" : "ok";
      sla.className = `sla sla-${state}`;
      sla.textContent = T[`sla_${state}`];
    }
  }

  // ---- the open conversation ------------------------------------------------------

  async function openConversation(id) {
    const response = await fragment(`/console/conversations/${id}`);
    if (!response.ok) {
      status(`${T.error} ${await detail(response)}`);
      return;
    }
    if (current && current.id !== id) announce("left", current.id);
    workspace.innerHTML = await response.text();
    htmx.process(workspace);
    const pane = document.getElementById("conversation");
    current = { id, customerId: Number(pane.dataset.customerId) };
    draft = null;
    for (const row of document.querySelectorAll("tr.row.selected")) row.classList.remove("selected");
    const row = document.getElementById(`row-${id}`);
    if (row) row.classList.add("selected");
    announce("viewing", id, true);
    paintCollision();
    loadCanned();
    checkGate();
  }

  function pane() {
    return document.getElementById("conversation");
  }

  async function conversationChanged(type) {
    if (type === "conversation.closed" || type === "conversation.reopened" || type === "conversation.assigned") {
      await reloadPane();
    } else {
      await refreshThread();
    }
  }

  // The conversation's header and status changed (assigned, closed, reopened): refresh the
  // header in place, so a reply being typed and the thread's scroll position stay as they are.
  async function reloadPane() {
    if (!current || !pane()) return;
    const id = current.id;
    const response = await fragment(`/console/conversations/${id}`);
    if (!response.ok || !current || current.id !== id || !pane()) return;
    const fresh = parse(await response.text()).getElementById("conversation");
    const head = fresh.querySelector(".conversation-head");
    head.querySelector("#collision").replaceWith(document.getElementById("collision"));
    pane().querySelector(".conversation-head").replaceWith(head);
    for (const key of ["status", "assigneeId"]) pane().dataset[key] = fresh.dataset[key];
    const closed = fresh.dataset.status === "closed";
    document.getElementById("reply-text").disabled = closed;
    document.getElementById("send").disabled = closed;
    htmx.process(head);
  }

  async function refreshThread() {
    if (!current || !pane()) return;
    const thread = document.getElementById("thread");
    const ids = [...thread.querySelectorAll("li.entry")].map((li) => Number(li.dataset.entryId));
    const after = ids.length ? Math.max(...ids) : 0;
    const response = await fragment(`/console/conversations/${current.id}/thread?after=${after}`);
    if (!response.ok || !pane()) return;
    let added = 0;
    for (const entry of parse(await response.text()).querySelectorAll("li.entry")) {
      if (document.getElementById(entry.id)) continue;
      thread.appendChild(entry);
      added += 1;
      if (entry.dataset.kind === "message" && entry.dataset.direction !== "internal") {
        pane().dataset.latestId = String(Math.max(Number(pane().dataset.latestId), Number(entry.dataset.entryId)));
      }
    }
    thread.lastElementChild?.scrollIntoView({ block: "nearest" });
    if (added) refreshTimeline();
  }

  async function refreshTimeline() {
    const timeline = document.getElementById("timeline");
    if (!current || !timeline) return;
    const response = await fragment(`/console/customers/${current.customerId}/history`);
    if (!response.ok) return;
    timeline.innerHTML = await response.text();
    htmx.process(timeline);
  }

  async function refreshComplaints() {
    for (const box of document.querySelectorAll("#complaints-box, .screen-pop .complaints")) {
      const customerId = box.dataset.customerId || box.closest("[data-customer-id]")?.dataset.customerId;
      if (!customerId) continue;
      const response = await fragment(`/console/customers/${customerId}/complaints`);
      if (response.ok) box.innerHTML = await response.text();
    }
  }

  // ---- the composer ---------------------------------------------------------------

  function status(text) {
    const line = document.getElementById("composer-status");
    if (line) line.textContent = text;
  }

  function channel() {
    const select = document.getElementById("reply-channel");
    return select && select.value ? select.value : null;
  }

  let gateTimer = null;
  function checkGateSoon() {
    clearTimeout(gateTimer);
    gateTimer = setTimeout(checkGate, 250);
  }

  async function checkGate() {
    if (!current || !document.getElementById("gate")) return;
    const id = current.id;
    const gateLine = document.getElementById("gate");
    const response = await api("POST", `/api/conversations/${id}/reply/check`, { channel: channel() });
    if (!current || current.id !== id) return;
    if (!response.ok) {
      gateLine.textContent = `${T.gate_blocked} ${await detail(response)}`;
      gateLine.dataset.allowed = "no";
    } else {
      const found = await response.json();
      gateLine.dataset.allowed = found.allowed ? "yes" : "no";
      gateLine.textContent = found.allowed
        ? `${T.gate_ok} ${found.recipient}`
        : `${T.gate_blocked} ${found.reasons.map(reasonText).join(", ")}`;
    }
    await countSegments();
  }

  // The gate's reason codes (`block:sms_stop`) in the agent's words, the code beside.
  function reasonText(code) {
    const [kind, value] = code.split(":");
    const named = T[`v_${value}`];
    return kind === "block" && named ? `${named} (${code})` : code;
  }

  async function countSegments() {
    const line = document.getElementById("segments");
    const text = document.getElementById("reply-text");
    if (!line || !text) return;
    line.hidden = channel() !== "sms";
    if (line.hidden) return;
    const response = await api("POST", "/api/sms/segments", { text: text.value });
    if (!response.ok) return;
    const counted = await response.json();
    line.textContent = `${T.segments}: ${counted.segments} (${counted.encoding}, ${counted.characters})`;
    line.dataset.segments = String(counted.segments);
  }

  function draftStarted() {
    if (draft || !current) return draft ? draft.claim : Promise.resolve();
    draft = { seen: Number(pane().dataset.latestId), clientId: crypto.randomUUID() };
    draft.claim = Number(pane().dataset.assigneeId) === ME ? Promise.resolve() : claim(current.id);
    return draft.claim;
  }

  // Starting a reply claims the conversation, unless another agent has it.
  async function claim(id) {
    const response = await api("POST", `/console/conversations/${id}/claim`);
    if (!response.ok) return;
    const found = await response.json();
    const collisionBox = document.getElementById("collision");
    if (!current || current.id !== id || !pane()) return;
    if (found.claimed) {
      pane().dataset.assigneeId = String(ME);
      document.getElementById("assignee-name").textContent = app.dataset.agentName;
      if (!document.getElementById("composer-status").textContent) status(T.you_claimed);
    } else if (collisionBox) {
      const note = document.createElement("p");
      note.className = "claimed";
      note.textContent = `${T.claimed_by} ${found.assignee_name}`;
      collisionBox.appendChild(note);
    }
  }

  function typed() {
    draftStarted();
    const now = Date.now();
    if (current && now - lastTypingSent > TYPING_SENT_EVERY_MS) {
      lastTypingSent = now;
      announce("typing", current.id);
    }
    checkGateSoon();
  }

  async function sendReply(anyway = false) {
    const text = document.getElementById("reply-text");
    if (!current || !text || !text.value.trim()) return;
    await draftStarted();
    if (anyway) draft.seen = Number(pane().dataset.latestId);
    const id = current.id;
    const response = await api("POST", `/api/conversations/${id}/reply`, {
      text: text.value,
      channel: channel(),
      client_id: draft.clientId,
      seen_interaction_id: draft.seen,
    });
    if (response.status === 409) {
      const body = await response.json();
      if (Array.isArray(body.changes)) {
        showStale(body.changes);
        await refreshThread();
        return;
      }
      status(`${T.error} ${body.detail}`);
      return;
    }
    if (!response.ok) {
      status(`${T.error} ${await detail(response)}`);
      return;
    }
    const result = await response.json();
    text.value = "";
    draft = null;
    document.getElementById("stale").hidden = true;
    status(result.status === "blocked" ? `${T.reply_blocked} ${result.reasons.map(reasonText).join(", ")}` : T.reply_queued);
    await refreshThread();
    refreshRow(id);
    checkGate();
  }

  function showStale(changes) {
    const box = document.getElementById("stale");
    const list = document.getElementById("stale-changes");
    list.replaceChildren();
    for (const change of changes) {
      const item = document.createElement("li");
      const who = change.direction === "inbound" ? T.inbound : T.outbound;
      item.textContent = `${who}: ${change.text || ""}`;
      list.appendChild(item);
    }
    box.hidden = false;
  }

  async function addNote() {
    const text = document.getElementById("reply-text");
    if (!current || !text || !text.value.trim()) return;
    const response = await api("POST", `/api/conversations/${current.id}/notes`, { text: text.value });
    if (!response.ok) {
      status(`${T.error} ${await detail(response)}`);
      return;
    }
    text.value = "";
    draft = null;
    status(T.note_added);
    await refreshThread();
  }

  async function loadCanned() {
    const select = document.getElementById("canned");
    if (!select) return;
    const response = await api("GET", `/console/conversations/${select.dataset.conversationId}/canned`);
    if (!response.ok) return;
    for (const canned of await response.json()) {
      const option = document.createElement("option");
      option.value = canned.text;
      option.textContent = canned.title;
      select.appendChild(option);
    }
  }

  function insertCanned(select) {
    const text = document.getElementById("reply-text");
    if (!select.value || !text) return;
    text.value = text.value ? `${text.value}\n\n${select.value}` : select.value;
    select.value = "";
    text.focus();
    typed();
  }

  // ---- actions --------------------------------------------------------------------

  async function act(method, url, body) {
    const response = await api(method, url, body);
    if (!response.ok) {
      status(`${T.error} ${await detail(response)}`);
      return false;
    }
    return true;
  }

  const ACTIONS = {
    open: (button) => openConversation(Number(button.dataset.conversationId)),
    "dismiss-pop": () => {
      document.getElementById("screen-pop").hidden = true;
    },
    take: () => assign({ assignee_id: ME }),
    transfer: () => {
      const target = document.getElementById("transfer-target").value;
      if (!target) return;
      const [kind, value] = target.split(/:(.*)/s);
      assign(kind === "agent" ? { assignee_id: Number(value) } : { assignee_id: null, queue: value });
    },
    close: () => setStatus("closed"),
    reopen: () => setStatus("open"),
    note: () => addNote(),
    "send-anyway": () => sendReply(true),
    "resolve-complaint": async (button) => {
      const id = button.dataset.complaintId;
      if (await act("PATCH", `/api/complaints/${id}`, { status: "resolved" })) refreshComplaints();
    },
    "show-images": (button) => {
      const entry = document.getElementById(`entry-${button.dataset.entryId}`);
      const frame = entry.querySelector("iframe.mail-frame");
      frame.src = `/console/interactions/${button.dataset.entryId}/body?images=1`;
      button.closest(".images-off").hidden = true;
    },
  };

  async function assign(body) {
    if (current && (await act("POST", `/api/conversations/${current.id}/assign`, body))) {
      refreshRow(current.id);
      reloadPane();
    }
  }

  async function setStatus(wanted) {
    if (current && (await act("POST", `/api/conversations/${current.id}/close`, { status: wanted }))) {
      refreshRow(current.id);
      reloadPane();
    }
  }

  async function createComplaint(form) {
    const subject = form.querySelector("input[name=subject]");
    if (!subject.value.trim()) return;
    const body = {
      customer_id: Number(form.dataset.customerId),
      subject: subject.value,
      conversation_ids: current ? [current.id] : [],
    };
    if (await act("POST", "/api/complaints", body)) {
      subject.value = "";
      refreshComplaints();
    }
  }

  // ---- collision ------------------------------------------------------------------

  function collision(type, data, at) {
    if (data.agent_id === ME || Date.now() - Date.parse(at) > VIEWING_FORGET_MS) return;
    const id = data.conversation_id;
    if (!others.has(id)) others.set(id, new Map());
    const viewers = others.get(id);
    if (type === "agent.left") {
      viewers.delete(data.agent_id);
    } else {
      const known = viewers.get(data.agent_id) || { name: data.name, typingUntil: 0 };
      known.seen = Date.now();
      if (type === "agent.typing") known.typingUntil = Date.now() + TYPING_SHOWN_MS;
      viewers.set(data.agent_id, known);
      // Someone opened what I have open: tell them I am here too.
      if (data.hello && current && current.id === id) announce("viewing", id);
    }
    paintViewers(id);
    if (current && current.id === id) paintCollision();
  }

  function viewersOf(id) {
    const viewers = others.get(id);
    if (!viewers) return [];
    const now = Date.now();
    for (const [agentId, viewer] of viewers) {
      if (now - viewer.seen > VIEWING_FORGET_MS) viewers.delete(agentId);
    }
    return [...viewers.values()];
  }

  function paintViewers(id) {
    const cell = document.querySelector(`[data-viewers-of="${id}"]`);
    if (!cell) return;
    const names = viewersOf(id).map((viewer) => viewer.name);
    cell.textContent = names.length ? `◉ ${names.join(", ")}` : "";
  }

  function paintCollision() {
    const box = document.getElementById("collision");
    if (!box || !current) return;
    box.querySelectorAll(".viewing, .typing").forEach((node) => node.remove());
    const viewers = viewersOf(current.id);
    if (viewers.length) {
      const line = document.createElement("p");
      line.className = "viewing";
      line.textContent = `◉ ${T.viewing} ${viewers.map((viewer) => viewer.name).join(", ")}`;
      box.prepend(line);
    }
    for (const viewer of viewers.filter((v) => v.typingUntil > Date.now())) {
      const line = document.createElement("p");
      line.className = "typing";
      line.textContent = `✎ ${viewer.name} ${T.typing}`;
      box.appendChild(line);
    }
  }

  // ---- screen pop -----------------------------------------------------------------

  async function screenPop(data) {
    if (data.agent_id !== ME || !data.interaction_id) return;
    const response = await fragment(`/console/calls/${data.interaction_id}/pop`);
    if (!response.ok) return;
    const pop = document.getElementById("screen-pop");
    pop.innerHTML = await response.text();
    pop.hidden = false;
  }

  // ---- keyboard -------------------------------------------------------------------

  function rows() {
    return [...document.querySelectorAll("#lists tr.row")];
  }

  function moveSelection(step) {
    const all = rows();
    if (!all.length) return;
    const at = all.indexOf(document.activeElement);
    const next = all[Math.max(0, Math.min(all.length - 1, at + step))] || all[0];
    next.focus();
  }

  function isTyping(target) {
    return target.closest("input, textarea, select, [contenteditable]") !== null;
  }

  function onKey(event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      if (event.target.id === "reply-text") {
        event.preventDefault();
        if (event.shiftKey) addNote();
        else sendReply();
      }
      return;
    }
    if (event.key === "Escape") {
      document.getElementById("screen-pop").hidden = true;
      if (isTyping(event.target)) event.target.blur();
      return;
    }
    if (isTyping(event.target) || event.ctrlKey || event.metaKey || event.altKey) return;
    const row = event.target.closest && event.target.closest("tr.row");
    const keys = {
      j: () => moveSelection(1),
      k: () => moveSelection(-1),
      Enter: () => row && openConversation(Number(row.dataset.conversationId)),
      r: () => document.getElementById("reply-text")?.focus(),
      n: () => document.getElementById("reply-text")?.focus(),
      e: () => current && setStatus("closed"),
      "/": () => rows()[0]?.focus(),
      "?": () => document.getElementById("help").showModal(),
    };
    if (keys[event.key]) {
      event.preventDefault();
      keys[event.key]();
    }
  }

  // ---- wiring ---------------------------------------------------------------------

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-action]");
    if (button && ACTIONS[button.dataset.action]) {
      event.preventDefault();
      ACTIONS[button.dataset.action](button);
      return;
    }
    const row = event.target.closest("tr.row");
    if (row) openConversation(Number(row.dataset.conversationId));
  });
  document.addEventListener("submit", (event) => {
    if (event.target.id === "composer") {
      event.preventDefault();
      sendReply();
    } else if (event.target.id === "new-complaint") {
      event.preventDefault();
      createComplaint(event.target);
    }
  });
  document.addEventListener("input", (event) => {
    if (event.target.id === "reply-text") typed();
  });
  document.addEventListener("change", (event) => {
    if (event.target.id === "canned") insertCanned(event.target);
    if (event.target.id === "reply-channel") checkGate();
    if (event.target.id === "language") event.target.form.submit();
    if (event.target.id === "presence") {
      api("PUT", "/api/agents/me/presence", { status: event.target.value });
    }
  });
  document.addEventListener("keydown", onKey);
  document.getElementById("help-button").addEventListener("click", () => {
    document.getElementById("help").showModal();
  });
  document.body.addEventListener("htmx:afterSwap", listsChanged);

  setInterval(() => {
    if (current) announce("viewing", current.id);
  }, VIEWING_EVERY_MS);
  setInterval(() => {
    for (const id of others.keys()) paintViewers(id);
    paintCollision();
    tick();
  }, 5000);
  listsChanged();
  connect();
})();
