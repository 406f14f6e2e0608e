// The salas chat page: the tutorial's rooms page grown into a real chat.
//
// It speaks the chat wire protocol (docs/chat-protocol.md) through the official Socket.IO
// client that salas serves at /socket.io/socket.io.js. Plain browser JavaScript: no
// framework, no build step. Everything that comes from the network is put on the page as
// text (textContent), never parsed as HTML.
"use strict";

(() => {
  // The tutorial's three rooms are always offered, whatever the server lists.
  const DEFAULT_ROOMS = ["room1", "room2", "room3"];
  const HISTORY_PAGE = 50; // what channel_join returns; a full page means older ones exist
  const GAP_PAGE = 200; // history pages fetched to fill a gap after a reconnect (the server's most)
  const MAX_GAP_PAGES = 5; // a bigger gap than this (more than the log holds): start afresh
  const SEND_RETRIES = 3; // the client sends again when no ack came (same client_id: stored once)
  const ACK_TIMEOUT_MS = 10000;
  const TYPING_RESEND_MS = 2000; // tell the room "still typing" at most this often
  const TYPING_IDLE_MS = 3000; // no keystroke for this long: "stopped typing"
  const TYPING_SHOW_MS = 8000; // forget a typist we heard nothing more from (lost "false")
  const ERROR_SHOW_MS = 8000;
  const MAX_LISTED_ROOMS = 100; // busy servers have many rooms; list the biggest
  const MAX_LOG_ITEMS = 1000; // a tab left open on a busy room drops its oldest lines
  const STORE_NAME = "salas.name"; // localStorage: the name survives browser restarts
  const STORE_ROOMS = "salas.rooms"; // sessionStorage: open rooms survive a reload
  const STORE_TOKEN = "salas.token"; // sessionStorage: signed in for this tab, through reloads
  const MODERATORS = new Set(["moderator", "admin"]);

  // Class names style.css gives to parts of the page. A room named like one of them must not
  // get it as a class on its box (it would be styled as that part); data-room still names it.
  const PAGE_CLASSES = new Set([
    "auth-message", "auth-panel", "auth-title", "author", "ban", "ban-length", "ban-seconds",
    "brand", "composer", "composer-input", "conn-state", "count", "delete", "deleted", "empty",
    "errors", "error-item", "failed", "join", "join-form", "kick", "layout", "leave", "lock",
    "log", "log-region", "log-wrap", "member-actions", "member-list", "member-name", "members",
    "members-title", "mine", "mode", "msg", "nick-form", "older", "pending", "reconnect",
    "rejoin", "retry", "role-badge", "room-count", "room-head", "room-item", "room-list",
    "room-lock", "room-name", "room-notice", "room-notice-text", "room-title", "rooms-view",
    "sidebar", "sidebar-title", "status", "sys", "text", "token-form", "topbar", "typing",
    "unread", "visually-hidden", "whoami",
  ]);

  const $ = (selector, root = document) => root.querySelector(selector);

  const page = {
    conn: $("#conn-state"),
    reconnect: $("#reconnect"),
    mode: $("#mode"),
    whoami: $("#whoami"),
    whoamiName: $("#whoami-name"),
    whoamiRole: $("#whoami-role"),
    authPanel: $("#auth-panel"),
    authMessage: $("#auth-message"),
    tokenForm: $("#token-form"),
    tokenInput: $("#token-input"),
    nickForm: $("#nick-form"),
    nick: $("#nick"),
    roomList: $("#room-list"),
    joinForm: $("#join-form"),
    joinInput: $("#join-input"),
    view: $("#rooms-view"),
    empty: $("#empty"),
    errors: $("#errors"),
    template: $("#room-template"),
  };

  const state = {
    name: storageGet(localStorage, STORE_NAME) || "",
    singleRoom: false,
    joined: new Map(), // room name -> RoomView, in the order they were joined
    counts: new Map(), // room name -> member count, from the server's `rooms` events
    joining: new Set(), // rooms with a channel_join in flight (ignore double clicks)
    active: null, // name of the room shown
    epoch: 0, // connections so far: work begun on an older one stops when it sees a newer one
    renamedOffline: false, // a name chosen while offline, to ask for once back
    token: null, // the sign-in token (a JWT), when the server wants one
    userId: null, // mine, from `welcome`: messages and members carry it
    role: "member",
    auth: false, // the server took my identity from the token
    nickAllowed: true,
    privateRooms: new Set(), // listed rooms marked private
    forbidden: new Set(), // rooms the server refused as private: never listed
  };

  // ---------------------------------------------------------------- storage (may be disabled)
  function storageGet(store, key) {
    try {
      return store.getItem(key);
    } catch {
      return null;
    }
  }

  function storageSet(store, key, value) {
    try {
      store.setItem(key, value);
    } catch {
      // Private mode or quota: the page works, it just forgets on reload.
    }
  }

  // The rooms I am in (boxes saying I was removed or refused are open, but not joined).
  function openRooms() {
    return [...state.joined.values()].filter((view) => !view.out).map((view) => view.name);
  }

  function saveOpenRooms() {
    storageSet(sessionStorage, STORE_ROOMS, JSON.stringify(openRooms()));
  }

  function savedOpenRooms() {
    try {
      const rooms = JSON.parse(storageGet(sessionStorage, STORE_ROOMS) || "[]");
      return Array.isArray(rooms) ? rooms.filter((r) => typeof r === "string") : [];
    } catch {
      return [];
    }
  }

  // ---------------------------------------------------------------- the sign-in token
  // `#token=...` in the address (the link `salas token` prints) signs in. The token is kept
  // for this tab (sessionStorage: a reload stays signed in, closing the tab forgets it) and
  // taken out of the address, so it is not left in the history, a bookmark or a screenshot.
  function tokenFromAddress() {
    const hash = location.hash.startsWith("#") ? location.hash.slice(1) : "";
    const token = new URLSearchParams(hash).get("token");
    if (token === null) return null;
    history.replaceState(history.state, "", location.pathname + location.search);
    return token.trim() || null;
  }

  function setToken(token) {
    state.token = token;
    storageSet(sessionStorage, STORE_TOKEN, token);
  }

  // When the token expires (ms), read from its own claims. Not verified: the server does
  // that; the page only needs to tell "expired" from other refusals and drops.
  function tokenExpiry(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const claims = JSON.parse(atob(part.padEnd(Math.ceil(part.length / 4) * 4, "=")));
      return typeof claims.exp === "number" ? claims.exp * 1000 : null;
    } catch {
      return null;
    }
  }

  function tokenExpired() {
    const exp = state.token ? tokenExpiry(state.token) : null;
    return exp !== null && exp <= Date.now();
  }

  // A pasted token, or the whole link that carries one.
  function pastedToken(text) {
    const value = text.trim();
    const at = value.indexOf("token=");
    return (at >= 0 ? value.slice(at + "token=".length).split("&")[0] : value).trim();
  }

  function signInText(reason) {
    const why = String(reason ?? "");
    if (!state.token || /missing/i.test(why)) {
      return "This chat needs you to sign in: paste the token (or the link) you were given.";
    }
    if (/expired/i.test(why) || tokenExpired()) return "Your sign-in token has expired: paste a new one to go on.";
    return `Your sign-in token was not accepted${why ? ` (${why})` : ""}: paste another one.`;
  }

  function showSignIn(text) {
    page.authMessage.textContent = text;
    const wasHidden = page.authPanel.hidden;
    page.authPanel.hidden = false;
    page.reconnect.hidden = true; // the same token would be refused again
    page.nickForm.hidden = true; // the name will come from the token
    if (wasHidden) page.tokenInput.focus();
  }

  function hideSignIn() {
    page.authPanel.hidden = true;
    page.authMessage.textContent = "";
  }

  page.tokenForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const token = pastedToken(page.tokenInput.value);
    if (!token) return;
    setToken(token);
    page.tokenInput.value = "";
    hideSignIn();
    setConnState("connecting");
    if (client.connected) client.disconnect();
    client.connect(); // the handshake's auth (a function) sends the new token
  });

  state.token = tokenFromAddress() ?? storageGet(sessionStorage, STORE_TOKEN);
  if (state.token) setToken(state.token);

  // ---------------------------------------------------------------- connection
  // The token (or, without one, the name) travels in the handshake; a function, so a
  // reconnect sends the current one.
  // `retries`: an event the server has not acknowledged within ackTimeout, or when the
  // connection dropped, is sent again (one at a time, in order); messages carry a client_id,
  // so the server stores and broadcasts a retried one once.
  const client = io({
    auth: (send) => send(state.token ? { token: state.token } : state.name ? { name: state.name } : {}),
    retries: SEND_RETRIES,
    ackTimeout: ACK_TIMEOUT_MS,
  });

  // Emit `event` and wait for the server's answer. Always resolves to the protocol's shape,
  // {ok: true, ...} or {ok: false, error: {code, message}}, also when offline or timed out.
  function request(event, arg) {
    if (!client.connected) {
      // Socket.IO would keep it and send it after a reconnect, long after the user gave up.
      return Promise.resolve(failure("offline", "Not connected to the server."));
    }
    return new Promise((resolve) => {
      client.emit(event, arg, (err, answer) => {
        if (err) resolve(failure("timeout", `The server did not answer (${event}).`));
        else if (!answer || typeof answer !== "object") resolve(failure("bad_reply", `Odd answer to ${event}.`));
        else resolve(answer);
      });
    });
  }

  function failure(code, message) {
    return { ok: false, error: { code, message } };
  }

  const CONN_LABELS = {
    connecting: "connecting…",
    online: "online",
    reconnecting: "reconnecting…",
    offline: "offline",
  };

  function setConnState(name) {
    page.conn.dataset.state = name;
    page.conn.textContent = CONN_LABELS[name];
    page.reconnect.hidden = name !== "offline" || !page.authPanel.hidden;
    document.body.dataset.conn = name;
  }

  client.on("connect", () => {
    state.epoch += 1;
    setConnState("online");
  });

  client.on("disconnect", (reason) => {
    // After these two the client does not try again by itself; anything else it does.
    const final = reason === "io client disconnect" || reason === "io server disconnect";
    setConnState(final ? "offline" : "reconnecting");
    // The server ends a session when its token expires: say so, and ask for a new one.
    if (reason === "io server disconnect" && tokenExpired()) showSignIn(signInText("expired"));
    // Until `welcome` says whether the server kept our rooms (recovered), or we rejoined them,
    // messages typed meanwhile wait (shown as pending).
    state.joined.forEach((view) => (view.live = false));
    clearAllTypists();
  });

  client.on("connect_error", (err) => {
    if (err?.data?.code === "unauthorized") {
      setConnState("offline"); // refused: the client does not try again by itself
      showSignIn(signInText(err.data.reason));
      return;
    }
    // `active` is false when the server refused us (no automatic retry): that is offline.
    if (!client.active) setConnState("offline");
    else if (page.conn.dataset.state !== "connecting") setConnState("reconnecting");
  });

  client.io.on("reconnect_attempt", () => setConnState("reconnecting"));
  client.io.on("reconnect_failed", () => setConnState("offline"));

  page.reconnect.addEventListener("click", () => {
    setConnState("connecting");
    client.connect();
  });

  // Every connection starts with `welcome`. A recovered one (the server kept our session and
  // has already sent what we missed) lists the rooms we are still in, with the name we show
  // there: nothing to fetch for them. Any other open room is joined again and its box catches
  // up with `history {after: last id seen}` (see `resync`).
  client.on("welcome", (info) => {
    const offlineName = state.renamedOffline ? state.name : null;
    state.renamedOffline = false;
    const who = [state.userId, state.role].join("|");
    state.userId = typeof info.user_id === "string" ? info.user_id : null;
    state.role = typeof info.role === "string" ? info.role : "member";
    state.auth = info.auth === true;
    state.nickAllowed = info.nick_allowed !== false;
    hideSignIn();
    setName(String(info.name ?? ""));
    renderWhoami();
    // Signed in again as someone else (or with another role): Delete, Kick and Ban follow.
    if (who !== [state.userId, state.role].join("|")) state.joined.forEach(refreshControls);
    state.singleRoom = Boolean(info.single_room);
    page.mode.hidden = !state.singleRoom;
    if (Array.isArray(info.rooms)) setRoomCounts(info.rooms);
    const kept = new Map();
    if (info.recovered === true && Array.isArray(info.channels)) {
      for (const c of info.channels) {
        if (c && typeof c.channel === "string" && typeof c.name === "string") kept.set(c.channel, c.name);
      }
    }
    const open = state.joined.size ? openRooms() : savedOpenRooms();
    const wanted = state.singleRoom ? open.slice(-1) : open;
    const focus = state.active ?? wanted[wanted.length - 1];
    for (const room of wanted) {
      const view = state.joined.get(room);
      if (view?.out) continue; // removed from it, or refused: joined again only when asked
      if (view && kept.has(room)) {
        view.me = kept.get(room);
        if (view.catching) resync(view, { join: false }); // a catch-up the drop interrupted
        else setLive(view);
      } else if (view) {
        resync(view, { join: true });
      } else {
        joinRoom(room, { focus: room === focus });
      }
    }
    // Rooms the server kept that the page no longer shows (closed while we were away).
    for (const room of kept.keys()) if (!state.joined.has(room)) request("channel_leave", room);
    // Recovered, the server kept the name we had; one chosen offline is asked for now.
    if (offlineName && offlineName !== state.name && info.recovered === true) changeName(offlineName);
  });

  client.on("rooms", (info) => {
    if (info && Array.isArray(info.rooms)) setRoomCounts(info.rooms);
  });

  // (With connection state recovery on, a last extra argument is the broadcast's offset.)
  client.on("message", (msg) => {
    const view = msg && state.joined.get(msg.channel);
    if (!view) return;
    if (view.catching) {
      view.held.push(msg); // shown once the gap before it is filled
      return;
    }
    showLive(view, msg);
  });

  function showLive(view, msg) {
    if (!receive(view, msg)) return;
    setTypist(view, String(msg.user ?? ""), false); // whoever sent has stopped typing
    if (!isInView(view)) addUnread(view);
  }

  client.on("presence", (p) => {
    const view = state.joined.get(p.channel);
    if (!view || view.out) return;
    const user = String(p.user ?? "");
    const previous = typeof p.previous === "string" ? p.previous : null;
    const nameIsMine = p.event === "renamed" ? previous === view.me : user === view.me;
    const aboutMe = typeof p.user_id === "string" && state.userId ? p.user_id === state.userId : nameIsMine;
    if (p.event === "renamed" && aboutMe) view.me = user; // e.g. my "#2" suffix went away
    applyPresence(view, p, user, previous);
    if (p.event !== "joined") setTypist(view, previous ?? user, false);
    if (!aboutMe) appendNotice(view, presenceText(p, user, previous));
  });

  // A moderator removed me from a room (every tab of mine): the box stays, saying so.
  client.on("kicked", (k) => {
    const view = k && state.joined.get(k.channel);
    if (!view) return;
    const by = String(k.by ?? "a moderator");
    if (k.banned) {
      const text = `You were banned from ${view.name} by ${by}${untilText(k.until)}.`;
      setOut(view, "banned", text, { canRejoin: typeof k.until === "number" });
    } else {
      setOut(view, "kicked", `You were removed from ${view.name} by ${by}.`);
    }
  });

  client.on("message_deleted", (d) => {
    const view = d && state.joined.get(d.channel);
    if (view) markDeleted(view, d.id);
  });

  client.on("typing", (t) => {
    const view = state.joined.get(t.channel);
    if (view && typeof t.user_id === "string" && t.user_id === state.userId) return; // another tab of mine
    if (view && typeof t.user === "string" && t.user !== view.me) setTypist(view, t.user, Boolean(t.typing));
  });

  client.on("error", (e) => showError(e || {}));

  function presenceText(p, user, previous) {
    if (p.event === "joined") return `${user} joined`;
    if (p.event === "left") return `${user} left`;
    if (p.event === "renamed") return `${previous ?? "someone"} is now ${user}`;
    const by = typeof p.by === "string" && p.by ? ` by ${p.by}` : "";
    if (p.event === "kicked") return `${user} was removed${by}`;
    if (p.event === "banned") return `${user} was banned${by}`;
    return `${user}: ${p.event}`;
  }

  function untilText(until) {
    if (typeof until !== "number") return "";
    const when = new Date(until);
    const today = when.toDateString() === new Date().toDateString();
    const clock = when.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
    return ` until ${today ? clock : `${when.toLocaleDateString([], { month: "short", day: "numeric" })} ${clock}`}`;
  }

  // ---------------------------------------------------------------- my name
  function setName(name) {
    state.name = name;
    page.nick.value = name;
    // A name from a token is not one chosen here: it does not replace that one.
    if (name && !state.auth) storageSet(localStorage, STORE_NAME, name);
  }

  function isModerator() {
    return MODERATORS.has(state.role);
  }

  // Signed in: the name (and role) from the token; renaming only where the server allows it.
  function renderWhoami() {
    page.whoami.hidden = !state.auth;
    page.whoamiName.textContent = state.name;
    page.whoamiRole.hidden = !state.auth || state.role === "member";
    page.whoamiRole.textContent = state.role;
    page.nickForm.hidden = !state.nickAllowed;
  }

  page.nickForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const wanted = page.nick.value.trim();
    if (!wanted || wanted === state.name) {
      page.nick.value = state.name;
      return;
    }
    if (!client.connected) {
      // Nobody to ask: the name goes with the next handshake, where the server checks it
      // (or, if it recovers our session, asked for right after; see `welcome`).
      setName(wanted);
      state.renamedOffline = true;
      return;
    }
    await changeName(wanted);
  });

  async function changeName(wanted) {
    const answer = await request("nick", wanted);
    if (answer.ok) {
      setName(String(answer.name ?? wanted));
      // A nick the server accepted is the same in every room (no "#2" is left anywhere).
      state.joined.forEach((view) => (view.me = state.name));
    } else {
      showError(answer.error);
      page.nick.value = state.name;
    }
  }

  // ---------------------------------------------------------------- joining and leaving
  // Join `name` (or rejoin it after a reconnect); true once the server has said yes.
  async function joinRoom(name, { focus = true } = {}) {
    if (state.joining.has(name)) return false;
    state.joining.add(name);
    try {
      const answer = await request("channel_join", name);
      if (!answer.ok) {
        if (!refused(name, answer.error)) showError(answer.error);
        return false;
      }
      const room = typeof answer.channel === "string" ? answer.channel : name;
      state.forbidden.delete(room);
      if (state.singleRoom) {
        // The server has left every other room for us; close their boxes to match.
        [...state.joined.keys()].filter((r) => r !== room).forEach(closeRoom);
      }
      const isNew = !state.joined.has(room);
      const view = state.joined.get(room) ?? openRoom(room);
      clearOut(view);
      setPrivate(view, answer.private === true);
      // My name in this room: my name, or "name#2" if a member there already shows it.
      view.me = typeof answer.name === "string" ? answer.name : state.name;
      // (A box already open only gets the messages it does not show yet.)
      const messages = Array.isArray(answer.messages) ? answer.messages : [];
      messages.forEach((m) => receive(view, m, { quiet: true }));
      if (isNew) view.older.hidden = messages.length < HISTORY_PAGE;
      setMembersFrom(view, answer);
      setLive(view);
      if (focus || !state.active) showRoom(room);
      scrollToEnd(view);
      saveOpenRooms();
      return true;
    } finally {
      state.joining.delete(name);
    }
  }

  // A room box that was open before a reconnect the server did not recover: join again, then
  // fill the gap since the last message it shows with `history {after}` page by page. Live
  // messages of the room wait meanwhile (`held`), so the box stays in the server's order;
  // whatever arrives twice (history and live) is shown once. With `join: false` the server
  // kept us in the room and only the gap is filled (a catch-up cut short by another drop).
  async function resync(view, { join }) {
    const epoch = state.epoch;
    if (view.syncing === epoch) return;
    view.syncing = epoch;
    view.catching = true;
    // Cut short by another drop, it stops: the next connection catches up again.
    const current = () =>
      epoch === state.epoch && client.connected && state.joined.get(view.name) === view;
    try {
      let latest = [];
      if (join) {
        const answer = await request("channel_join", view.name);
        if (!current()) return;
        if (!answer.ok) {
          // (Not back in the room: messages typed there wait, unless we may not come back.)
          if (!refused(view.name, answer.error)) showError(answer.error);
          const held = view.held;
          view.held = [];
          view.catching = false;
          held.forEach((m) => showLive(view, m));
          return;
        }
        view.me = typeof answer.name === "string" ? answer.name : state.name;
        setPrivate(view, answer.private === true);
        setMembersFrom(view, answer);
        latest = Array.isArray(answer.messages) ? answer.messages : [];
      }
      // A store that forgot its messages (memory://, restarted) counts ids from 1 again:
      // the box starts afresh, as the history now does.
      const forgotten = latest.some(
        (m) =>
          typeof m.id === "number" &&
          m.id <= (view.lastId ?? -1) &&
          !view.ids.has(messageKey(m)) &&
          !view.pending.has(m.client_id),
      );
      const filled = forgotten ? "forgotten" : await fillGap(view, current);
      if (!current()) return;
      if (filled === "too much") await startAfresh(view);
      if (filled === "forgotten") restartLog(view, latest);
      if (!current()) return;
      // After the gap: the join's latest (all shown by now, unless the store lost its ids,
      // as a memory store does when the server restarts).
      latest.forEach((m) => receive(view, m, { quiet: true }));
      const held = view.held;
      view.held = [];
      view.catching = false;
      held.forEach((m) => showLive(view, m));
      setLive(view);
      scrollToEnd(view);
    } finally {
      if (view.syncing === epoch) view.syncing = null;
    }
  }

  // Fetch what came after the last message shown: "done", "too much" (more than the log
  // holds), or "failed" (shown as an error; the box goes on with what it has).
  async function fillGap(view, current) {
    let after = view.lastId;
    if (after === null) return "done"; // nothing shown yet: the join's latest are the start
    for (let page = 0; page < MAX_GAP_PAGES; page++) {
      const answer = await request("history", { channel: view.name, after, limit: GAP_PAGE });
      if (!current()) return "failed";
      if (!answer.ok) {
        showError(answer.error);
        return "failed";
      }
      const messages = Array.isArray(answer.messages) ? answer.messages : [];
      messages.forEach((m) => receive(view, m, { quiet: true }));
      if (messages.length < GAP_PAGE) return "done";
      after = messages[messages.length - 1].id;
    }
    return "too much";
  }

  // Missed more than the log holds: show the latest page, as on a first visit ("Load earlier
  // messages" pages back). Messages not yet sent stay, at the end.
  async function startAfresh(view) {
    const answer = await request("history", { channel: view.name, limit: HISTORY_PAGE });
    if (answer.ok) restartLog(view, Array.isArray(answer.messages) ? answer.messages : []);
  }

  function restartLog(view, messages) {
    for (const item of [...view.log.children]) {
      if (!item.classList.contains("pending") && !item.classList.contains("failed")) item.remove();
    }
    view.ids.clear();
    view.oldestId = null;
    view.lastId = null;
    messages.forEach((m) => receive(view, m, { quiet: true }));
    view.pending.forEach((entry) => view.log.appendChild(entry.item));
    view.older.hidden = messages.length < HISTORY_PAGE;
    delete view.older.dataset.done;
  }

  // A join the server refused because the room is private (and not mine) or I am banned
  // from it: the room's box says so. False for any other refusal.
  function refused(name, error) {
    const code = error?.code;
    if (code !== "forbidden" && code !== "banned") return false;
    const view = state.joined.get(name) ?? openRoom(name);
    if (code === "forbidden") {
      state.forbidden.add(name);
      setOut(view, "forbidden", `${name} is a private room: you may not enter it.`, { canRejoin: false });
    } else {
      const until = untilText(error.until);
      setOut(view, "banned", `You are banned from ${name}${until}.`, { canRejoin: Boolean(until) });
    }
    if (state.active !== name) showRoom(name);
    return true;
  }

  // The box of a room I am not in (any more): it says why, keeps what it showed, offers to
  // join again where that may work, and "Close". Nothing typed there is sent.
  function setOut(view, kind, text, { canRejoin = true } = {}) {
    view.out = kind;
    view.live = false;
    view.catching = false;
    view.held = [];
    clearTimeout(view.typingIdle);
    view.typingSentAt = 0;
    clearTypists(view);
    const waiting = view.waiting;
    view.waiting = [];
    waiting.forEach((entry) => setPendingState(entry, "failed", "not sent"));
    view.box.dataset.state = "out";
    setRoomNotice(view, text);
    view.rejoin.hidden = !canRejoin;
    view.composer.hidden = true;
    view.leave.textContent = "Close";
    view.leave.setAttribute("aria-label", `Close ${view.name}`);
    setMembers(view, [], 0);
    saveOpenRooms();
  }

  function clearOut(view) {
    if (!view.out) return;
    view.out = null;
    delete view.box.dataset.state;
    setRoomNotice(view, "");
    view.composer.hidden = false;
    view.leave.textContent = "Leave";
    view.leave.setAttribute("aria-label", `Leave ${view.name}`);
  }

  // A line at the top of the box about the room itself (removed, refused, not allowed).
  function setRoomNotice(view, text) {
    view.noticeText.textContent = text;
    view.notice.hidden = !text;
    if (!text) view.rejoin.hidden = true;
  }

  function setPrivate(view, isPrivate) {
    view.private = isPrivate || state.privateRooms.has(view.name);
    view.lock.hidden = !view.private;
  }

  // The server counts us in the room (again): typing works, waiting messages go out.
  function setLive(view) {
    view.live = true;
    const waiting = view.waiting;
    view.waiting = [];
    waiting.forEach((entry) => deliver(view, entry));
  }

  async function leaveRoom(view) {
    if (view.out) {
      closeRoom(view.name); // the server has us out already
      return;
    }
    const answer = await request("channel_leave", view.name);
    // not_in_room means the server already forgot us there: close the box all the same.
    if (!answer.ok && answer.error?.code !== "not_in_room") {
      showError(answer.error);
      return;
    }
    closeRoom(view.name);
  }

  page.joinForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = page.joinInput.value.trim();
    if (!name) return;
    // A refused name stays in the field, to be corrected.
    if (state.joined.has(name) && !state.joined.get(name).out) showRoom(name);
    else if (!(await joinRoom(name))) return;
    if (page.joinInput.value.trim() === name) page.joinInput.value = "";
  });

  // ---------------------------------------------------------------- one box per joined room
  // A RoomView is a room's box plus what the page remembers about it.
  function openRoom(name) {
    const box = page.template.content.firstElementChild.cloneNode(true);
    box.dataset.room = name;
    // The tutorial finds a room's box with `.${channel}`; keep that working when it can.
    if (isSafeClassName(name)) box.classList.add(name);
    box.setAttribute("aria-label", `Room ${name}`);
    $(".room-title", box).textContent = name;
    $(".log-region", box).setAttribute("aria-label", `Messages in ${name}`);
    $(".composer-input", box).setAttribute("aria-label", `Message to ${name}`);
    $(".leave", box).setAttribute("aria-label", `Leave ${name}`);
    $(".rejoin", box).setAttribute("aria-label", `Join again: ${name}`);

    const view = {
      name,
      me: state.name, // the name I show in this room (see joinRoom)
      box,
      log: $(".log", box),
      older: $(".older", box),
      typingLine: $(".typing", box),
      input: $(".composer-input", box),
      memberList: $(".member-list", box),
      members: [], // {id, name} (id null from a server without ids), as the server sorts them
      banLength: $(".ban-length", box),
      banSeconds: $(".ban-seconds", box),
      notice: $(".room-notice", box),
      noticeText: $(".room-notice-text", box),
      rejoin: $(".rejoin", box),
      composer: $(".composer", box),
      leave: $(".leave", box),
      lock: $(".room-lock", box),
      out: null, // why I am not in the room although its box is open: "kicked", "banned", "forbidden"
      private: false,
      deletedIds: new Set(), // ids of messages deleted: never shown again
      memberCount: 0,
      count: $(".room-count", box),
      ids: new Set(), // messageKey of those shown, so a rejoin's history adds only what is new
      oldestId: null,
      lastId: null, // the highest id shown: a gap after a reconnect is fetched from there
      catching: false, // filling a gap: live messages wait in `held`
      held: [],
      syncing: null, // the connection (epoch) a resync runs for
      pending: new Map(), // client_id -> my message not acknowledged yet (or failed)
      waiting: [], // my messages to send once the server counts us in the room again
      unread: 0,
      typists: new Map(), // user -> timer that forgets them
      typingSentAt: 0,
      typingIdle: null,
      live: false, // joined on the current connection (not yet rejoined after a reconnect)
      atEnd: true, // scrolled to the latest message (then new ones keep it in view)
      scrollPending: false, // a scroll to the end is due at the next frame
    };

    $(".leave", box).addEventListener("click", () => leaveRoom(view));
    view.rejoin.addEventListener("click", () => joinRoom(name));
    view.log.addEventListener("click", (e) => {
      const button = e.target.closest("button.delete");
      if (button) deleteMessage(view, button);
    });
    view.memberList.addEventListener("click", (e) => {
      const button = e.target.closest("button.kick, button.ban");
      if (button) moderate(view, button);
    });
    $(".composer", box).addEventListener("submit", (e) => {
      e.preventDefault();
      sendMessage(view);
    });
    view.input.addEventListener("input", () => noteTyping(view));
    view.input.addEventListener("blur", () => stopTyping(view));
    view.older.addEventListener("click", () => loadOlder(view));
    // A log that was at its end stays there when the box shrinks (phone keyboard, rotation).
    const scroller = view.log.parentElement;
    // (While a scroll to the end is pending, new lines are what put us away from it.)
    const onScroll = () => (view.atEnd = view.scrollPending || isNearEnd(view));
    scroller.addEventListener("scroll", onScroll, { passive: true });
    new ResizeObserver(() => view.atEnd && scrollToEnd(view)).observe(scroller);

    state.joined.set(name, view);
    page.view.appendChild(box);
    page.empty.hidden = true;
    renderRoomList();
    return view;
  }

  function closeRoom(name) {
    const view = state.joined.get(name);
    if (!view) return;
    // Not stopTyping(): we are out of the room, and leaving already ended our typing there.
    clearTimeout(view.typingIdle);
    clearTypists(view);
    view.pending.clear(); // (an answer still coming for one of them finds nothing to update)
    view.waiting = [];
    view.box.remove();
    state.joined.delete(name);
    if (state.active === name) {
      const next = [...state.joined.keys()].pop() ?? null;
      next ? showRoom(next) : (state.active = null);
    }
    page.empty.hidden = state.joined.size > 0;
    saveOpenRooms();
    renderRoomList();
    updateTitle();
  }

  function isSafeClassName(name) {
    return /^[A-Za-z_][A-Za-z0-9_-]*$/.test(name) && !PAGE_CLASSES.has(name) && name !== "room";
  }

  // One room is shown at a time; the others keep collecting messages and unread counts.
  function showRoom(name) {
    const view = state.joined.get(name);
    if (!view) return;
    state.active = name;
    for (const other of state.joined.values()) other.box.hidden = other !== view;
    view.unread = 0;
    renderRoomList();
    updateTitle();
    scrollToEnd(view);
    if (!view.out && window.matchMedia("(pointer: fine)").matches) view.input.focus();
  }

  function isInView(view) {
    return state.active === view.name && document.visibilityState === "visible";
  }

  document.addEventListener("visibilitychange", () => {
    const view = state.joined.get(state.active);
    if (view && isInView(view)) {
      view.unread = 0;
      renderRoomList();
      updateTitle();
    }
  });

  // ---------------------------------------------------------------- messages
  // A message from the server (live, replayed, from a join or from history): confirms my
  // pending one with its client_id, or is added at the end of the log. True if it is new.
  function receive(view, msg, { quiet = false } = {}) {
    const entry = typeof msg.client_id === "string" ? view.pending.get(msg.client_id) : undefined;
    if (entry) {
      confirm(view, entry, msg, { move: true });
      return false;
    }
    return appendMessage(view, msg, { quiet });
  }

  // Add one message at the end of its room's log. Returns false for one already shown.
  function appendMessage(view, msg, { quiet = false } = {}) {
    const key = messageKey(msg);
    if (key !== null && view.ids.has(key)) return false;
    if (view.deletedIds.has(msg.id)) return false;
    const nearEnd = view.atEnd;
    view.log.appendChild(messageItem(msg, view.me));
    if (key !== null) {
      view.ids.add(key);
      if (view.oldestId === null) view.oldestId = msg.id;
      noteId(view, msg.id);
    }
    if (!quiet && nearEnd) scrollToEnd(view);
    return true;
  }

  function noteId(view, id) {
    if (typeof id === "number" && (view.lastId === null || id > view.lastId)) view.lastId = id;
  }

  // Drop the oldest lines past MAX_LOG_ITEMS (only while the reader is at the end, so nothing
  // moves under their eyes); "Load earlier messages" brings them back.
  function trimLog(view) {
    let extra = view.log.children.length - MAX_LOG_ITEMS;
    if (extra <= 0) return;
    while (extra-- > 0) {
      const first = view.log.firstElementChild;
      if (first.dataset.key) view.ids.delete(first.dataset.key);
      first.remove();
    }
    const oldest = view.log.querySelector(".msg[data-key]");
    view.oldestId = oldest ? messageIds.get(oldest) : null;
    view.older.hidden = view.oldestId === null;
    delete view.older.dataset.done;
  }

  const messageIds = new WeakMap(); // message <li> -> its id as the server sent it (a number)
  const messageAuthors = new WeakMap(); // message <li> -> its author's user_id (if it has one)

  // What tells two messages apart. The time is part of it because a server that keeps
  // history in memory starts counting ids again after a restart.
  function messageKey(msg) {
    return msg.id === undefined || msg.id === null ? null : `${msg.id}|${msg.ts}`;
  }

  function messageItem(msg, me) {
    const item = document.createElement("li");
    item.className = "msg";
    const user = String(msg.user ?? "");
    const userId = typeof msg.user_id === "string" ? msg.user_id : null;
    // Signed in, names may repeat (two Alices): only the user id says it is mine.
    const byMe = userId !== null && userId === state.userId;
    if (byMe || (!state.auth && user && user === me)) item.classList.add("mine");
    if (messageKey(msg) !== null) {
      item.dataset.id = String(msg.id);
      item.dataset.key = messageKey(msg);
      messageIds.set(item, msg.id);
    }
    if (userId !== null) messageAuthors.set(item, userId);

    const author = document.createElement("span");
    author.className = "author";
    author.textContent = user || "anonymous";
    item.appendChild(author);
    item.appendChild(timeElement(msg.ts));
    renderDelete(item);

    const text = document.createElement("p");
    text.className = "text";
    text.textContent = String(msg.message ?? "");
    item.appendChild(text);
    return item;
  }

  function timeElement(ts) {
    const time = document.createElement("time");
    const when = typeof ts === "number" ? new Date(ts) : null;
    if (!when || Number.isNaN(when.getTime())) return time;
    time.dateTime = when.toISOString();
    time.title = when.toLocaleString();
    const clock = when.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
    const today = when.toDateString() === new Date().toDateString();
    time.textContent = today ? clock : `${when.toLocaleDateString([], { month: "short", day: "numeric" })} ${clock}`;
    return time;
  }

  // ---------------------------------------------------------------- deleting messages
  // Delete: on my own messages, and on everyone's for moderators and admins (the server
  // checks it again).
  function mayDelete(item) {
    if (!messageIds.has(item)) return false; // not stored (yet)
    return isModerator() || (state.userId !== null && messageAuthors.get(item) === state.userId);
  }

  function renderDelete(item) {
    const shown = $(":scope > .delete", item);
    if (!mayDelete(item)) {
      shown?.remove();
      return;
    }
    if (shown) return;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "delete";
    button.textContent = "Delete";
    const author = $(".author", item)?.textContent ?? "";
    const time = $("time", item)?.textContent ?? "";
    button.setAttribute("aria-label", `Delete message by ${author}${time ? ` at ${time}` : ""}`);
    $("time", item).after(button);
  }

  // Who I am changed (signed in again): Delete, Kick and Ban follow the new user and role.
  function refreshControls(view) {
    view.log.querySelectorAll(":scope > .msg").forEach((item) => {
      const userId = messageAuthors.get(item);
      item.classList.toggle("mine", userId !== undefined && userId === state.userId);
      renderDelete(item);
    });
    setMembers(view, view.members, view.memberCount);
  }

  async function deleteMessage(view, button) {
    const item = button.closest(".msg");
    const id = item && messageIds.get(item);
    if (id === undefined) return;
    button.disabled = true;
    const answer = await request("delete_message", { channel: view.name, id });
    if (!answer.ok) {
      button.disabled = false;
      showError(answer.error);
      return;
    }
    const hadFocus = item.contains(document.activeElement);
    markDeleted(view, id);
    if (hadFocus && !view.out) view.input.focus(); // the button is gone: focus somewhere useful
  }

  // A message deleted (by me, its author or a moderator): its line says so; it never comes
  // back, from history or a rejoin.
  function markDeleted(view, id) {
    if (typeof id !== "number" && typeof id !== "string") return;
    view.deletedIds.add(id);
    view.held = view.held.filter((m) => m.id !== id);
    for (const item of view.log.querySelectorAll(":scope > .msg[data-id]")) {
      if (messageIds.get(item) !== id) continue;
      const note = document.createElement("li");
      note.className = "sys deleted";
      note.textContent = "message deleted";
      item.replaceWith(note);
    }
  }

  function appendNotice(view, text) {
    const item = document.createElement("li");
    item.className = "sys";
    item.textContent = text;
    const nearEnd = view.atEnd;
    view.log.appendChild(item);
    if (nearEnd) scrollToEnd(view);
  }

  // ---------------------------------------------------------------- sending
  // A message sent shows at once, greyed, "sending…", until the server acknowledges it (then
  // it shows like any other, with its stored id). Offline, or while the server does not count
  // us in the room yet, it waits and goes out once we are back. If the client's retries run
  // out, or the server refuses it, it shows "not sent" with a Retry button, which sends it
  // again with the same client_id: if an earlier try did reach the server, the server answers
  // with that message instead of storing a copy.
  function sendMessage(view) {
    const text = view.input.value;
    if (!text.trim()) return; // the server refuses blank text anyway
    stopTyping(view);
    view.input.value = "";
    const entry = { text, clientId: newClientId(), item: null };
    entry.item = pendingItem(view, entry);
    view.pending.set(entry.clientId, entry);
    const nearEnd = view.atEnd;
    view.log.appendChild(entry.item);
    if (nearEnd) scrollToEnd(view);
    deliver(view, entry);
  }

  function deliver(view, entry) {
    if (view.pending.get(entry.clientId) !== entry) return; // confirmed, or the room closed
    setPendingState(entry, "pending");
    if (!view.live || !client.connected) {
      if (!view.waiting.includes(entry)) view.waiting.push(entry);
      return;
    }
    const payload = { channel: view.name, message: entry.text, client_id: entry.clientId };
    client.emit("message", payload, (err, answer) => {
      if (view.pending.get(entry.clientId) !== entry) return; // its broadcast confirmed it
      if (err) {
        setPendingState(entry, "failed", "not sent: no answer from the server");
      } else if (answer && answer.ok) {
        confirm(view, entry, { user_id: state.userId, ...answer, user: view.me }, { move: false });
      } else if (view.out) {
        setPendingState(entry, "failed", "not sent"); // removed from the room meanwhile
      } else if (answer?.error?.code === "not_in_room" && !view.live) {
        view.waiting.push(entry); // sent before we were back in the room: again once we are
      } else if (answer?.error?.code === "forbidden" || answer?.error?.code === "banned") {
        const why = answer.error.code === "banned" ? "you are banned from this room" : "you may not post here";
        setPendingState(entry, "failed", `not sent: ${why}`);
        setRoomNotice(view, `Your message was not sent: ${why}.`);
      } else {
        showError(answer?.error);
        setPendingState(entry, "failed", "not sent");
      }
    });
  }

  // My pending message is stored: show it as such. Confirmed by its broadcast (`move`), it
  // goes where the server's order puts it: after what others sent before it was stored.
  function confirm(view, entry, msg, { move }) {
    view.pending.delete(entry.clientId);
    view.waiting = view.waiting.filter((e) => e !== entry);
    const shown = { ...msg, message: typeof msg.message === "string" ? msg.message : entry.text.trim() };
    const item = entry.item;
    if (move || !item.isConnected) {
      item.remove();
      appendMessage(view, shown);
      return;
    }
    const key = messageKey(shown);
    if (key !== null && view.ids.has(key)) {
      item.remove(); // shown already (from history)
      return;
    }
    item.replaceWith(messageItem(shown, view.me));
    if (key !== null) {
      view.ids.add(key);
      if (view.oldestId === null) view.oldestId = shown.id;
      noteId(view, shown.id);
    }
  }

  function pendingItem(view, entry) {
    const item = document.createElement("li");
    item.className = "msg mine pending";
    item.dataset.clientId = entry.clientId;
    const author = document.createElement("span");
    author.className = "author";
    author.textContent = view.me || "me";
    const status = document.createElement("span");
    status.className = "status";
    status.setAttribute("role", "status");
    const text = document.createElement("p");
    text.className = "text";
    text.textContent = entry.text;
    item.append(author, status, text);
    entry.retry = () => deliver(view, entry);
    return item;
  }

  function setPendingState(entry, name, why = "") {
    const item = entry.item;
    item.classList.toggle("pending", name === "pending");
    item.classList.toggle("failed", name === "failed");
    const status = $(".status", item);
    if (name === "pending") {
      status.replaceChildren("sending…");
      return;
    }
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "retry";
    retry.textContent = "Retry";
    retry.addEventListener("click", () => entry.retry());
    status.replaceChildren(why, retry);
  }

  function newClientId() {
    if (window.crypto?.randomUUID) return crypto.randomUUID(); // only on https or localhost
    return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
  }

  async function loadOlder(view) {
    if (view.oldestId === null) return;
    const answer = await request("history", { channel: view.name, before: view.oldestId, limit: HISTORY_PAGE });
    if (!answer.ok) {
      showError(answer.error);
      return;
    }
    const messages = (Array.isArray(answer.messages) ? answer.messages : []).filter(
      (m) => !view.ids.has(messageKey(m)),
    );
    // Prepend while keeping what the user is reading where it was.
    const log = view.log.parentElement;
    const fromBottom = log.scrollHeight - log.scrollTop;
    const items = messages.map((m) => messageItem(m, view.me));
    view.log.prepend(...items);
    messages.forEach((m) => messageKey(m) !== null && view.ids.add(messageKey(m)));
    if (messages.length) view.oldestId = messages[0].id;
    log.scrollTop = log.scrollHeight - fromBottom;
    // Where the reader is now (the scroll events of our own scrolling are not trusted to
    // say it): reading back, new lines no longer pull the log to its end nor drop what was
    // just loaded.
    view.atEnd = isNearEnd(view);
    if (messages.length < HISTORY_PAGE) {
      view.older.hidden = true;
      view.older.dataset.done = "1";
    }
  }

  function isNearEnd(view) {
    const log = view.log.parentElement;
    return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  }

  // Keep the log at its end. At most once per frame however many lines arrive: reading the
  // layout (scrollHeight) after each line would make a burst of messages quadratic.
  function scrollToEnd(view) {
    view.atEnd = true;
    if (view.scrollPending) return;
    view.scrollPending = true;
    requestAnimationFrame(() => {
      view.scrollPending = false;
      // The reader went back meanwhile ("Load earlier messages"): leave the log as it is.
      if (!view.atEnd) return;
      trimLog(view);
      const log = view.log.parentElement;
      log.scrollTop = log.scrollHeight;
    });
  }

  // ---------------------------------------------------------------- members
  // A presence event carries the whole member list, except in rooms of over 100 members:
  // there it only says who joined, left, was renamed or removed, and the list we have is
  // updated. Signed in, two members may show the same name: their user ids tell them apart.
  function applyPresence(view, p, user, previous) {
    if (setMembersFrom(view, p)) return;
    const id = typeof p.user_id === "string" ? p.user_id : null;
    const gone = (m) => (id !== null && m.id !== null ? m.id === id : m.name === user || m.name === previous);
    let users = view.members.filter((m) => !gone(m));
    if (!["left", "kicked", "banned"].includes(p.event)) {
      users = [...users, { id, name: user }].sort((a, b) => byName(a.name, b.name));
    }
    setMembers(view, users, p.count);
  }

  // The member list of a join ack or presence event, if it has one: `users` (with ids), or
  // `members` (names only) from a server that does not send ids.
  function setMembersFrom(view, info) {
    if (Array.isArray(info.users)) {
      const users = info.users
        .filter((u) => u && typeof u === "object")
        .map((u) => ({ id: typeof u.id === "string" ? u.id : null, name: String(u.name ?? "") }));
      setMembers(view, users, info.count);
      return true;
    }
    if (Array.isArray(info.members)) {
      setMembers(view, info.members.map((name) => ({ id: null, name: String(name) })), info.count);
      return true;
    }
    return false;
  }

  // The server's order: case-insensitive, then exact.
  function byName(a, b) {
    const [x, y] = [a.toLowerCase(), b.toLowerCase()];
    return x < y ? -1 : x > y ? 1 : a < b ? -1 : a > b ? 1 : 0;
  }

  function isMe(view, member) {
    return member.id !== null && state.userId !== null ? member.id === state.userId : member.name === view.me;
  }

  function setMembers(view, users, count) {
    view.members = users;
    const moderating = isModerator() && !view.out;
    view.banLength.hidden = !moderating;
    const items = users.map((member) => {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.className = "member-name";
      name.textContent = member.name;
      name.title = member.name;
      li.appendChild(name);
      if (isMe(view, member)) li.classList.add("mine");
      else if (moderating && member.id !== null) li.appendChild(memberActions(member));
      return li;
    });
    // Keep keyboard focus on the same member's button when the list is redrawn.
    const focused = view.memberList.contains(document.activeElement) ? document.activeElement : null;
    const again = focused && { id: focused.closest("li")?.dataset.userId, kind: focused.className };
    items.forEach((li, i) => users[i].id !== null && (li.dataset.userId = users[i].id));
    view.memberList.replaceChildren(...items);
    if (again?.id) {
      const li = items.find((item) => item.dataset.userId === again.id);
      li?.querySelector(`button.${again.kind}`)?.focus();
    }
    view.memberCount = typeof count === "number" ? count : users.length;
    view.count.textContent = `${view.memberCount} online`;
    renderRoomList();
  }

  // Kick and Ban, for moderators, on every member but themselves.
  function memberActions(member) {
    const actions = document.createElement("span");
    actions.className = "member-actions";
    for (const [kind, label] of [["kick", "Kick"], ["ban", "Ban"]]) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = kind;
      button.textContent = label;
      button.setAttribute("aria-label", `${label} ${member.name}`);
      actions.appendChild(button);
    }
    return actions;
  }

  async function moderate(view, button) {
    const li = button.closest("li");
    const userId = li?.dataset.userId;
    if (!userId) return;
    const payload = { channel: view.name, user_id: userId };
    if (button.classList.contains("ban")) {
      const seconds = Number(view.banSeconds.value);
      if (seconds > 0) payload.seconds = seconds; // none: for good
    }
    button.disabled = true;
    const answer = await request(button.classList.contains("ban") ? "ban" : "kick", payload);
    if (!answer.ok) {
      button.disabled = false;
      showError(answer.error);
      return;
    }
    // Their presence event takes them off the list; keyboard focus goes to the next one.
    if (li.isConnected && li.contains(document.activeElement)) {
      const next = li.nextElementSibling ?? li.previousElementSibling;
      (next?.querySelector("button") ?? view.banSeconds).focus();
    }
  }

  // ---------------------------------------------------------------- typing
  // Mine: tell the room when I start, repeat while I go on (the server forgets typists after a
  // few seconds), and say when I stop. `volatile`: a typing note is worthless once late.
  function noteTyping(view) {
    if (!view.input.value.trim()) {
      stopTyping(view);
      return;
    }
    const now = Date.now();
    if (now - view.typingSentAt >= TYPING_RESEND_MS) {
      view.typingSentAt = now;
      if (canTellTyping(view)) client.volatile.emit("typing", { channel: view.name, typing: true });
    }
    clearTimeout(view.typingIdle);
    view.typingIdle = setTimeout(() => stopTyping(view), TYPING_IDLE_MS);
  }

  function stopTyping(view) {
    clearTimeout(view.typingIdle);
    view.typingIdle = null;
    if (!view.typingSentAt) return;
    view.typingSentAt = 0;
    if (canTellTyping(view)) client.volatile.emit("typing", { channel: view.name, typing: false });
  }

  // Typing in a room the server does not count us in (yet) would only earn a not_in_room error.
  function canTellTyping(view) {
    return client.connected && view.live && state.joined.get(view.name) === view;
  }

  // Theirs: who is typing in a room, each forgotten after a while in case "false" never comes.
  function setTypist(view, user, typing) {
    clearTimeout(view.typists.get(user));
    if (typing) view.typists.set(user, setTimeout(() => setTypist(view, user, false), TYPING_SHOW_MS));
    else if (!view.typists.delete(user)) return;
    renderTypists(view);
  }

  function clearTypists(view) {
    view.typists.forEach((timer) => clearTimeout(timer));
    view.typists.clear();
    renderTypists(view);
  }

  function clearAllTypists() {
    state.joined.forEach(clearTypists);
  }

  function renderTypists(view) {
    const names = [...view.typists.keys()];
    let text = "";
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = "Several people are typing…";
    view.typingLine.textContent = text;
  }

  // ---------------------------------------------------------------- the room list
  // The server lists only the private rooms I may enter, marked `private`.
  function setRoomCounts(rooms) {
    state.counts.clear();
    state.privateRooms.clear();
    for (const r of rooms) {
      if (!r || typeof r.name !== "string") continue;
      state.counts.set(r.name, Number(r.count) || 0);
      if (r.private === true) state.privateRooms.add(r.name);
    }
    state.joined.forEach((view) => setPrivate(view, view.private));
    renderRoomList();
  }

  // A room the server refused as private (the tutorial's rooms too, if so configured) is
  // not offered.
  function listedRooms() {
    const others = [...state.counts.entries()]
      .filter(([name]) => !DEFAULT_ROOMS.includes(name) && !state.joined.has(name))
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .slice(0, MAX_LISTED_ROOMS)
      .map(([name]) => name);
    const joined = [...state.joined.values()]
      .filter((view) => view.out !== "forbidden" && !DEFAULT_ROOMS.includes(view.name))
      .map((view) => view.name);
    const defaults = DEFAULT_ROOMS.filter((name) => !state.forbidden.has(name));
    return [...defaults, ...joined, ...others];
  }

  // Update the list in place (rather than rebuilding it) so keyboard focus is not lost.
  function renderRoomList() {
    const wanted = listedRooms();
    const existing = new Map([...page.roomList.children].map((li) => [li.dataset.room, li]));
    wanted.forEach((name, index) => {
      const item = existing.get(name) ?? roomItem(name);
      existing.delete(name);
      updateRoomItem(item, name);
      if (page.roomList.children[index] !== item) page.roomList.insertBefore(item, page.roomList.children[index] ?? null);
    });
    existing.forEach((item) => item.remove());
  }

  function roomItem(name) {
    const item = document.createElement("li");
    item.className = "room-item";
    item.dataset.room = name;

    const open = document.createElement("button");
    open.type = "button";
    open.className = "room-name";
    open.textContent = name;
    open.title = name; // long names are cut short with an ellipsis
    open.addEventListener("click", () => (state.joined.has(name) ? showRoom(name) : joinRoom(name)));

    const lock = document.createElement("span");
    lock.className = "lock";
    lock.title = "private room";
    const lockText = document.createElement("span");
    lockText.className = "visually-hidden";
    lockText.textContent = "private";
    lock.appendChild(lockText);

    const count = document.createElement("span");
    count.className = "count";
    count.title = "people in the room";

    const unread = document.createElement("span");
    unread.className = "unread";
    unread.hidden = true;

    const join = document.createElement("button");
    join.type = "button";
    join.className = "join";
    join.textContent = "Join";
    join.setAttribute("aria-label", `Join ${name}`);
    join.addEventListener("click", () => joinRoom(name));

    item.append(open, lock, count, unread, join);
    return item;
  }

  function updateRoomItem(item, name) {
    const view = state.joined.get(name);
    const inside = Boolean(view && !view.out);
    item.dataset.joined = inside ? "true" : "false";
    const isPrivate = state.privateRooms.has(name) || Boolean(view?.private);
    item.dataset.private = isPrivate ? "true" : "false";
    $(".lock", item).hidden = !isPrivate;
    if (name === state.active) item.setAttribute("aria-current", "true");
    else item.removeAttribute("aria-current");
    // A joined room's own count is fresher than the room list (which the server batches).
    $(".count", item).textContent = String(inside ? view.memberCount : (state.counts.get(name) ?? 0));
    $(".join", item).hidden = inside;
    const unread = $(".unread", item);
    const n = view ? view.unread : 0;
    unread.hidden = n === 0;
    unread.textContent = n > 99 ? "99+" : String(n);
    unread.title = `${n} unread`;
  }

  function addUnread(view) {
    view.unread += 1;
    renderRoomList();
    updateTitle();
  }

  function updateTitle() {
    let total = 0;
    state.joined.forEach((view) => (total += view.unread));
    document.title = total ? `(${total}) salas` : "salas";
  }

  // ---------------------------------------------------------------- errors
  // An error comes twice (in the ack and as an `error` event): show it once.
  const recentErrors = new Map(); // "code|message" -> time shown

  function showError(error) {
    const code = String(error?.code ?? "error");
    const message = String(error?.message ?? "Something went wrong.");
    const key = `${code}|${message}`;
    const now = Date.now();
    if (now - (recentErrors.get(key) ?? 0) < 2000) return;
    recentErrors.set(key, now);

    const item = document.createElement("div");
    item.className = "error-item";
    item.dataset.code = code;
    item.setAttribute("role", "alert");
    const text = document.createElement("span");
    text.textContent = message;
    const close = document.createElement("button");
    close.type = "button";
    close.textContent = "×";
    close.setAttribute("aria-label", "Dismiss");
    close.addEventListener("click", () => item.remove());
    item.append(text, close);
    page.errors.appendChild(item);
    setTimeout(() => item.remove(), ERROR_SHOW_MS);
  }

  // ---------------------------------------------------------------- start
  page.nick.value = state.name;
  setConnState("connecting");
  renderRoomList();
})();
