/* The helpdesk agent UI: sign-in, the chat list, the chat view, and the hooks plugins use.
 *
 * No framework and no build step. Content from the server only ever reaches the page through
 * textContent and DOM properties (never parsed as HTML), so a message cannot inject markup.
 * Live updates are short polling of ?changed_since=<change_seq> (DESIGN.md "Live updates").
 *
 * Plugins (their scripts load after this one) use window.helpdesk:
 *   registerPanel(name, factory)   factory(ctx) builds a panel under chats whose type names it;
 *                                  ctx = {element, chat, api, notify, refresh, agent, draft, openChat};
 *                                  it may return {destroy()} to stop its timers.
 *                                  ctx.draft = {get(), set(text), clear()}: the agent's unsent text
 *                                  for this chat, kept in sessionStorage so that a session that ends
 *                                  mid-reply (or switching chats) does not lose it. Clear it once the
 *                                  text is sent or stored; signing out wipes every draft.
 *                                  ctx.openChat(chatId) opens another chat (e.g. the one a message
 *                                  the panel sent ended up in).
 *   registerMessageAction(action)  {id, label, appliesTo(message, chat), run(message, chat, ctx)}:
 *                                  a button on matching messages (e.g. a channel's "Resend").
 *   registerMessageDecorator(fn)   fn(message, chat, helpers) returns a Node (or null) shown in the
 *                                  message's bubble above its content (e.g. the message it quotes);
 *                                  called on every render of the message, so it builds a new Node each
 *                                  time. helpers = {findMessage(predicate): a loaded message of the open
 *                                  chat or null, scrollToMessage(id): scrolls to a loaded message and
 *                                  briefly highlights it (false if it is not loaded)}.
 *   registerMediaUrl(fn)           fn(message, chat) returns the URL to show a message's media from
 *                                  instead of its content_uri (e.g. the helpdesk's own copy), or null:
 *                                  a path on this origin ("/..."; an https URL is taken as well). The
 *                                  first plugin answering one wins; content_uri stays the message's.
 *   registerTextFormat(typeName, fn)  fn(text, linkify) returns a Node drawn as the text of messages in
 *                                  chats of that type (a messenger's markup: *bold*, ...), or null for
 *                                  the plain text. linkify(text) returns text as this page draws it, its
 *                                  http(s) links clickable (a DocumentFragment), for fn's pieces of plain
 *                                  text. Build DOM nodes only (never HTML from the text). The Node's
 *                                  textContent must be the text exactly as written, markers included (so
 *                                  copying a message gives it back), else the page draws the plain text.
 *                                  plain (optional): plain(text) returns the text as a one-line preview
 *                                  shows it (the chat list's last message), markers left out: a string
 *                                  of the text's own characters, only some left out, else the page
 *                                  shows the text as written (as it does for types without one).
 *   registerListAction(action)     {id, label, run(ctx)}: a button under the chat list's search (e.g.
 *                                  "New chat"); ctx = {api, notify, errorText, opener (the
 *                                  button), openChat(chatId)}. The same id again replaces it.
 *   registerChatIcon(typeName, fn) fn(chat) returns {src, label} (src under /static/) or null: the
 *                                  icon of one chat of that type, where the type's own icon is too
 *                                  coarse (e.g. a gateway's chats on different messengers).
 *   api(path, {method, body, headers})  fetch with the session's CSRF token; resolves {ok, status, data}
 *                                  (status 0: the server could not be reached). body: sent as JSON,
 *                                  or as it is when it is a FormData (a file upload).
 *   notify(text, kind)             a toast: kind "success" | "error" | "info".
 *   isOffline()                    whether the page says "Offline" (polls do not reach the helpdesk);
 *                                  document gets a "helpdesk:offline" event ({detail: {offline}}) as it changes.
 *   errorText(result, fallback, labels)  an api() result's error for people: its message and per-field
 *                                  reasons, fields named by labels ({name: "label"}) where given.
 */
(function () {
  "use strict";

  var POLL_MS = 2000;            // never poll more often than this
  var POLL_MAX_MS = 30000;       // while the helpdesk is unreachable, the wait doubles up to this
  var PAGE_CHATS = 50;
  var PAGE_MESSAGES = 50;
  var MAX_CHANGE_PAGES = 5;      // pages of changes per poll; the list reloads past that, a chat goes on next poll
  var OFFLINE_AFTER = 2;         // failed polls in a row before the page says it is offline
  var DRAFT_PREFIX = "helpdesk.draft.";   // sessionStorage: DRAFT_PREFIX + agent id + "." + chat id
  var UNKNOWN_ICON = "/static/icons/unknown.svg";
  var SVG_NS = "http://www.w3.org/2000/svg";
  var TITLE = "Helpdesk";        // the tab's title; "(N) Helpdesk" while N listed chats have unread messages

  var state = {
    csrf: null,
    agent: null,
    types: {},                   // chat type name -> {label, icon, panel, can_compose}
    chats: new Map(),            // id -> chat (only the loaded ones)
    listCursor: null,
    listSeq: null,
    listLoading: false,
    listGeneration: 0,           // bumps when filters change; stale answers are dropped
    filter: { type: "", q: "" },
    chat: null,                  // the open chat
    messages: new Map(),         // id -> message of the open chat
    msgCursor: null,
    msgSeq: null,
    msgChangeCursor: null,       // paging through the changes since msgSeq (more than one poll's worth)
    msgLoadingOlder: false,
    chatGeneration: 0,
    panel: null,                 // the open chat's plugin panel instance
    pollTimer: null,
    polling: false,
    failedPolls: 0,              // polls in a row that could not reach the server
    resume: null,                // {agentId, chatId}: where an agent whose session ended was
    readInFlight: null            // the chat whose "read" is being posted
  };
  var panels = {};
  var messageActions = [];
  var messageDecorators = [];
  var mediaUrls = [];            // fn(message, chat): where to show a message's media from (registerMediaUrl)
  var chatIcons = {};            // chat type name -> fn(chat): a plugin's icon for one chat (registerChatIcon)
  var textFormats = {};          // chat type name -> fn(text, linkify): its messages' text drawn (registerTextFormat)
  var plainTexts = {};           // chat type name -> plain(text): its previews, markup left out (registerTextFormat)
  var FLASH_MS = 1600;           // how long a message scrolled to stays highlighted

  // ------------------------------------------------------------------ small helpers

  function $(id) { return document.getElementById(id); }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  /** Text from people (messages, names): its own direction, so Arabic or Hebrew reads right to left. */
  function auto(node) {
    node.dir = "auto";
    return node;
  }

  function svg(pathD, className, viewBox) {
    var s = document.createElementNS(SVG_NS, "svg");
    s.setAttribute("viewBox", viewBox || "0 0 16 16");
    s.setAttribute("aria-hidden", "true");
    s.setAttribute("focusable", "false");
    if (className) s.setAttribute("class", className);
    var p = document.createElementNS(SVG_NS, "path");
    p.setAttribute("d", pathD);
    s.appendChild(p);
    return s;
  }

  /** ``value`` if it is an http(s) link, else null (javascript:, data: never become href/src). ``embedded`` (a picture, a player drawn in the page):
   * https, or http from this helpdesk's own origin (the demo, a helpdesk on its LAN, serving the files
   * agents sent), which the page's CSP allows as 'self'; http from elsewhere would be mixed content. */
  function safeUrl(value, embedded) {
    if (typeof value !== "string") return null;
    var v = value.trim();
    if (/^https:\/\//i.test(v)) return v;
    if (!/^http:\/\//i.test(v)) return null;
    if (!embedded) return v;
    try {
      return new URL(v).origin === window.location.origin ? v : null;
    } catch (e) {
      return null;
    }
  }

  function parseTime(value) {
    if (!value) return null;
    var d = new Date(value);
    return isNaN(d.getTime()) ? null : d;
  }

  function timeOnly(d) {
    return d ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
  }

  function listTime(d) {
    if (!d) return "";
    var now = new Date();
    if (d.toDateString() === now.toDateString()) return timeOnly(d);
    return d.toLocaleDateString([], { day: "numeric", month: "short" });
  }

  function fullTime(d) {
    return d ? d.toLocaleString() : "";
  }

  function chatType(name) {
    return state.types[name] || null;
  }

  // ------------------------------------------------------------------ API

  function api(path, options) {
    options = options || {};
    var method = (options.method || "GET").toUpperCase();
    var headers = { "Accept": "application/json" };
    Object.keys(options.headers || {}).forEach(function (k) { headers[k] = options.headers[k]; });
    var init = { method: method, headers: headers, credentials: "same-origin" };
    if (method !== "GET" && method !== "HEAD") {
      if (state.csrf) headers["X-CSRF-Token"] = state.csrf;
      if (typeof FormData !== "undefined" && options.body instanceof FormData) {
        init.body = options.body;   // the browser sets multipart/form-data with its boundary
      } else if (options.body !== undefined) {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(options.body);
      }
    }
    return fetch(path, init).then(function (resp) {
      return resp.text().then(function (text) {
        var data = null;
        var ok = resp.ok;
        if (text) {
          // Only our own JSON is read: an HTML page from a proxy (a 502, a login portal) is not shown.
          var json = /^application\/([\w.-]+\+)?json\s*(;|$)/i.test(resp.headers.get("Content-Type") || "");
          try { data = json ? JSON.parse(text) : null; } catch (e) { data = null; }
          if (data === null || typeof data !== "object") {
            ok = false;
            data = { code: "bad_response", message: "The server answered " + resp.status +
              (resp.statusText ? " (" + resp.statusText + ")" : "") +
              (resp.ok ? " with something that is not the helpdesk's answer" : "") + "; try again." };
          }
        }
        if (resp.status === 401 && path !== "/api/session") sessionLost();
        return { ok: ok, status: resp.status, data: data };
      });
    }, function () {
      return { ok: false, status: 0, data: { code: "network_error",
        message: "The helpdesk server cannot be reached; check your connection." } };
    });
  }

  /** The answer's message with its per-field reasons, e.g. "The request body is not valid (text:
   * must not be blank)."; ``labels`` names fields for people ({content_uri: "file link"}). */
  function errorText(result, fallback, labels) {
    var d = result && result.data;
    var details = d ? fieldReasons(d.fields, labels || {}) : "";
    if (d && typeof d.message === "string" && d.message) {
      return details ? d.message.replace(/\.$/, "") + " (" + details + ")." : d.message;
    }
    if (details) return details + ".";
    return fallback || ("Request failed (" + (result ? result.status : "?") + ").");
  }

  /** The error body's per-field reasons ({field: [reason, ...]}) as "field: reason; ...". */
  function fieldReasons(fields, labels) {
    if (!fields || typeof fields !== "object") return "";
    var parts = [];
    Object.keys(fields).forEach(function (name) {
      var reasons = [].concat(fields[name]).filter(function (r) { return typeof r === "string" && r; });
      if (!reasons.length) return;
      var label = Object.prototype.hasOwnProperty.call(labels, name) ? labels[name]
        : (name === "_schema" ? "" : name);
      parts.push((label ? label + ": " : "") + reasons.join("; "));
    });
    return parts.join("; ");
  }

  function query(params) {
    var parts = [];
    Object.keys(params).forEach(function (k) {
      var v = params[k];
      if (v !== undefined && v !== null && v !== "") parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(v));
    });
    return parts.length ? "?" + parts.join("&") : "";
  }

  // ------------------------------------------------------------------ notifications

  function notify(text, kind) {
    kind = kind || "info";
    var box = $("toasts");
    var toast = el("div", "toast toast-" + kind);
    if (kind === "error") toast.setAttribute("role", "alert");
    toast.appendChild(el("span", "toast-text", text));
    var close = el("button", "toast-close", "\u00d7");
    close.type = "button";
    close.setAttribute("aria-label", "Dismiss notification");
    close.addEventListener("click", function () { toast.remove(); });
    toast.appendChild(close);
    box.appendChild(toast);
    while (box.children.length > 5) box.firstChild.remove();
    setTimeout(function () { toast.remove(); }, kind === "error" ? 15000 : 6000);
    return toast;
  }

  // ------------------------------------------------------------------ session

  /** The sign-in form, with nothing of the last agent's screen left behind it. */
  function showLogin(message) {
    stopPolling();
    clearChatPane();               // the open chat's panel saves its draft as it goes
    clearList();
    state.csrf = null;
    state.agent = null;
    state.failedPolls = 0;
    setOffline(false);
    $("toasts").replaceChildren();
    $("agent-name").textContent = "";
    document.title = TITLE;
    $("app-view").hidden = true;
    $("login-view").hidden = false;
    $("login-message").textContent = message || "";
    $("login-password").value = "";
    $("login-username").focus();
  }

  function sessionLost() {
    // The server's 401 message speaks to API clients (Bearer tokens); an agent needs this one.
    if (!state.agent) return;
    state.resume = { agentId: state.agent.id, chatId: state.chat ? state.chat.id : null };
    showLogin("Your session has ended; sign in again.");
  }

  function signedIn(session) {
    state.csrf = session.csrf_token;
    state.agent = session.agent;
    var resume = state.resume;
    state.resume = null;
    clearDrafts(session.agent.id);  // another agent's unsent text is not for this one
    $("agent-name").textContent = session.agent.display_name || session.agent.username;
    $("login-view").hidden = true;
    $("app-view").hidden = false;
    return loadChatTypes().then(function () {
      resetList();
      schedulePoll();
      // The same agent again after the session ended: back to the chat they were answering.
      if (resume && resume.chatId && resume.agentId === session.agent.id && state.agent === session.agent &&
          !state.chat) {
        openChat(resume.chatId);
      }
    });
  }

  function onLoginSubmit(event) {
    event.preventDefault();
    var username = $("login-username").value.trim();
    var password = $("login-password").value;
    if (!username || !password) {
      $("login-message").textContent = "Enter your name and password.";
      return;
    }
    var button = $("login-submit");
    button.disabled = true;
    $("login-message").textContent = "";
    api("/api/session", { method: "POST", body: { username: username, password: password } }).then(function (r) {
      button.disabled = false;
      if (r.ok) return signedIn(r.data);
      $("login-message").textContent = errorText(r, "Signing in failed.");
      $("login-password").select();
    });
  }

  function onLogout() {
    api("/api/session", { method: "DELETE" }).then(function () {
      state.resume = null;
      showLogin("You have signed out.");
      clearDrafts(null);           // the next person at this browser must not find them
      clearTimeout(searchTimer);
      $("chat-search").value = "";
      $("chat-type-filter").value = "";
      state.filter = { type: "", q: "" };
    });
  }

  // ------------------------------------------------------------------ drafts (sessionStorage)

  function draftStorage() {
    try { return window.sessionStorage || null; } catch (e) { return null; }  // blocked storage
  }

  /** Remove every draft except those of the agent `keepAgentId` (null: every draft). */
  function clearDrafts(keepAgentId) {
    var store = draftStorage();
    if (!store) return;
    var keep = keepAgentId === null || keepAgentId === undefined ? null : DRAFT_PREFIX + keepAgentId + ".";
    try {
      var doomed = [];
      for (var i = 0; i < store.length; i++) {
        var key = store.key(i);
        if (key && key.indexOf(DRAFT_PREFIX) === 0 && !(keep && key.indexOf(keep) === 0)) doomed.push(key);
      }
      doomed.forEach(function (key) { store.removeItem(key); });
    } catch (e) { console.error(e); }
  }

  function draftFor(agent, chatId) {
    var key = agent ? DRAFT_PREFIX + agent.id + "." + chatId : null;
    return {
      get: function () {
        var store = draftStorage();
        try { return (key && store && store.getItem(key)) || ""; } catch (e) { return ""; }
      },
      set: function (text) {
        var store = draftStorage();
        // Only while that agent is signed in: a panel torn down after signing out saves nothing.
        if (!key || !store || !state.agent || state.agent.id !== agent.id) return;
        try {
          if (typeof text === "string" && text !== "") store.setItem(key, text);
          else store.removeItem(key);
        } catch (e) { console.error(e); }   // full storage: the text is still in the composer
      },
      clear: function () {
        var store = draftStorage();
        try { if (key && store) store.removeItem(key); } catch (e) { console.error(e); }
      }
    };
  }

  // ------------------------------------------------------------------ chat types

  function loadChatTypes() {
    return api("/api/chat-types").then(function (r) {
      if (!r.ok) return;
      state.types = {};
      var select = $("chat-type-filter");
      while (select.options.length > 1) select.remove(1);
      r.data.items.forEach(function (t) {
        state.types[t.name] = t;
        var option = el("option", null, t.label);
        option.value = t.name;
        select.appendChild(option);
      });
    });
  }

  /** A chat's icon and its label: a plugin's per-chat icon (registerChatIcon), else its type's. */
  function chatIcon(c) {
    var t = chatType(c.type);
    var own = null;
    if (chatIcons[c.type]) {
      try { own = chatIcons[c.type](c); } catch (e) { console.error(e); }
    }
    if (own && safeIcon(own.src)) {
      return { src: own.src, label: typeof own.label === "string" && own.label ? own.label : (t ? t.label : c.type) };
    }
    return { src: (t && safeIcon(t.icon)) || UNKNOWN_ICON,
      label: t ? t.label : "Unknown channel (" + c.type + ")" };
  }

  function setChatIcon(img, c) {
    var icon = chatIcon(c);
    img.src = icon.src;
    img.alt = icon.label;
    img.title = icon.label;
  }

  function safeIcon(path) {
    return typeof path === "string" && /^\/static\//.test(path) ? path : null;
  }

  function onIconError(event) {
    var img = event.target;
    if (img.getAttribute("src") !== UNKNOWN_ICON) img.src = UNKNOWN_ICON;
  }

  // ------------------------------------------------------------------ chat list

  function compareChats(a, b) {
    if (a.last_activity_at !== b.last_activity_at) {
      return parseTime(b.last_activity_at) - parseTime(a.last_activity_at);
    }
    return b.id - a.id;
  }

  function clearList() {
    state.listGeneration += 1;     // answers still on their way are dropped
    state.chats = new Map();
    state.listCursor = null;
    state.listSeq = null;
    state.listLoading = false;
    $("chat-list").replaceChildren();
    $("chat-list-empty").hidden = true;
    $("chat-list-more").hidden = true;
  }

  function resetList(quiet) {
    clearList();
    return loadMoreChats(quiet);
  }

  /** The next page of the list (the first one after a reset); resolves to the answer, if one was asked. */
  function loadMoreChats(quiet) {
    if (state.listLoading) return Promise.resolve();
    if (state.listSeq !== null && !state.listCursor) return Promise.resolve();
    state.listLoading = true;
    var generation = state.listGeneration;
    var params = { limit: PAGE_CHATS, type: state.filter.type, q: state.filter.q, cursor: state.listCursor };
    return api("/api/chats" + query(params)).then(function (r) {
      if (generation !== state.listGeneration) return;
      state.listLoading = false;
      if (!r.ok) {
        if (r.status !== 401 && quiet !== true) notify(errorText(r, "The chat list could not be loaded."), "error");
        return r;
      }
      // The first page fixes the counter to poll from; later pages must not move it backwards.
      if (state.listSeq === null) state.listSeq = r.data.change_seq;
      state.listCursor = r.data.next_cursor;
      r.data.items.forEach(function (c) { state.chats.set(c.id, c); });
      renderList();
      fillListView();
      return r;
    });
  }

  /** A tall window may show the whole page: keep loading until the list can scroll (or ends). */
  function fillListView() {
    var box = $("chat-scroll");
    if (state.listCursor && box.scrollHeight - box.scrollTop - box.clientHeight < 200) loadMoreChats();
  }

  function oldestLoadedChat() {
    var oldest = null;
    state.chats.forEach(function (c) { if (!oldest || compareChats(c, oldest) > 0) oldest = c; });
    return oldest;
  }

  /** Merge changed chats: a chat that moved inside the loaded range (or above it) is shown. */
  function mergeChats(items) {
    var oldest = oldestLoadedChat();
    items.forEach(function (c) {
      var known = state.chats.get(c.id);
      if (known && known.change_seq > c.change_seq) return;  // an older answer than what is shown
      var inRange = !state.listCursor || !oldest || compareChats(c, oldest) <= 0;
      if (inRange) state.chats.set(c.id, c);
      else state.chats.delete(c.id);
      if (state.chat && state.chat.id === c.id) updateOpenChat(c);
    });
    renderList();
  }

  function renderList() {
    var list = $("chat-list");
    var sorted = Array.from(state.chats.values()).sort(compareChats);
    var existing = new Map();
    Array.prototype.forEach.call(list.children, function (li) { existing.set(li.dataset.chatId, li); });
    var fragment = document.createDocumentFragment();
    sorted.forEach(function (c) {
      var li = existing.get(String(c.id));
      if (!li || li.dataset.seq !== String(c.change_seq)) li = renderChatItem(c);
      li.classList.toggle("active", !!(state.chat && state.chat.id === c.id));
      fragment.appendChild(li);
    });
    list.replaceChildren(fragment);
    $("chat-list-empty").hidden = sorted.length > 0 || state.listLoading;
    $("chat-list-more").hidden = !state.listCursor;
    showUnreadInTitle(sorted);
  }

  /** "(3) Helpdesk": how many of the listed chats have messages nobody read, for an agent in another tab. */
  function showUnreadInTitle(chats) {
    var unread = chats.filter(function (c) { return c.unread_count > 0; }).length;
    var title = unread ? "(" + unread + ") " + TITLE : TITLE;
    if (document.title !== title) document.title = title;
  }

  /** A phone as people write it: "+7 916 123-45-67" for a Russian or Kazakh number (+7), "+" and the
   *  digits for any other international number; anything else (a Telegram username) as it is. */
  function displayPhone(phone) {
    var value = phone || "";
    if (/^7\d{10}$/.test(value)) {
      return "+7 " + value.slice(1, 4) + " " + value.slice(4, 7) + "-" + value.slice(7, 9) + "-" + value.slice(9);
    }
    return /^\d{10,15}$/.test(value) ? "+" + value : value;
  }

  function renderChatItem(c) {
    var li = el("li", c.unread_count > 0 ? "chat-item chat-unread" : "chat-item");
    li.dataset.chatId = String(c.id);
    li.dataset.seq = String(c.change_seq);
    li.dataset.type = c.type;
    var button = el("button", "chat-item-button");
    button.type = "button";
    var icon = el("img", "chat-item-icon");
    setChatIcon(icon, c);
    icon.width = 36;
    icon.height = 36;
    icon.addEventListener("error", onIconError);
    button.appendChild(icon);

    var body = el("span", "chat-item-body");
    var top = el("span", "chat-item-top");
    top.appendChild(auto(el("span", "chat-item-title", c.title || displayPhone(c.phone) || "Chat " + c.id)));
    var when = parseTime(c.last_message_at || c.last_activity_at);
    var time = el("time", "chat-item-time", listTime(when));
    if (when) { time.dateTime = when.toISOString(); time.title = fullTime(when); }
    top.appendChild(time);
    body.appendChild(top);

    var bottom = el("span", "chat-item-bottom");
    var preview = auto(el("span", "chat-item-preview", plainText(c.type, c.last_message_preview || "")));
    bottom.appendChild(preview);
    if (c.unread_count > 0) {
      var badge = el("span", "badge", c.unread_count > 99 ? "99+" : c.unread_count);
      badge.setAttribute("aria-label", c.unread_count + " unread");
      bottom.appendChild(badge);
    }
    body.appendChild(bottom);
    if (c.phone) body.appendChild(el("span", "chat-item-phone", displayPhone(c.phone)));
    button.appendChild(body);
    button.setAttribute("aria-label", (c.title || c.phone || "Chat") +
      (c.unread_count > 0 ? ", " + c.unread_count + " unread" : ""));
    button.addEventListener("click", function () { openChat(c.id); });
    li.appendChild(button);
    return li;
  }

  var searchTimer = null;
  function onSearchInput() {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(function () {
      var q = $("chat-search").value.trim();
      if (q === state.filter.q) return;
      state.filter.q = q;
      resetList();
    }, 300);
  }

  function onTypeFilter() {
    state.filter.type = $("chat-type-filter").value;
    resetList();
  }

  // ------------------------------------------------------------------ the open chat

  function openChat(chatId) {
    var c = state.chats.get(chatId);
    closeChat();
    state.chatGeneration += 1;
    var generation = state.chatGeneration;
    document.body.classList.add("show-chat");
    $("chat-empty").hidden = true;
    $("chat-box").hidden = false;
    $("message-list").replaceChildren();
    var loadChat = c ? Promise.resolve({ ok: true, data: c }) : api("/api/chats/" + chatId);
    return loadChat.then(function (r) {
      if (generation !== state.chatGeneration || !r.ok) return;
      state.chat = r.data;
      renderChatHeader(r.data);
      renderList();
      mountPanel(r.data);
      markRead(r.data);
      return api("/api/chats/" + chatId + "/messages" + query({ limit: PAGE_MESSAGES })).then(function (m) {
        if (generation !== state.chatGeneration) return;
        if (!m.ok) { notify(errorText(m, "Messages could not be loaded."), "error"); return; }
        state.msgSeq = m.data.change_seq;
        state.msgCursor = m.data.next_cursor;
        m.data.items.forEach(function (msg) { state.messages.set(msg.id, msg); });
        renderMessages();
        scrollToBottom();
        // A short history may not fill the view: load older pages until it scrolls.
        fillUpOlder(generation, 3);
      });
    });
  }

  function closeChat() {
    if (state.panel && typeof state.panel.destroy === "function") {
      try { state.panel.destroy(); } catch (e) { console.error(e); }
    }
    state.panel = null;
    state.chat = null;
    state.messages = new Map();
    state.msgCursor = null;
    state.msgSeq = null;
    state.msgChangeCursor = null;
    state.msgLoadingOlder = false;
    state.chatGeneration += 1;
    showNewMessages(false);
    $("chat-panel").replaceChildren();
    $("chat-header-extra").replaceChildren();
  }

  /** No chat open: the empty pane, with nothing of the last conversation left in the page. */
  function clearChatPane() {
    closeChat();
    document.body.classList.remove("show-chat");
    $("chat-box").hidden = true;
    $("chat-empty").hidden = false;
    $("message-list").replaceChildren();
    $("messages-older").hidden = true;
    $("chat-title").textContent = "";
    $("chat-phone").textContent = "";
    $("chat-icon").removeAttribute("src");
  }

  /** The open chat is gone from the helpdesk: out of the list, and the pane emptied, saying so. */
  function chatRemoved(chatId) {
    state.chats.delete(chatId);
    if (state.chat && state.chat.id === chatId) clearChatPane();
    renderList();
    notify("This chat was removed (its messages may have moved to another chat in the list).", "info");
  }

  function backToList() {
    clearChatPane();
    renderList();
  }

  function renderChatHeader(c) {
    setChatIcon($("chat-icon"), c);
    $("chat-title").textContent = c.title || displayPhone(c.phone) || "Chat " + c.id;
    $("chat-phone").textContent = displayPhone(c.phone);
  }

  function updateOpenChat(c) {
    state.chat = c;
    renderChatHeader(c);
    if (c.unread_count > 0) markRead(c);
  }

  /** Mark the chat read, once the agent can see its newest messages: the tab shown, scrolled to the bottom. */
  function markRead(c) {
    if (!c.unread_count || document.hidden || state.readInFlight === c.id) return;
    if (state.chat && state.chat.id === c.id && !nearBottom()) return;
    state.readInFlight = c.id;
    api("/api/chats/" + c.id + "/read", { method: "POST" }).then(function (r) {
      state.readInFlight = null;
      if (r.ok && state.agent) mergeChats([r.data]);
    });
  }

  function mountPanel(c) {
    var slot = $("chat-panel");
    var t = chatType(c.type);
    if (!t) {
      slot.appendChild(el("p", "panel-note", "This chat's channel (" + c.type +
        ") is not installed here: its history is shown read-only."));
      return;
    }
    if (!t.panel) {
      if (!t.can_compose) slot.appendChild(el("p", "panel-note", t.label + ": read-only."));
      return;
    }
    var factory = panels[t.panel];
    if (!factory) {
      slot.appendChild(el("p", "panel-note", "The panel " + t.panel + " of this channel did not load."));
      return;
    }
    var element = el("div", "plugin-panel");
    element.dataset.panel = t.panel;
    slot.appendChild(element);
    try {
      state.panel = factory(pluginContext(c, element)) || null;
    } catch (e) {
      console.error(e);
      element.replaceChildren(el("p", "panel-note", "The panel " + t.panel + " failed to start."));
    }
  }

  function pluginContext(c, element) {
    return {
      element: element,
      chat: c,
      agent: state.agent,
      api: api,
      notify: notify,
      refresh: function () { return pollNow(); },
      openChat: function (chatId) { return openChat(chatId); },
      headerElement: $("chat-header-extra"),
      draft: draftFor(state.agent, c.id)
    };
  }

  // ------------------------------------------------------------------ messages

  function scrollBox() { return $("messages"); }

  function nearBottom() {
    var box = scrollBox();
    return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  }

  function scrollToBottom() {
    var box = scrollBox();
    box.scrollTop = box.scrollHeight;
  }

  function fillUpOlder(generation, budget) {
    var box = scrollBox();
    if (budget <= 0 || !state.msgCursor || generation !== state.chatGeneration) return;
    if (box.scrollHeight > box.clientHeight + 40) return;
    loadOlder().then(function () { fillUpOlder(generation, budget - 1); });
  }

  function loadOlder() {
    if (!state.chat || !state.msgCursor || state.msgLoadingOlder) return Promise.resolve();
    state.msgLoadingOlder = true;
    $("messages-older").hidden = false;
    var generation = state.chatGeneration;
    var chatId = state.chat.id;
    return api("/api/chats/" + chatId + "/messages" + query({ limit: PAGE_MESSAGES, cursor: state.msgCursor }))
      .then(function (r) {
        if (generation !== state.chatGeneration) return;
        state.msgLoadingOlder = false;
        $("messages-older").hidden = true;
        if (!r.ok) return;
        var box = scrollBox();
        var fromBottom = box.scrollHeight - box.scrollTop;
        state.msgCursor = r.data.next_cursor;
        r.data.items.forEach(function (msg) { if (!state.messages.has(msg.id)) state.messages.set(msg.id, msg); });
        renderMessages();
        box.scrollTop = box.scrollHeight - fromBottom;  // keep what the agent was reading in place
      });
  }

  function onMessagesScroll() {
    if (scrollBox().scrollTop < 60) loadOlder();
    if (nearBottom()) seenNewest();
  }

  /** New messages came while the agent reads older ones: a button says so (and scrolls down). */
  function showNewMessages(show) {
    $("messages-new").hidden = !show;
  }

  /** The agent is at the newest messages: nothing left to point to, and the chat is read. */
  function seenNewest() {
    showNewMessages(false);
    if (state.chat) markRead(state.chat);
  }

  function onNewMessagesClick() {
    scrollToBottom();
    seenNewest();
  }

  function mergeMessages(items) {
    if (!items.length) return;
    var stick = nearBottom();
    var oldestId = null, newestId = null, arrived = false;
    state.messages.forEach(function (m) {
      if (oldestId === null || m.id < oldestId) oldestId = m.id;
      if (newestId === null || m.id > newestId) newestId = m.id;
    });
    items.forEach(function (m) {
      var before = state.messages.get(m.id);
      if (before && before.change_seq > m.change_seq) return;  // an older answer than what is shown
      // A message the agent saw going out has failed since, or may not have gone out: say so.
      if (before && m.direction === "out" && m.status !== before.status) {
        if (m.status === "failed") {
          notify("Not delivered: " + (m.error_text || "the messenger refused the message") +
            (m.error_code ? " (" + m.error_code + ")" : ""), "error");
        } else if (m.status === "unknown") {
          notify("Not confirmed: the helpdesk could not confirm that your message went out. Check with the " +
            "customer, or resend it.", "error");
        }
      }
      // A change to a message older than the loaded history is not shown until it is paged in.
      if (before || oldestId === null || m.id > oldestId || !state.msgCursor) {
        state.messages.set(m.id, m);
        if (!before && newestId !== null && m.id > newestId) arrived = true;
      }
    });
    renderMessages();
    if (stick) scrollToBottom();
    else if (arrived) showNewMessages(true);
  }

  function renderMessages() {
    var list = $("message-list");
    var existing = new Map();
    Array.prototype.forEach.call(list.children, function (li) { existing.set(li.dataset.messageId, li); });
    var sorted = Array.from(state.messages.values()).sort(function (a, b) { return a.id - b.id; });
    var fragment = document.createDocumentFragment();
    var lastDay = null;
    sorted.forEach(function (m) {
      var li = existing.get(String(m.id));
      if (!li || li.dataset.seq !== String(m.change_seq)) li = renderMessage(m);
      var when = messageTime(m);
      var day = when ? when.toDateString() : lastDay;
      if (day !== lastDay && when) fragment.appendChild(daySeparator(when));
      lastDay = day;
      fragment.appendChild(li);
    });
    list.replaceChildren(fragment);
  }

  function messageTime(m) {
    return parseTime(m.messenger_at || m.created_at);
  }

  /** "Today", "Yesterday" or the date, above the first message of each day (the agent's own days). */
  function daySeparator(d) {
    var li = el("li", "msg-day", dayLabel(d));
    li.setAttribute("role", "separator");
    return li;
  }

  function dayLabel(d) {
    var today = new Date();
    var yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
    if (d.toDateString() === today.toDateString()) return "Today";
    if (d.toDateString() === yesterday.toDateString()) return "Yesterday";
    var options = { weekday: "short", day: "numeric", month: "long" };
    if (d.getFullYear() !== today.getFullYear()) options.year = "numeric";
    return d.toLocaleDateString([], options);
  }

  var STATUS_LABELS = {
    queued: "Queued: waiting to be sent",
    accepted: "Sent to the messenger",
    sent: "Sent",
    delivered: "Delivered",
    read: "Read",
    failed: "Not delivered",
    unknown: "Unknown: it may not have been sent"
  };
  var PATH_CLOCK = "M8 1.5a6.5 6.5 0 1 0 0 13 6.5 6.5 0 0 0 0-13zm0 1.5a5 5 0 1 1 0 10A5 5 0 0 1 8 3zm-.75 1.75v3.6l2.7 1.8.83-1.25-2.03-1.35V4.75z";
  var PATH_CHECK = "M13.3 4.3 6.5 11.1 2.7 7.3l-1 1 4.8 4.8 7.8-7.8z";
  var PATH_DOUBLE = "M11.3 4.3 4.5 11.1 1.7 8.3l-1 1 3.8 3.8 7.8-7.8zm3 0-6.8 6.8-.9-.9-1 1 1.9 1.9 7.8-7.8z";
  var PATH_ALERT = "M8 1 .5 14.5h15zm-.75 5h1.5v4h-1.5zm0 5h1.5v1.5h-1.5z";
  var PATH_QUESTION = "M8 1.5a6.5 6.5 0 1 0 0 13 6.5 6.5 0 0 0 0-13zM8 4a2.5 2.5 0 0 1 1.2 4.7c-.5.3-.45.5-.45 1.3h-1.5c0-1.3.3-1.9 1.2-2.5A1 1 0 1 0 7 6.5H5.5A2.5 2.5 0 0 1 8 4zm-.75 7h1.5v1.5h-1.5z";

  function statusIcon(m) {
    var s = m.status;
    var node = el("span", "ticks ticks-" + s);
    var when = parseTime(m[s + "_at"]);
    var label = STATUS_LABELS[s] || s;
    node.setAttribute("role", "img");
    node.setAttribute("aria-label", label);
    node.title = label + (when ? " \u2014 " + fullTime(when) : "");
    var path = { queued: PATH_CLOCK, accepted: PATH_CHECK, sent: PATH_CHECK, delivered: PATH_DOUBLE,
      read: PATH_DOUBLE, failed: PATH_ALERT, unknown: PATH_QUESTION }[s] || PATH_QUESTION;
    node.appendChild(svg(path, "tick-svg"));
    return node;
  }

  function renderMessage(m) {
    var li = el("li", "msg msg-" + (m.direction === "out" ? "out" : "in"));
    li.dataset.messageId = String(m.id);
    li.dataset.seq = String(m.change_seq);
    li.dataset.status = m.status;
    li.dataset.type = m.type || "text";
    if (m.deleted_at) li.classList.add("msg-deleted");
    var bubble = el("div", "bubble");
    // Who wrote it: the agent of an outgoing message; in a group chat, the member who sent an incoming one.
    if (m.author_name) bubble.appendChild(auto(el("span", "msg-author", m.author_name)));
    renderDecorations(m).forEach(function (node) { bubble.appendChild(node); });
    bubble.appendChild(renderContent(m));

    var meta = el("div", "msg-meta");
    if (m.edited_at) {
      var edited = el("span", "msg-marker msg-edited", "edited");
      edited.title = m.previous_text ? "Before the edit: " + m.previous_text : "Edited " + fullTime(parseTime(m.edited_at));
      edited.tabIndex = 0;
      meta.appendChild(edited);
    }
    if (m.deleted_at) {
      var deleted = el("span", "msg-marker msg-deleted-marker", "deleted");
      deleted.title = "Deleted " + fullTime(parseTime(m.deleted_at));
      meta.appendChild(deleted);
    }
    var when = messageTime(m);
    var time = el("time", "msg-time", timeOnly(when));
    if (when) { time.dateTime = when.toISOString(); time.title = fullTime(when); }
    meta.appendChild(time);
    if (m.direction === "out") meta.appendChild(statusIcon(m));
    bubble.appendChild(meta);

    if (m.status === "failed") {
      var reason = m.error_text || m.error_code || "The messenger refused this message.";
      var err = el("p", "msg-error", "Not delivered: " + reason);
      if (m.error_code && m.error_text) err.title = m.error_code;
      bubble.appendChild(err);
    } else if (m.status === "unknown") {
      bubble.appendChild(el("p", "msg-hint",
        "We could not confirm this message went out. Check with the customer, or resend it."));
    }
    var actions = renderActions(m);
    if (actions) bubble.appendChild(actions);
    li.appendChild(bubble);
    return li;
  }

  function renderActions(m) {
    if (!state.chat) return null;
    var chat = state.chat;
    var box = null;
    messageActions.forEach(function (action) {
      var applies = false;
      try { applies = action.appliesTo(m, chat); } catch (e) { console.error(e); }
      if (!applies) return;
      box = box || el("div", "msg-actions");
      var button = el("button", "btn btn-small msg-action", action.label);
      button.type = "button";
      button.dataset.action = action.id;
      button.addEventListener("click", function () {
        button.disabled = true;
        Promise.resolve()
          .then(function () { return action.run(m, chat, pluginContext(chat, null)); })
          .catch(function (e) { console.error(e); notify(String(e && e.message || e), "error"); })
          .then(function () { button.disabled = false; });
      });
      box.appendChild(button);
    });
    return box;
  }

  /** What plugins show above a message's content (registerMessageDecorator). */
  function renderDecorations(m) {
    if (!state.chat) return [];
    var chat = state.chat;
    var nodes = [];
    messageDecorators.forEach(function (decorate) {
      try {
        var node = decorate(m, chat, messageHelpers);
        if (node instanceof Node) nodes.push(node);
      } catch (e) { console.error(e); }
    });
    return nodes;
  }

  var messageHelpers = {
    findMessage: function (predicate) {
      var found = null;
      state.messages.forEach(function (m) {
        try { if (!found && predicate(m)) found = m; } catch (e) { console.error(e); }
      });
      return found;
    },
    scrollToMessage: function (id) {
      var li = $("message-list").querySelector('[data-message-id="' + Number(id) + '"]');
      if (!li) return false;
      li.scrollIntoView({ block: "center" });
      li.classList.remove("msg-flash");
      void li.offsetWidth;         // restart the highlight if it is still on
      li.classList.add("msg-flash");
      clearTimeout(li.flashTimer);
      li.flashTimer = setTimeout(function () { li.classList.remove("msg-flash"); }, FLASH_MS);
      return true;
    }
  };

  var URL_IN_TEXT = /https?:\/\/[^\s<>"]+/gi;
  var URL_TAIL = /[.,;:!?'")\]}>]+$/;   // "see https://x.example/a." ends before the stop

  /** A message's text: formatted as its chat type's plugin says (registerTextFormat), else as written with
   * its links clickable. Text nodes and elements only, never parsed as HTML. */
  function renderText(text, className) {
    var p = auto(el("p", className || "msg-text"));
    p.appendChild(formattedText(text) || linkify(text));
    return p;
  }

  /** Text with its http(s) links clickable: text nodes and <a> elements. */
  function linkify(text) {
    var out = document.createDocumentFragment();
    var rest = 0;
    text = String(text);
    text.replace(URL_IN_TEXT, function (found, at) {
      var url = found.replace(URL_TAIL, "");
      if (!safeUrl(url) || url.length < "http://x".length) return found;
      if (at > rest) out.appendChild(document.createTextNode(text.slice(rest, at)));
      out.appendChild(link(url, url));
      rest = at + url.length;
      return found;
    });
    if (rest < text.length) out.appendChild(document.createTextNode(text.slice(rest)));
    return out;
  }

  /** The open chat's type's drawing of a text (registerTextFormat), or null: none, it failed, or it lost or
   * changed characters (the agent must see every character the customer wrote). */
  function formattedText(text) {
    var format = state.chat && textFormats[state.chat.type];
    if (!format) return null;
    try {
      var node = format(text, linkify);
      if (node instanceof Node && node.textContent === text) return node;
      if (node) console.error("registerTextFormat: the drawn text differs from the message's; drawn plain");
    } catch (e) { console.error(e); }
    return null;
  }

  /** A preview of a chat of that type without its messenger's markup (registerTextFormat's plain), or as
   * written: no plain function, it failed, or it gave characters the text does not have (the agent must
   * never read in a preview what the customer did not write). */
  function plainText(typeName, text) {
    var plain = plainTexts[typeName];
    if (!plain || !text) return text;
    try {
      var shown = plain(text);
      if (typeof shown === "string" && leavesOutOnly(shown, text)) return shown;
      console.error("registerTextFormat: plain gave characters the text does not have; shown as written");
    } catch (e) { console.error(e); }
    return text;
  }

  /** Whether ``shown`` is ``text`` with some characters left out, the rest in their order. */
  function leavesOutOnly(shown, text) {
    var i = 0;
    for (var j = 0; j < text.length && i < shown.length; j++) {
      if (text.charAt(j) === shown.charAt(i)) i++;
    }
    return i === shown.length;
  }

  function link(href, text, className) {
    var a = el("a", className || "msg-link", text);
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    return a;
  }

  /** A plugin's URL for a message's media (registerMediaUrl): a path on this origin or https, else null. */
  function pluginMediaUrl(m) {
    var found = null;
    mediaUrls.some(function (fn) {
      try {
        var url = fn(m, state.chat);
        if (typeof url === "string" && /^\/(?![\/\\])/.test(url)) found = url;  // "/x", never "//host"
        else found = safeUrl(url, true);
      } catch (e) { console.error(e); }
      return !!found;
    });
    return found;
  }

  function renderContent(m) {
    var box = el("div", "msg-content");
    var type = m.type || "text";
    var own = pluginMediaUrl(m);
    var uri = own || safeUrl(m.content_uri);
    var embeddable = own || safeUrl(m.content_uri, true);
    var name = m.content_name || "";
    if (type === "text" || type === "note") {
      box.appendChild(renderText(m.text || ""));
      return box;
    }
    if (type === "image" && embeddable) {
      var a = link(embeddable, "", "msg-image-link");
      var img = el("img", "msg-image");
      img.src = embeddable;
      img.alt = name || "Image";
      img.loading = "lazy";
      img.addEventListener("error", function () { a.replaceChildren(document.createTextNode(name || "Open the image")); });
      a.appendChild(img);
      box.appendChild(a);
    } else if ((type === "video" || type === "audio") && embeddable) {
      var player = el(type, "msg-" + type);
      player.controls = true;
      player.preload = "metadata";
      player.src = embeddable;
      box.appendChild(player);
      box.appendChild(link(embeddable, name || (type === "video" ? "Download the video" : "Download the audio"),
        "msg-link msg-download"));
    } else if (type === "document" || ((type === "image" || type === "video" || type === "audio") && uri)) {
      if (uri) {
        var doc = link(uri, "", "msg-document");
        doc.appendChild(svg("M4 1h5l4 4v10H4zm5 1v4h3z", "doc-svg"));
        doc.appendChild(auto(el("span", "msg-document-name", name || "Document")));
        box.appendChild(doc);
      } else {
        box.appendChild(el("p", "msg-placeholder", "A " + type + " whose link is not available."));
      }
    } else if (type === "geo") {
      box.appendChild(renderGeo(m, uri));
      return box;
    } else if (type === "vcard") {
      box.appendChild(renderContact(m, uri));
      return box;
    } else if (type === "missing_call") {
      // Its stored text, for hosts that show text only, is these same words: drawn once.
      box.appendChild(el("p", "msg-placeholder msg-call", "Missed call"));
      return box;
    } else if (m.text && type !== "unsupported" && type !== "unknown") {
      box.appendChild(renderText(m.text));   // a type this page does not draw, with its text (a template)
      return box;
    } else {
      // The text stored for a message the messenger sent without one names what it was.
      box.appendChild(el("p", "msg-placeholder",
        m.text || "This message (" + type + ") cannot be shown here; open it in the messenger."));
      return box;
    }
    if (m.text) box.appendChild(renderText(m.text, "msg-text msg-caption"));
    return box;
  }

  function renderGeo(m, uri) {
    var box = el("div", "msg-geo");
    box.appendChild(svg("M8 1a5 5 0 0 0-5 5c0 3.5 5 9 5 9s5-5.5 5-9a5 5 0 0 0-5-5zm0 3a2 2 0 1 1 0 4 2 2 0 0 1 0-4z", "geo-svg"));
    var text = m.text || "";
    var coords = /(-?\d{1,2}(?:\.\d+)?)\s*[,;\s]\s*(-?\d{1,3}(?:\.\d+)?)/.exec(text);
    var href = uri;
    if (!href && coords) {
      href = "https://www.openstreetmap.org/?mlat=" + encodeURIComponent(coords[1]) +
        "&mlon=" + encodeURIComponent(coords[2]) + "#map=16/" + coords[1] + "/" + coords[2];
    }
    if (href) box.appendChild(link(href, "Location" + (text ? ": " + text : ""), "msg-link msg-geo-link"));
    else box.appendChild(el("span", "msg-placeholder", "Location" + (text ? ": " + text : " (no coordinates)")));
    return box;
  }

  function renderContact(m, uri) {
    var card = el("div", "msg-contact");
    card.appendChild(svg("M8 2a3 3 0 1 1 0 6 3 3 0 0 1 0-6zm0 7c3 0 6 1.5 6 4v1H2v-1c0-2.5 3-4 6-4z", "contact-svg"));
    var text = m.text || "";
    var name = m.content_name || "";
    var phones = [];
    if (/BEGIN:VCARD/i.test(text)) {
      text.split(/\r?\n/).forEach(function (line) {
        var fn = /^FN[^:]*:(.*)$/i.exec(line);
        if (fn && !name) name = fn[1].trim();
        var tel = /^TEL[^:]*:(.*)$/i.exec(line);
        if (tel) phones.push(tel[1].trim());
      });
    } else if (text) {
      name = name || text;
    }
    var details = el("div", "msg-contact-details");
    details.appendChild(auto(el("strong", "msg-contact-name", name || "Contact card")));
    phones.forEach(function (p) { details.appendChild(el("span", "msg-contact-phone", p)); });
    if (uri) details.appendChild(link(uri, "Download the contact", "msg-link"));
    card.appendChild(details);
    return card;
  }

  // ------------------------------------------------------------------ live updates (short polling)

  function schedulePoll() {
    stopPolling();
    state.pollTimer = setTimeout(pollNow, pollDelay());
  }

  /** The wait before the next poll: POLL_MS, doubled for every failed poll in a row up to POLL_MAX_MS,
   *  so that a helpdesk coming back from an outage is not met by every open page at once. The
   *  browser's "online" event and a tab coming back into view poll at once whatever the wait. */
  function pollDelay() {
    if (state.failedPolls < 2) return POLL_MS;
    return Math.min(POLL_MS * Math.pow(2, state.failedPolls - 1), POLL_MAX_MS);
  }

  function stopPolling() {
    clearTimeout(state.pollTimer);
    state.pollTimer = null;
  }

  /** The changes since a counter, page by page from `cursor` (if given), at most MAX_CHANGE_PAGES.
   *  overflow: there are more; `cursor` goes on from the last item received (same `since`). */
  function fetchChanges(path, params, since, cursor) {
    var items = [];
    function page(cursor, n) {
      return api(path + query(Object.assign({}, params, { changed_since: since, cursor: cursor, limit: 200 })))
        .then(function (r) {
          if (!r.ok) return { ok: false, result: r };
          items = items.concat(r.data.items);
          if (r.data.next_cursor && n < MAX_CHANGE_PAGES) return page(r.data.next_cursor, n + 1);
          return { ok: true, items: items, seq: r.data.change_seq, overflow: !!r.data.next_cursor,
            cursor: r.data.next_cursor || null, result: r };
        });
    }
    return page(cursor || null, 1);
  }

  /** Did this answer fail to come from the helpdesk (no connection, a proxy's 5xx, not our JSON)? */
  function unreachable(r) {
    return !!r && !r.ok && !(r.status >= 400 && r.status < 500);
  }

  function setOffline(offline) {
    // A live region that is always there, filled or emptied: screen readers announce the change.
    var bar = $("offline-bar");
    var text = offline ? "Offline \u2014 reconnecting\u2026" : "";
    if (bar.textContent === text) return;
    bar.textContent = text;
    document.dispatchEvent(new CustomEvent("helpdesk:offline", { detail: { offline: offline } }));
  }

  function isOffline() {
    return $("offline-bar").textContent !== "";
  }

  function pollNow() {
    if (!state.agent) return Promise.resolve();
    if (state.polling) return Promise.resolve();
    stopPolling();
    state.polling = true;
    var jobs = [];
    if (state.listSeq !== null) {
      var listGeneration = state.listGeneration;
      jobs.push(fetchChanges("/api/chats", { type: state.filter.type, q: state.filter.q }, state.listSeq)
        .then(function (r) {
          if (listGeneration !== state.listGeneration) return null;
          if (!r.ok) return r.result;
          if (r.overflow) return resetList(true);
          state.listSeq = r.seq;
          mergeChats(r.items);
          return r.result;
        }));
    } else if (!state.listLoading) {
      jobs.push(loadMoreChats(true));  // the list's first page did not come (e.g. offline): ask again
    }
    if (state.chat && state.msgSeq !== null) {
      var chatGeneration = state.chatGeneration;
      var path = "/api/chats/" + state.chat.id + "/messages";
      jobs.push(fetchChanges(path, {}, state.msgSeq, state.msgChangeCursor).then(function (r) {
        if (chatGeneration !== state.chatGeneration) return null;
        if (r.result.status === 404) {   // removed (a plugin may merge a chat into another): not there to show
          chatRemoved(state.chat.id);
          return null;
        }
        if (!r.ok) {
          // A cursor the server no longer takes: start over from the counter (repeats are harmless).
          if (r.result.status >= 400 && r.result.status < 500) state.msgChangeCursor = null;
          return r.result;
        }
        mergeMessages(r.items);
        if (r.overflow) {
          // More changes than one poll takes: go on from here next time, never past what came.
          state.msgChangeCursor = r.cursor;
        } else {
          state.msgSeq = r.seq;
          state.msgChangeCursor = null;
        }
        return r.result;
      }));
    }
    return Promise.all(jobs).catch(function (e) { console.error(e); return []; }).then(function (results) {
      state.polling = false;
      if (!state.agent) return;
      var answers = (results || []).filter(function (r) { return r; });
      if (answers.some(unreachable)) state.failedPolls += 1;
      else if (answers.length) state.failedPolls = 0;
      setOffline(state.failedPolls >= OFFLINE_AFTER);
      state.pollTimer = setTimeout(pollNow, pollDelay());
    });
  }

  // ------------------------------------------------------------------ the plugin API

  /** A plugin's button under the chat list's search (e.g. "New chat"); the same id replaces it. */
  function addListAction(action) {
    var row = $("list-actions");
    var button = el("button", "btn btn-ghost list-action", action.label);
    button.type = "button";
    button.dataset.action = action.id;
    button.addEventListener("click", function () {
      try {
        action.run({ api: api, notify: notify, errorText: errorText, opener: button,
          openChat: function (chatId) { return openChat(chatId); } });
      } catch (e) {
        console.error(e);
      }
    });
    var old = row.querySelector('[data-action="' + CSS.escape(action.id) + '"]');
    if (old) old.replaceWith(button); else row.appendChild(button);
    row.hidden = false;
  }

  window.helpdesk = {
    registerPanel: function (name, factory) {
      if (typeof name !== "string" || typeof factory !== "function") {
        throw new TypeError("registerPanel(name, factory) needs a name and a function");
      }
      panels[name] = factory;
    },
    registerMessageAction: function (action) {
      if (!action || typeof action.id !== "string" || typeof action.label !== "string" ||
          typeof action.appliesTo !== "function" || typeof action.run !== "function") {
        throw new TypeError("registerMessageAction needs {id, label, appliesTo, run}");
      }
      messageActions = messageActions.filter(function (a) { return a.id !== action.id; });
      messageActions.push(action);
    },
    registerChatIcon: function (typeName, fn) {
      if (typeof typeName !== "string" || typeof fn !== "function") {
        throw new TypeError("registerChatIcon(typeName, fn) needs a chat type's name and a function");
      }
      chatIcons[typeName] = fn;
    },
    registerTextFormat: function (typeName, fn, plain) {
      if (typeof typeName !== "string" || typeof fn !== "function" ||
          (plain != null && typeof plain !== "function")) {
        throw new TypeError("registerTextFormat(typeName, fn, plain) needs a chat type's name, a function " +
          "and, if given, a plain text function");
      }
      textFormats[typeName] = fn;
      if (plain) plainTexts[typeName] = plain; else delete plainTexts[typeName];
    },
    registerListAction: function (action) {
      if (!action || typeof action.id !== "string" || typeof action.label !== "string" ||
          typeof action.run !== "function") {
        throw new TypeError("registerListAction needs {id, label, run}");
      }
      addListAction(action);
    },
    registerMessageDecorator: function (fn) {
      if (typeof fn !== "function") throw new TypeError("registerMessageDecorator(fn) needs a function");
      if (messageDecorators.indexOf(fn) < 0) messageDecorators.push(fn);
    },
    registerMediaUrl: function (fn) {
      if (typeof fn !== "function") throw new TypeError("registerMediaUrl(fn) needs a function");
      if (mediaUrls.indexOf(fn) < 0) mediaUrls.push(fn);
    },
    api: api,
    notify: notify,
    errorText: errorText,
    isOffline: isOffline,
    refresh: function () { return pollNow(); }
  };

  // ------------------------------------------------------------------ start

  function start() {
    $("login-form").addEventListener("submit", onLoginSubmit);
    $("logout").addEventListener("click", onLogout);
    $("chat-search").addEventListener("input", onSearchInput);
    $("chat-type-filter").addEventListener("change", onTypeFilter);
    $("chat-list-more").addEventListener("click", function () { loadMoreChats(); });
    $("chat-back").addEventListener("click", backToList);
    $("chat-icon").addEventListener("error", onIconError);
    $("messages").addEventListener("scroll", onMessagesScroll, { passive: true });
    $("messages-new").addEventListener("click", onNewMessagesClick);
    window.addEventListener("online", function () { if (state.agent) pollNow(); });
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden && state.agent) {
        pollNow();
        if (state.chat) markRead(state.chat);   // only if the agent is at the newest messages
      }
    });
    // Infinite scroll: the "load more" button at the end of the list loads the next page as it
    // scrolls into view (it stays a button for keyboards and for browsers without the observer).
    if ("IntersectionObserver" in window) {
      new IntersectionObserver(function (entries) {
        if (entries.some(function (e) { return e.isIntersecting; })) loadMoreChats();
      }, { root: $("chat-scroll"), rootMargin: "0px 0px 200px 0px" }).observe($("chat-list-more"));
    }
    api("/api/session").then(function (r) {
      if (r.ok) signedIn(r.data);
      else showLogin("");
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
