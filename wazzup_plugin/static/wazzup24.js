/* The Wazzup24 send panel for `wazzup` chats, the connection indicator, "Resend", replies
 * (quotes) as WhatsApp shows them: the quote above a message, and "Reply" to quote one; and a
 * customer's media shown from the helpdesk's own copy, with "Retry download" when it failed; and
 * WhatsApp's formatting (*bold*, _italic_, ...) in the bubbles of `wazzup` chats, its markers left out of
 * their one-line previews (the chat list, quotes); and "New chat" under the chat list, to write first
 * (WhatsApp and MAX by number, Telegram by number or username).
 *
 * Loaded by the host page after its own app.js; talks to the host only through
 * window.helpdesk (registerPanel, registerMessageAction, registerMessageDecorator, registerMediaUrl,
 * registerTextFormat, registerListAction, api, notify, errorText)
 * and to the plugin's routes under /api/.../wazzup24/. Everything shown is set with textContent.
 */
(function () {
  "use strict";

  var host = window.helpdesk;
  if (!host || typeof host.registerPanel !== "function") return;

  var MAX_CHARS = 10000;          // Wazzup's limit until the connection report's text_limits say the chat's own
  var COUNTER_FROM = 0.9;         // the counter appears near the limit (this share of it)
  var CONNECTION_POLL_MS = 30000;
  var SNIPPET_CHARS = 100;        // how much of a quoted message a quote shows
  var SENT_NOTE_MS = 4000;        // how long "Sent to Wazzup24" stays beside the connection line
  // What the server counts as blank (wazzup_plugin/outbound/send.py _BLANK), spelt out the same way:
  // String.prototype.trim() misses U+001C-U+001F and U+0085, which the server refuses as blank.
  var BLANK = "\t\n\v\f\r \x1c\x1d\x1e\x1f\x85\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006" +
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff";
  // The send body's fields as the agent knows them, for the server's per-field reasons.
  var FIELD_LABELS = { text: "text", content_uri: "file link", content_name: "file name",
    reply_to: "quoted message", "Idempotency-Key": "request key", _schema: "", file: "file", file_id: "file" };
  // The files Wazzup sends, as the server takes them (wazzup_plugin/outbound/file_rules.py): checked here
  // first so that the agent hears at once, before a long upload, what would be refused.
  var FILE_KINDS = {
    image: ["jpg", "jpeg", "png", "gif", "webp"],
    video: ["mp4", "3gp", "mov"],
    audio: ["mp3", "ogg", "opus", "m4a", "aac", "wav", "amr"],
    document: ["pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt", "csv", "rtf", "odt", "ods", "zip", "rar", "7z"]
  };
  var MB = 1000 * 1000;
  var MAX_FILE_BYTES = 10 * MB;   // Wazzup's API limit
  var MAX_PHOTO_BYTES = 5 * MB;   // photos on Telegram and WhatsApp Business (WABA)

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  /** A <button> of ``type`` ("button" or "submit": never the form-submitting default by accident). */
  function button(type, className, text) {
    var node = el("button", className, text);
    node.type = type;
    return node;
  }

  function paperclip() {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 16 16");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("class", "wz-clip");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", "M10.5 2a3 3 0 0 1 2.1 5.1L7.4 12.3a2 2 0 0 1-2.8-2.8l4.6-4.6 1 1-4.6 4.6a.6.6 0 0 0 .8.8" +
      "l5.2-5.2a1.6 1.6 0 0 0-2.2-2.2L4.2 9.1a2.9 2.9 0 0 0 4.1 4.1l4.3-4.3 1 1-4.3 4.3A4.3 4.3 0 0 1 3.2 8.1l5.2-5.2A3 3 0 0 1 10.5 2z");
    svg.appendChild(path);
    return svg;
  }

  /** A small \u00d7 button that cancels or removes something, named for screen readers. */
  function crossButton(className, label, title) {
    var cross = button("button", "btn btn-ghost " + className, "\u00d7");
    cross.title = title;
    cross.setAttribute("aria-label", label);
    return cross;
  }

  /** A random key for Idempotency-Key: repeating a send whose answer was lost never sends twice. */
  function newKey() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return "ui-" + Array.from(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  /** Code points, like Python's len(): an emoji is one character, not two UTF-16 units. */
  function codePoints(text) {
    return Array.from(text).length;
  }

  /** Nothing but blank characters, by the server's own list (every one of them is a single UTF-16 unit). */
  function isBlank(text) {
    for (var i = 0; i < text.length; i++) {
      if (BLANK.indexOf(text.charAt(i)) < 0) return false;
    }
    return true;
  }

  function reasonOf(result, fallback) {
    var d = result && result.data;
    if (d && !d.message && typeof d.reason === "string" && d.reason) return d.reason;  // the connection report
    return host.errorText(result, fallback, FIELD_LABELS);
  }

  // ------------------------------------------------------------------ WhatsApp's formatting in bubbles

  // WhatsApp's markers: *bold*, _italic_, ~strikethrough~, `inline code`; ```monospace``` may span lines.
  var INLINE_TAGS = { "*": ["strong", "wz-fmt-bold"], "_": ["em", "wz-fmt-italic"], "~": ["s", "wz-fmt-strike"],
    "`": ["code", "wz-fmt-code"] };
  var MONOSPACE = /```([\s\S]*?\S[\s\S]*?)```/g;
  // Lines that start so: "> " a quote, "- " or "* " a bullet, "1. " a numbered item.
  var LINE_KINDS = [[/^> /, "wz-fmt-quote", true], [/^[-*] /, "wz-fmt-bullet", true],
    [/^\d{1,3}\. /, "wz-fmt-numbered", false]];
  // Links as the host finds them (app.js URL_IN_TEXT), without a closing marker or stop: no marker in them counts.
  var URL_AT = /https?:\/\/[^\s<>"]+/gi;
  var URL_STOP = /[.,;:!?'")\]}>*_~`]+$/;
  var WORD_CHAR = /[\p{L}\p{N}]/u;

  /** A message's text with WhatsApp's formatting as DOM nodes (host.registerTextFormat). Markers stay in
   * the text, hidden (wz-fmt-mark), so that copying a bubble gives back what the customer wrote. */
  function formatWhatsApp(text, linkify) {
    var out = document.createDocumentFragment();
    var rest = 0;
    text.replace(MONOSPACE, function (found, inner, at) {
      if (at > rest) formatLines(text.slice(rest, at), rest === 0 || text.charAt(rest - 1) === "\n", out, linkify);
      out.appendChild(marked("code", "wz-fmt-mono", "```", linkify(inner)));  // nothing formatted inside
      rest = at + found.length;
      return found;
    });
    if (rest < text.length) formatLines(text.slice(rest), rest === 0 || text.charAt(rest - 1) === "\n", out, linkify);
    return out;
  }

  function formatLines(text, atLineStart, out, linkify) {
    text.split("\n").forEach(function (line, i) {
      if (i > 0) out.appendChild(document.createTextNode("\n"));
      var kind = (atLineStart || i > 0) && LINE_KINDS.filter(function (k) { return k[0].test(line); })[0];
      if (!kind) return formatInline(line, out, linkify);
      var head = kind[0].exec(line)[0];
      var item = el("span", "wz-fmt-line " + kind[1]);
      item.appendChild(kind[2] ? mark(head) : document.createTextNode(head));
      formatInline(line.slice(head.length), item, linkify);
      out.appendChild(item);
    });
  }

  /** *bold*, _italic_, ~strike~ and `code` in one line: a marker pair hugs its text (no space inside it)
   * and stands outside words (2*3*4, snake_case_names stay as written), never inside a link. */
  function formatInline(text, out, linkify) {
    var links = [];
    text.replace(URL_AT, function (found, at) { links.push([at, at + found.replace(URL_STOP, "").length]); return found; });
    var inLink = function (i) { return links.some(function (r) { return i >= r[0] && i < r[1]; }); };
    var plain = 0;
    for (var i = 0; i < text.length; i++) {
      var ch = text.charAt(i);
      if (!INLINE_TAGS[ch] || !opens(text, i) || inLink(i)) continue;
      var close = -1;
      for (var j = i + 2; j < text.length && close < 0; j++) {
        if (text.charAt(j) === ch && closes(text, j) && !inLink(j)) close = j;
      }
      if (close < 0) continue;
      if (i > plain) out.appendChild(linkify(text.slice(plain, i)));
      var inner = text.slice(i + 1, close);
      var content = document.createDocumentFragment();
      if (ch === "`") content.appendChild(linkify(inner));   // code: nothing formatted inside
      else formatInline(inner, content, linkify);
      out.appendChild(marked(INLINE_TAGS[ch][0], INLINE_TAGS[ch][1], ch, content));
      i = close;
      plain = close + 1;
    }
    if (plain < text.length) out.appendChild(linkify(text.slice(plain)));
  }

  function opens(text, i) {
    var before = text.charAt(i - 1), after = text.charAt(i + 1);
    return !WORD_CHAR.test(before) && before !== text.charAt(i) && after !== "" && !/\s/.test(after) &&
      after !== text.charAt(i);
  }

  function closes(text, j) {
    var before = text.charAt(j - 1), after = text.charAt(j + 1);
    return !/\s/.test(before) && !WORD_CHAR.test(after) && after !== text.charAt(j);
  }

  function mark(marker) {
    var node = el("span", "wz-fmt-mark", marker);
    node.setAttribute("aria-hidden", "true");
    return node;
  }

  function marked(tag, className, marker, content) {
    var node = el(tag, className);
    node.appendChild(mark(marker));
    node.appendChild(content);
    node.appendChild(mark(marker));
    return node;
  }

  /** formatWhatsApp's linkify where links are not drawn (previews, the template picker): text as it is. */
  function asText(piece) {
    return document.createTextNode(piece);
  }

  /** A text as a one-line preview shows it (a quote, the chat list): what formatWhatsApp draws, without the
   * markers it hides. Taken from its own drawing, so the two never disagree about what is a marker
   * (2*3*4 and a lone * stay). Links as plain text: a preview is not clickable. */
  function plainWhatsApp(text) {
    var drawn = formatWhatsApp(String(text), asText);
    drawn.querySelectorAll(".wz-fmt-mark").forEach(function (marker) { marker.remove(); });
    return drawn.textContent;
  }

  // The chat list's previews are the server's (last_message_preview), kept as written, for
  // the API and for a host without this plugin: they are made plain here, where the parser is, not by a
  // second one in Python; older previews need no rewrite. The server's preview is one line already, so
  // there a "> " or "- " counts at its start only (a quote, below, is made plain from the whole text).
  // A preview the server labelled ("[Document] _draft_.pdf", "[Location] ..."): a file's name or a place is
  // no formatted text, and stays as it is.
  var SERVER_LABEL = /^\[[A-Z][A-Za-z ]*\]( |$)/;

  function plainPreview(text) {
    return SERVER_LABEL.test(text) ? text : plainWhatsApp(text);
  }

  if (typeof host.registerTextFormat === "function") {
    host.registerTextFormat("wazzup", formatWhatsApp, plainPreview);
  }

  // ------------------------------------------------------------------ quotes

  var PLACEHOLDERS = { image: "Photo", video: "Video", audio: "Audio", document: "Document", geo: "Location",
    vcard: "Contact card", missing_call: "Missed call" };

  /** A message in a line: the first SNIPPET_CHARS characters of its text without WhatsApp's markers (made
   * plain before its lines are joined, so that each line's "> " or "- " counts), or what kind it is. */
  function snippet(message) {
    var type = message.type || "text";
    var text = type === "vcard" ? "" : plainWhatsApp(message.text || "").replace(/\s+/g, " ").trim();
    if (!text) {
      var placeholder = PLACEHOLDERS[type] || "Message";
      return type === "document" && message.content_name ? placeholder + ": " + message.content_name : placeholder;
    }
    var chars = Array.from(text);
    return chars.length > SNIPPET_CHARS ? chars.slice(0, SNIPPET_CHARS).join("") + "\u2026" : text;
  }

  function authorOf(message, chat) {
    if (message.direction === "out") return message.author_name || "Agent";
    return chat.title || chat.phone || "Customer";
  }

  /** The quote above a message that replies to another (the host's message decorator). */
  function renderQuote(message, chat, helpers) {
    var ref = message.wazzup_reply_to;
    if (chat.type !== "wazzup" || !ref) return null;
    var quoted = helpers.findMessage(function (m) { return m.wazzup_message_id === ref; });
    if (!quoted) return el("div", "wz-quote wz-quote-missing", "a reply to an earlier message");
    var quote = button("button", "wz-quote wz-quote-" + (quoted.direction === "out" ? "out" : "in"));
    quote.title = "Show the quoted message";
    var author = el("span", "wz-quote-author", authorOf(quoted, chat));
    var text = el("span", "wz-quote-text", snippet(quoted));
    author.dir = "auto";
    text.dir = "auto";
    quote.appendChild(author);
    quote.appendChild(text);
    quote.addEventListener("click", function () { helpers.scrollToMessage(quoted.id); });
    return quote;
  }

  if (typeof host.registerMessageDecorator === "function") host.registerMessageDecorator(renderQuote);

  /** The open send panels by chat id: "Reply" on a message sets the reply target of its chat's panel. */
  var composers = {};

  /** "text" + " " + "next": a sentence that ends with a stop, then the next one. */
  function sentences(first, next) {
    return first + (/[.!?\u2026]$/.test(first) ? " " : ". ") + next;
  }

  // ------------------------------------------------------------------ connection status
  // One poll for the whole page, shared by every open panel, gently: every 30 s.

  // limits: the server's table of text limits; channels: what the report says of each channel, by id.
  var connection = { status: null, reason: "", listeners: [], timer: null, inflight: null, limits: null,
    channels: {} };

  var LEVEL = { ok: "ok", degraded: "warn", error: "bad", not_configured: "bad" };
  var LABEL = {
    ok: "Wazzup24 connected",
    degraded: "Wazzup24 works with problems",
    error: "Wazzup24 connection failed",
    not_configured: "Wazzup24 is not configured",
    unknown: "Wazzup24 status unknown"
  };

  function connectionReason(data) {
    if (!data) return "";
    var parts = [];
    ["reason", "message"].forEach(function (k) {
      if (typeof data[k] === "string" && data[k] && parts.indexOf(data[k]) < 0) parts.push(data[k]);
    });
    if (Array.isArray(data.warnings)) {
      data.warnings.forEach(function (w) { if (typeof w === "string") parts.push(w); });
    }
    return parts.join(" ");
  }

  function fetchConnection() {
    if (connection.inflight) return connection.inflight;
    connection.inflight = host.api("/api/wazzup24/connection").then(function (r) {
      connection.inflight = null;
      if (r.status === 401) return;
      if (r.ok && r.data && LEVEL[r.data.status]) {
        connection.status = r.data.status;
        connection.reason = connectionReason(r.data);
        connection.limits = r.data.text_limits || connection.limits;
        connection.channels = channelsOf(r.data);
      } else {
        connection.status = "unavailable";
        connection.reason = "The connection status could not be read: " + reasonOf(r);
      }
      connection.listeners.forEach(function (fn) { fn(); });
    });
    return connection.inflight;
  }

  /** The report's channels by id: Wazzup's list, overlaid with the states stored from its webhooks. */
  function channelsOf(data) {
    var out = {};
    (Array.isArray(data.channels) ? data.channels : []).forEach(function (c) {
      if (c && typeof c.channel_id === "string") {
        out[c.channel_id] = { state: c.state, transport: c.transport, plain_id: c.plain_id, needs_action: false,
          advice: "" };
      }
    });
    (Array.isArray(data.stored_channel_states) ? data.stored_channel_states : []).forEach(function (c) {
      if (!c || typeof c.channel_id !== "string") return;
      var listed = out[c.channel_id] || {};
      out[c.channel_id] = { state: c.state || listed.state, transport: c.transport || listed.transport,
        plain_id: c.plain_id || listed.plain_id, needs_action: !!c.needs_action, advice: c.advice || "" };
    });
    return out;
  }

  /** The longest text the chat's messenger takes, by the server's table (wazzup_plugin/text_limits.py). */
  function textLimit(chat) {
    var t = connection.limits;
    if (!t || typeof t !== "object") return MAX_CHARS;
    var type = String(chat.wazzup_chat_type || "whatsapp").toLowerCase();
    var channel = connection.channels[chat.wazzup_channel_id];
    var waba = t.waba;
    if (waba && type === waba.chat_type && channel &&
        String(channel.transport || "").toLowerCase() === waba.transport && typeof waba.limit === "number") {
      return waba.limit;
    }
    var byType = t.by_chat_type || {};
    if (typeof byType[type] === "number") return byType[type];
    return typeof t["default"] === "number" ? t["default"] : MAX_CHARS;
  }

  // While the helpdesk cannot be reached, neither can Wazzup's status: the indicator says so, and asks again
  // once the helpdesk is back.
  document.addEventListener("helpdesk:offline", function (event) {
    if (!connection.listeners.length) return;
    if (!(event.detail && event.detail.offline)) fetchConnection();
    connection.listeners.forEach(function (fn) { fn(); });
  });

  function helpdeskOffline() {
    return typeof host.isOffline === "function" && host.isOffline();
  }

  function watchConnection(fn) {
    connection.listeners.push(fn);
    if (connection.status) fn();
    if (!connection.timer) {
      fetchConnection();
      connection.timer = setInterval(fetchConnection, CONNECTION_POLL_MS);
    }
    return function unwatch() {
      connection.listeners = connection.listeners.filter(function (f) { return f !== fn; });
      if (!connection.listeners.length) {
        clearInterval(connection.timer);
        connection.timer = null;
      }
    };
  }

  /** The account's status, or the open chat's own channel's where its state is known and not active. */
  function renderIndicator(dot, text, chat) {
    var status = connection.status;
    var level = LEVEL[status] || "warn";
    var label = LABEL[status] || LABEL.unknown;
    var reason = connection.reason;
    var channel = chat && chat.wazzup_channel_id ? connection.channels[chat.wazzup_channel_id] : null;
    var channelState = channel && channel.state ? String(channel.state) : "";
    if (channelState && channelState.toLowerCase() !== "active" && (status === "ok" || status === "degraded")) {
      if (channel.needs_action) {
        // Only a person can fix it (signed out, unpaid, ...): sends to this chat fail until then.
        level = "bad";
        label = "This chat's channel needs attention";
        reason = channel.advice || "Wazzup reports the channel as " + channelState + ".";
      } else {
        level = "warn";
        label = LABEL.degraded;
        reason = "This chat's channel is " + channelState + " at Wazzup: messages wait until it is active again." +
          (reason ? " " + reason : "");
      }
    }
    if (helpdeskOffline()) {
      level = "unknown";
      label = LABEL.unknown;
      reason = "the helpdesk cannot be reached, so Wazzup24's status cannot be read.";
    }
    var full = label + (reason ? ": " + reason : "");
    dot.className = "wz-dot wz-dot-" + level;
    dot.dataset.status = status || "";
    dot.dataset.channelState = channelState;
    dot.title = full;
    dot.setAttribute("aria-label", full);
    text.textContent = label;
    text.title = full;
  }

  // ------------------------------------------------------------------ files from the agent's computer

  function extensionOf(name) {
    var dot = name.lastIndexOf(".");
    return dot > 0 ? name.slice(dot + 1).toLowerCase() : "";
  }

  function kindOf(name) {
    var ext = extensionOf(name);
    var kinds = Object.keys(FILE_KINDS);
    for (var i = 0; i < kinds.length; i++) {
      if (FILE_KINDS[kinds[i]].indexOf(ext) >= 0) return kinds[i];
    }
    return null;
  }

  function humanSize(bytes) {
    return bytes >= MB / 10 ? (bytes / MB).toFixed(1) + " MB" : Math.max(1, Math.round(bytes / 1000)) + " KB";
  }

  /** Why the chat cannot take this file (the server's rules), or "" when it can. */
  function fileProblem(file, chat) {
    var kind = kindOf(file.name);
    if (!kind) {
      var all = [];
      Object.keys(FILE_KINDS).forEach(function (k) { all = all.concat(FILE_KINDS[k]); });
      return "Wazzup24 cannot send " + (extensionOf(file.name) ? "." + extensionOf(file.name) + " files" :
        "a file without an extension") + "; send one of: " + all.sort().join(", ") + ".";
    }
    if (!file.size) return "The file " + file.name + " is empty.";
    var type = String(chat.wazzup_chat_type || "whatsapp").toLowerCase();
    var channel = connection.channels[chat.wazzup_channel_id];
    var waba = type === "whatsapp" && channel && String(channel.transport || "").toLowerCase() === "wapi";
    var photoLimited = kind === "image" && (type === "telegram" || type === "telegroup" || waba);
    var limit = photoLimited ? MAX_PHOTO_BYTES : MAX_FILE_BYTES;
    if (file.size > limit) {
      return "The file " + file.name + " is " + humanSize(file.size) + "; " +
        (photoLimited ? (waba ? "WhatsApp Business" : "Telegram") + " takes photos up to 5 MB." :
          "Wazzup24 takes files up to 10 MB.");
    }
    return "";
  }

  // ------------------------------------------------------------------ WhatsApp Business: the 24-hour window
  // A chat on a WhatsApp Business channel takes free text and files only within 24 hours of the customer's
  // latest message (the chat info's `window`); past that only an approved template goes out. The panel says
  // so under its status row, disables the text box, and offers its templates in a picker.

  var WINDOW_CLOSED_TEXT = "The 24-hour window is closed: send a template";
  var WINDOW_WARN_MS = 60 * 60 * 1000;     // the last hour of an open window is shown as a warning
  var WINDOW_TICK_MS = 30000;              // the line follows the clock (the window closes by itself)

  /** A button that shows and hides a group of controls (starting hidden): the ARIA that ties them. */
  function disclosure(toggle, group, id, label) {
    group.id = id;
    group.hidden = true;
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", label);
    toggle.setAttribute("aria-expanded", "false");
    toggle.setAttribute("aria-controls", id);
  }

  /** A time as the message bubbles write it (the browser's locale: "16:36" or "04:36 PM"). */
  function hhmm(date) {
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  /** "for 23 h 50 min (until 02:09 tomorrow)": a bare time would read as today's, already past. */
  function openFor(at) {
    var minutes = Math.max(0, Math.floor((at.getTime() - Date.now()) / 60000));
    var left = minutes >= 60 ? Math.floor(minutes / 60) + " h " + (minutes % 60) + " min" : minutes + " min";
    var today = new Date();
    var day = at.toDateString() === today.toDateString() ? "" : " tomorrow";
    return "for " + left + " (until " + hhmm(at) + day + ")";
  }

  /** The window line, the "Template" button and the template picker of one chat's panel.
   * panel = {changed(): the composer re-checks what it may send, sendTemplate(payload): Promise<bool>,
   * edited(): the template or its values changed (the next send is another message)}. */
  function wabaWindow(chat, panel) {
    var state = null;           // the chat info's window, once read
    var inflight = null;
    var line = el("div", "wz-window");
    line.id = "wz-window-" + chat.id;
    line.hidden = true;
    line.setAttribute("aria-live", "polite");
    var toggle = button("button", "btn btn-ghost wz-template-toggle", "Template");
    toggle.hidden = true;
    toggle.title = "Send a WhatsApp Business template (the only message that goes out once the window is closed)";
    var picker = el("div", "wz-templates");
    disclosure(toggle, picker, "wz-templates-" + chat.id, "WhatsApp Business templates");

    function closesAt() {
      return state && state.closes_at ? new Date(state.closes_at) : null;
    }

    function closed() {
      if (!state || !state.applies) return false;
      var at = closesAt();
      return !state.open || !at || at.getTime() <= Date.now();
    }

    function render() {
      var applies = !!(state && state.applies);
      line.hidden = !applies;
      toggle.hidden = !applies;
      if (!applies) return;
      var at = closesAt();
      var shut = closed();
      line.classList.toggle("wz-window-closed", shut);
      line.classList.toggle("wz-window-warn", !shut && at.getTime() - Date.now() <= WINDOW_WARN_MS);
      line.textContent = shut ? WINDOW_CLOSED_TEXT : "Window open " + openFor(at);
      line.title = shut ? "WhatsApp Business takes free text and files only within 24 hours of the customer's " +
        "last message; a template reopens the conversation." : "Free text and files can be sent until " +
        at.toLocaleString() + "; after that only a template.";
      panel.changed();
    }

    function refresh() {
      if (inflight) return inflight;
      inflight = host.api("/api/chats/" + chat.id + "/wazzup24/info").then(function (r) {
        inflight = null;
        if (r.ok && r.data && r.data.window) state = r.data.window;
        if (r.ok && r.data && panel.info) panel.info(r.data);
        render();
      });
      return inflight;
    }

    /** A message shown in this chat: a customer's newer than the one the window counts from reopens it. */
    function incoming(message) {
      if (!state || !state.applies || message.direction !== "in") return;
      var at = message.messenger_at || message.created_at;
      var last = state.last_incoming_at;
      if (at && (!last || new Date(at).getTime() > new Date(last).getTime())) refresh();
    }

    // ---- the picker: the chat's approved templates; choosing one asks for its variables
    function closePicker() {
      picker.hidden = true;
      picker.replaceChildren();
      toggle.setAttribute("aria-expanded", "false");
    }

    function openPicker() {
      picker.hidden = false;
      toggle.setAttribute("aria-expanded", "true");
      picker.replaceChildren(el("p", "wz-templates-note", "Loading templates\u2026"));
      host.api("/api/chats/" + chat.id + "/wazzup24/templates").then(function (r) {
        if (picker.hidden) return;
        picker.replaceChildren();
        if (!r.ok) {
          picker.appendChild(el("p", "wz-templates-note", "Templates could not be read: " + reasonOf(r)));
          return;
        }
        var items = (r.data && Array.isArray(r.data.items)) ? r.data.items : [];
        if (!items.length) {
          picker.appendChild(el("p", "wz-templates-note",
            "This WhatsApp Business channel has no approved templates: create one in Wazzup."));
          return;
        }
        var list = el("ul", "wz-template-list");
        items.forEach(function (t) {
          var item = el("li");
          var choose = button("button", "wz-template-choice");
          choose.appendChild(el("span", "wz-template-title", t.title || t.name || t.id));
          var body = el("span", "wz-template-body");
          body.appendChild(formatWhatsApp(t.body || "", asText));   // as the customer's WhatsApp draws it
          body.dir = "auto";
          choose.appendChild(body);
          choose.addEventListener("click", function () { fill(t); });
          item.appendChild(choose);
          list.appendChild(item);
        });
        picker.appendChild(list);
        list.querySelector("button").focus();
      });
    }

    /** The chosen template: an input per variable, the message as the customer will read it, Send. */
    function fill(t) {
      picker.replaceChildren();
      var form = el("form", "wz-template-form");
      form.noValidate = true;
      form.appendChild(el("div", "wz-template-title", t.title || t.name || t.id));
      var inputs = [];
      for (var n = 1; n <= t.variables; n++) {
        var field = el("label", "wz-template-var");
        field.appendChild(el("span", "wz-template-var-name", "{{" + n + "}}"));
        var input = el("input", "wz-template-value");
        input.type = "text";
        input.dir = "auto";
        input.maxLength = 1024;
        input.setAttribute("aria-label", "Value " + n + " of the template");
        field.appendChild(input);
        form.appendChild(field);
        inputs.push(input);
      }
      var preview = el("p", "wz-template-preview");
      preview.dir = "auto";
      preview.setAttribute("aria-live", "polite");
      form.appendChild(preview);
      var buttons = el("div", "wz-template-buttons");
      var go = button("submit", "btn btn-primary wz-template-send", "Send template");
      var back = button("button", "btn btn-ghost wz-template-back", "Other templates");
      buttons.appendChild(go);
      buttons.appendChild(back);
      form.appendChild(buttons);
      picker.appendChild(form);

      function values() { return inputs.map(function (i) { return i.value; }); }
      function show() {
        var v = values();
        // Filled in as the server does ({{n}} replaced by the n-th value), drawn as the customer's
        // WhatsApp will draw it (*bold*, _italic_...); DOM nodes only, the markers kept in its text.
        preview.replaceChildren(formatWhatsApp(t.body.replace(/\{\{\s*(\d{1,2})\s*\}\}/g, function (all, k) {
          var value = v[Number(k) - 1];
          return value ? value : all;
        }), asText));
        go.disabled = v.some(isBlank);
      }
      inputs.forEach(function (i) { i.addEventListener("input", function () { panel.edited(); show(); }); });
      panel.edited();
      back.addEventListener("click", openPicker);
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        if (go.disabled) return;
        go.disabled = true;
        panel.sendTemplate({ template_id: t.id, template_values: values() }).then(function (ok) {
          if (ok) { closePicker(); toggle.focus(); } else show();   // the focused button is gone with the picker
        });
      });
      show();
      (inputs[0] || go).focus();
    }

    toggle.addEventListener("click", function () {
      if (picker.hidden) openPicker(); else closePicker();
    });
    picker.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); closePicker(); toggle.focus(); }
    });
    var timer = setInterval(render, WINDOW_TICK_MS);

    return {
      line: line, toggle: toggle, picker: picker, closed: closed, refresh: refresh, incoming: incoming,
      destroy: function () { clearInterval(timer); }
    };
  }

  // The panel learns of a customer's new message as the host shows it (a decorator that draws nothing).
  if (typeof host.registerMessageDecorator === "function") {
    host.registerMessageDecorator(function (message, chat) {
      var composer = chat.type === "wazzup" ? composers[chat.id] : null;
      if (composer && composer.incoming) composer.incoming(message);
      return null;
    });
  }

  // ------------------------------------------------------------------ the send panel

  function sendPanel(ctx) {
    var chat = ctx.chat;
    var root = ctx.element;
    root.classList.add("wz-panel");

    var statusRow = el("div", "wz-status-row");
    var dot = el("span", "wz-dot");
    dot.setAttribute("role", "img");
    dot.tabIndex = 0;
    var statusText = el("span", "wz-status-text", "Checking Wazzup24…");
    var counter = el("span", "wz-counter");
    counter.id = "wz-counter-" + chat.id;
    counter.hidden = true;
    // "Sent" said where the agent looks, for a few seconds: a toast for every message stacked over the
    // chat's header; the tick on the bubble stays the lasting answer.
    var sentNote = el("span", "wz-sent-note");
    sentNote.setAttribute("aria-live", "polite");   // read out, without being the page's one status region
    var sentNoteTimer = null;
    statusRow.appendChild(dot);
    statusRow.appendChild(statusText);
    statusRow.appendChild(sentNote);
    statusRow.appendChild(counter);

    var form = el("form", "wz-form");
    form.noValidate = true;
    var label = el("label", "visually-hidden", "Message to " + (chat.title || chat.phone || "the customer"));
    var textarea = el("textarea", "wz-input");
    textarea.id = "wz-text-" + chat.id;
    textarea.dir = "auto";              // Arabic or Hebrew is typed right to left
    textarea.rows = 1;
    textarea.placeholder = "Write a message…";
    var hint = el("span", "visually-hidden", "Enter sends; Shift+Enter starts a new line.");
    hint.id = "wz-hint-" + chat.id;
    textarea.setAttribute("aria-describedby", hint.id + " " + counter.id);
    label.htmlFor = textarea.id;

    // The paperclip opens a small menu: a file from this computer, or a file's link.
    var attachToggle = button("button", "btn btn-ghost wz-attach-toggle");
    attachToggle.appendChild(paperclip());
    attachToggle.title = "Attach a file";
    attachToggle.setAttribute("aria-label", "Attach a file or a link");
    attachToggle.setAttribute("aria-haspopup", "true");
    attachToggle.setAttribute("aria-expanded", "false");
    var attachMenu = el("div", "wz-attach-menu");
    attachMenu.id = "wz-attach-menu-" + chat.id;
    attachMenu.hidden = true;
    attachMenu.setAttribute("role", "group");
    attachMenu.setAttribute("aria-label", "Attach");
    attachToggle.setAttribute("aria-controls", attachMenu.id);
    var pickFile = button("button", "btn btn-ghost wz-pick-file", "Attach a file\u2026");
    pickFile.title = "A photo, video, audio or document from this computer (or drop or paste it here)";
    var linkToggle = button("button", "btn btn-ghost wz-link-toggle", "Send a file by its link");
    linkToggle.setAttribute("aria-expanded", "false");
    attachMenu.appendChild(pickFile);
    attachMenu.appendChild(linkToggle);
    var fileInput = el("input", "wz-file-input");
    fileInput.type = "file";
    fileInput.hidden = true;
    fileInput.setAttribute("aria-label", "File to attach");
    fileInput.accept = Object.keys(FILE_KINDS).map(function (k) {
      return FILE_KINDS[k].map(function (ext) { return "." + ext; }).join(",");
    }).join(",");

    // The attached file: its name and size, and × to remove it.
    var fileRow = el("div", "wz-file-row");
    fileRow.id = "wz-file-" + chat.id;
    fileRow.hidden = true;
    var fileName = el("span", "wz-file-name");
    fileName.dir = "auto";
    var fileSize = el("span", "wz-file-size");
    var fileState = el("span", "wz-file-state");
    fileState.setAttribute("aria-live", "polite");
    var fileRemove = crossButton("wz-file-remove", "Remove the attached file", "Remove the attached file");
    fileRow.appendChild(fileName);
    fileRow.appendChild(fileSize);
    fileRow.appendChild(fileState);
    fileRow.appendChild(fileRemove);

    var send = button("submit", "btn btn-primary wz-send", "Send");
    send.disabled = true;

    var replyBar = el("div", "wz-reply");
    replyBar.id = "wz-reply-" + chat.id;
    replyBar.hidden = true;
    var replyLabel = el("span", "wz-reply-label", "Replying to: ");
    var replyText = el("span", "wz-reply-text");
    replyText.id = "wz-reply-text-" + chat.id;
    replyText.dir = "auto";
    var replyCancel = crossButton("wz-reply-cancel", "Cancel the reply", "Cancel the reply (Escape)");
    replyBar.appendChild(replyLabel);
    replyBar.appendChild(replyText);
    replyBar.appendChild(replyCancel);

    var linkRow = el("div", "wz-link-row");
    linkRow.hidden = true;
    var linkLabel = el("label", "visually-hidden", "Link to the file to send (http:// or https://)");
    var linkInput = el("input", "wz-link-input");
    linkInput.type = "url";
    linkInput.id = "wz-link-" + chat.id;
    linkInput.placeholder = "https://… link to an image, a document, audio or video";
    linkLabel.htmlFor = linkInput.id;
    linkRow.appendChild(linkLabel);
    linkRow.appendChild(linkInput);

    var waba = wabaWindow(chat, { changed: function () { update(); }, sendTemplate: sendTemplate,
      edited: function () { delete keys.template; },    // another template or value: another message
      info: function (info) { if (root.isConnected) showChannel(ctx.headerElement, info); } });  // still this chat

    form.appendChild(label);
    form.appendChild(hint);
    form.appendChild(attachToggle);
    form.appendChild(waba.toggle);
    form.appendChild(textarea);
    form.appendChild(send);
    root.appendChild(statusRow);
    root.appendChild(waba.line);
    root.appendChild(replyBar);
    root.appendChild(attachMenu);
    root.appendChild(fileInput);
    root.appendChild(fileRow);
    root.appendChild(linkRow);
    root.appendChild(waba.picker);
    root.appendChild(form);

    var sending = false;
    // Idempotency keys, one per message (the file, the text): kept only while the same message is
    // retried after a lost answer.
    var keys = {};
    var attached = null;  // {file, id}: the file to send; id once it is uploaded (an upload is not repeated)
    var replyTo = null;   // the message the next send quotes
    var draft = ctx.draft || { get: function () { return ""; }, set: function () {}, clear: function () {} };
    textarea.value = draft.get();   // what the agent was typing here before (e.g. before the session ended)
    // The text being sent: out of the box, which takes the next message meanwhile, and back in it (before
    // what was typed since) if it was not sent. The draft holds both until the answer comes.
    var pending = null;
    // A chat started by phone or username moves into the customer's own chat when Wazzup's answer names
    // one the helpdesk has (they wrote before): the chat a sent message is in now, when not this one.
    var movedTo = null;

    function unsent() {
      if (!pending) return textarea.value;
      return textarea.value ? pending + "\n" + textarea.value : pending;
    }

    // The chat's messenger's limit (Telegram 4,096, Instagram 1,000, ...), in code points as the server counts.
    var maxChars = textLimit(chat);

    function update() {
      var count = codePoints(textarea.value);
      var over = count > maxChars;
      counter.hidden = count < Math.floor(maxChars * COUNTER_FROM);
      counter.textContent = count.toLocaleString("en") + " / " + maxChars.toLocaleString("en");
      counter.classList.toggle("wz-over", over);
      counter.title = over ? "Too long: this chat's messenger accepts up to " + maxChars.toLocaleString("en") +
        " characters" : "";
      var hasText = !isBlank(textarea.value);
      var hasLink = !linkRow.hidden && linkInput.value.trim() !== "";
      // A WhatsApp Business chat whose 24-hour window is closed takes only a template (the server refuses more).
      var closed = waba.closed();
      send.disabled = sending || over || closed || (!hasText && !hasLink && !attached);
      attachToggle.disabled = sending || closed;
      waba.toggle.disabled = sending;
      var focused = document.activeElement === textarea;
      textarea.disabled = closed;
      if (closed && focused) waba.toggle.focus();   // a disabled box drops the focus: keep it in the composer
      textarea.placeholder = closed ? "Window closed: use Template" : "Write a message\u2026";
      textarea.title = closed ? WINDOW_CLOSED_TEXT + ": the customer last wrote more than 24 hours ago." : "";
      fileRemove.disabled = sending;
      linkInput.readOnly = sending;
      grow();
    }

    function setReply(message) {
      replyTo = message;
      keys = {};          // quoting another message (or none) makes another request
      replyText.textContent = message ? snippet(message) : "";
      replyBar.title = message ? authorOf(message, chat) + ": " + snippet(message) : "";
      replyBar.hidden = !message;
      // Screen readers say what the text will quote (only while it quotes one).
      textarea.setAttribute("aria-describedby", (message ? replyText.id + " " : "") + hint.id + " " + counter.id);
    }

    function grow() {
      textarea.style.height = "auto";  // CSSOM, allowed by the CSP (no style attributes in markup)
      textarea.style.height = Math.min(textarea.scrollHeight + 2, 180) + "px";
    }

    /** The messages to send, in order: {name, payload} (an attached file first, then the text:
     * Wazzup takes a text or a file, not both), or {error}. */
    function body() {
      var link = linkRow.hidden ? "" : linkInput.value.trim();
      var text = textarea.value;
      if (link && attached) {
        return { error: "Send the attached file or the link, not both: remove one of them." };
      }
      if (link && !isBlank(text)) {
        return { error: "Wazzup24 sends a text or a file, not both at once: send them one after the other." };
      }
      var steps = [];
      if (attached) steps.push({ name: "file", payload: {} });
      if (link) {
        // The server's rule: an http(s) URL (it says what else is wrong with one).
        if (!/^https?:\/\//i.test(link)) return { error: "The file link must start with http:// or https://." };
        steps.push({ name: "link", payload: { content_uri: link } });
      } else if (!attached || !isBlank(text)) {
        steps.push({ name: "text", payload: { text: text } });
      }
      if (replyTo) steps[0].payload.reply_to = replyTo.id;   // the first message quotes
      return { steps: steps };
    }

    /** Upload the attached file once (POST .../files); resolves its id, or null after saying why not. */
    function upload() {
      if (attached.id) return Promise.resolve(attached.id);
      var sent = attached;
      var form = new FormData();
      form.append("file", sent.file, sent.file.name);
      send.textContent = "Uploading\u2026";
      fileState.textContent = "Uploading\u2026";
      return host.api("/api/chats/" + chat.id + "/wazzup24/files", { method: "POST", body: form }).then(function (r) {
        fileState.textContent = "";
        if (r.ok && r.data && typeof r.data.id === "number") {
          sent.id = r.data.id;
          return sent.id;
        }
        if (r.status !== 401) host.notify("Not uploaded: " + reasonOf(r), "error");
        return null;
      });
    }

    function submit() {
      if (send.disabled) return;
      var built = body();
      if (built.error) { host.notify(built.error, "error"); return; }
      sending = true;
      if (built.steps.some(function (step) { return step.name === "text"; })) {
        pending = textarea.value;
        textarea.value = "";
      }
      update();
      var quoting = replyTo;
      var steps = built.steps.slice();
      function next() {
        var step = steps.shift();
        if (!step) return finish(true);
        var ready = step.name === "file" ? upload() : Promise.resolve(null);
        return ready.then(function (fileId) {
          if (step.name === "file") {
            if (fileId === null) return finish(false);
            step.payload.file_id = fileId;
          }
          // The text follows only a file Wazzup took: after a refusal the agent decides what to do.
          if (steps.length && step.name === "file") steps[0].afterFile = true;
          return post(step, quoting).then(function (ok) { return ok ? next() : finish(false); });
        });
      }
      function finish(all) {
        sending = false;
        send.textContent = "Send";
        if (pending !== null) {   // not sent (nor stored): back in the box to fix or send again
          var typed = textarea.value;
          textarea.value = unsent();
          pending = null;
          if (typed) delete keys.text;   // with what was typed since, it is another message
          draft.set(textarea.value);
        }
        update();
        if (movedTo !== null && typeof ctx.openChat === "function") {
          host.notify("This customer already had a chat: the message went there, and it is open now.", "info");
          ctx.openChat(movedTo);   // this chat is gone: its messages are there
          return;
        }
        if (ctx.refresh) ctx.refresh();
        if (all) textarea.focus();
      }
      next();
    }

    /** "Sent to Wazzup24 ✓" beside the connection line, cleared after a few seconds (the next one restarts it). */
    function saySent() {
      sentNote.textContent = "Sent to Wazzup24 \u2713";
      clearTimeout(sentNoteTimer);
      sentNoteTimer = setTimeout(function () { sentNote.textContent = ""; }, SENT_NOTE_MS);
    }

    /** Send one message; resolves whether Wazzup took it (or it is queued). A message stored as failed
     * leaves the composer too: it is in the chat, with Resend. */
    function post(step, quoting) {
      send.textContent = "Sending\u2026";
      keys[step.name] = keys[step.name] || newKey();
      return host.api("/api/chats/" + chat.id + "/wazzup24/send", {
        method: "POST", body: step.payload, headers: { "Idempotency-Key": keys[step.name] }
      }).then(function (r) {
        // An answer came: the next send is a new message (unless the first is still in progress).
        if (r.status !== 0 && !(r.data && r.data.code === "idempotency_in_progress")) delete keys[step.name];
        var code = r.data && r.data.code;
        // Stored (as failed) even though Wazzup refused it: the message is in the chat with Resend.
        var stored = !r.ok && r.data && typeof r.data.message_id === "number";
        var message = r.ok ? r.data : (stored && r.data.data && r.data.data.message) || null;
        if (message && typeof message.chat_id === "number" && message.chat_id !== chat.id) movedTo = message.chat_id;
        if (r.ok || stored) {
          // What the agent typed meanwhile stays in the box; a template leaves the box alone.
          if (step.name === "file") {
            detach();
          } else if (step.name === "text") {
            pending = null;
            draft.set(textarea.value);
          } else if (step.name === "link") {
            linkInput.value = "";
          }
          if (replyTo === quoting) setReply(null);   // not another one chosen while this one was sent
        }
        if (r.ok) {
          if (r.status === 202 && step.name === "file") {
            // An uploaded file always goes through the outbox worker (Wazzup downloads it from us).
            host.notify("File queued: it goes out to Wazzup24 in a moment.", "info");
          } else if (r.status === 202 && step.afterFile) {
            // Behind the file in the outbox: the server keeps a chat's messages in order.
            host.notify("Queued after the file: the customer gets them in this order.", "info");
          } else if (r.status === 202) {
            host.notify("Queued: Wazzup24 has not confirmed it yet; it will be retried automatically.", "info");
          } else {
            saySent();
          }
        } else if (r.status !== 401) {
          if (stored) {
            // Not kept in the composer: one more Enter would send it a second time. A refused key is the
            // administrator's to fix: the stored message says so in an agent's words, not the API's.
            var storedMessage = (r.data.data && r.data.data.message) || {};
            var storedText = storedMessage.error_text;
            var reason = code === "wazzup_auth_failed" && storedText ? storedText : reasonOf(r);
            reason = "Not delivered: " + reason;
            host.notify(storedMessage.wazzup_resendable ? sentences(reason, "Use Resend on the message to send it " +
              "again" + (code === "wazzup_auth_failed" ? " once that is done." : ".")) : reason, "error");
          } else {
            host.notify("Not sent: " + reasonOf(r), "error");  // nothing stored: the text stays to fix or retry
          }
        }
        // Refused, failed or queued: the connection may have changed (a channel switched off, Wazzup out of
        // reach), and the indicator must not say "connected" until its next check, 30 s away.
        if (r.status !== 401 && (!r.ok || r.status === 202)) fetchConnection();
        return r.ok;
      });
    }

    /** A WhatsApp Business template (the picker's Send): a message of its own, like a file or a text. */
    function sendTemplate(payload) {
      if (sending) return Promise.resolve(false);
      sending = true;
      update();
      return post({ name: "template", payload: payload }, null).then(function (ok) {
        sending = false;
        send.textContent = "Send";
        update();
        if (ctx.refresh) ctx.refresh();
        return ok;
      });
    }

    function edited() {
      delete keys.text;  // another text is another message
      delete keys.link;
      update();
    }

    function attach(file) {
      if (waba.closed()) { host.notify(WINDOW_CLOSED_TEXT + ": a file cannot go now.", "error"); return; }
      var problem = fileProblem(file, chat);
      if (problem) { host.notify(problem, "error"); return; }
      attached = { file: file, id: null };
      delete keys.file;  // another file is another message
      fileName.textContent = file.name;
      fileSize.textContent = humanSize(file.size);
      fileRow.title = file.name + " (" + humanSize(file.size) + ")";
      fileRow.hidden = false;
      update();
    }

    function detach() {
      attached = null;
      delete keys.file;
      fileInput.value = "";
      fileRow.hidden = true;
      fileName.textContent = "";
      fileSize.textContent = "";
      update();
    }

    function closeMenu(focusBack) {
      attachMenu.hidden = true;
      attachToggle.setAttribute("aria-expanded", "false");
      if (focusBack) attachToggle.focus();
    }

    textarea.addEventListener("input", function () {
      draft.set(unsent());
      if (sending) update();   // the next message: the one in flight keeps its key
      else edited();
    });
    linkInput.addEventListener("input", edited);
    textarea.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey) {
        event.preventDefault();
        submit();
      }
    });
    linkInput.addEventListener("keydown", function (event) {
      if (event.key === "Enter") { event.preventDefault(); submit(); }
    });
    form.addEventListener("submit", function (event) { event.preventDefault(); submit(); });
    replyCancel.addEventListener("click", function () {
      setReply(null);
      textarea.focus();
    });
    root.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && replyTo && !event.isComposing) {
        event.preventDefault();
        setReply(null);
        textarea.focus();
      }
    });
    linkToggle.addEventListener("click", function () {
      closeMenu(false);
      linkRow.hidden = !linkRow.hidden;
      linkToggle.setAttribute("aria-expanded", String(!linkRow.hidden));
      if (!linkRow.hidden) linkInput.focus(); else textarea.focus();
      update();
    });
    attachToggle.addEventListener("click", function () {
      attachMenu.hidden = !attachMenu.hidden;
      attachToggle.setAttribute("aria-expanded", String(!attachMenu.hidden));
      if (!attachMenu.hidden) pickFile.focus();
    });
    attachMenu.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); closeMenu(true); }
    });
    pickFile.addEventListener("click", function () {
      closeMenu(false);
      fileInput.click();
    });
    fileInput.addEventListener("change", function () {
      if (fileInput.files && fileInput.files[0]) attach(fileInput.files[0]);
      textarea.focus();
    });
    fileRemove.addEventListener("click", function () {
      detach();
      textarea.focus();
    });
    // A file dropped on the panel, or an image pasted into the text box, is attached too.
    function hasFiles(event) {
      return event.dataTransfer && Array.prototype.indexOf.call(event.dataTransfer.types || [], "Files") >= 0;
    }
    root.addEventListener("dragover", function (event) {
      if (!hasFiles(event) || sending) return;
      event.preventDefault();
      root.classList.add("wz-drop");
    });
    root.addEventListener("dragleave", function (event) {
      if (!root.contains(event.relatedTarget)) root.classList.remove("wz-drop");
    });
    root.addEventListener("drop", function (event) {
      root.classList.remove("wz-drop");
      if (!hasFiles(event) || sending) return;
      event.preventDefault();
      if (event.dataTransfer.files.length) attach(event.dataTransfer.files[0]);
    });
    textarea.addEventListener("paste", function (event) {
      var files = event.clipboardData && event.clipboardData.files;
      if (!files || !files.length || sending) return;   // plain text pastes as usual
      event.preventDefault();
      attach(files[0]);
    });

    var unwatch = watchConnection(function () {
      renderIndicator(dot, statusText, chat);
      waba.refresh();   // with the connection report, the channel's transport is known: is it WhatsApp Business?
      var limit = textLimit(chat);
      if (limit !== maxChars) {
        maxChars = limit;
        update();
      }
    });
    var composer = {
      reply: function (message) {
        setReply(message);
        textarea.focus();
      },
      incoming: waba.incoming
    };
    composers[chat.id] = composer;
    update();
    textarea.focus();
    return {
      destroy: function () {
        if (composers[chat.id] === composer) delete composers[chat.id];
        unwatch();
        waba.destroy();
        draft.set(unsent());   // also what a script put there without an input event
      }
    };
  }

  host.registerPanel("wazzup24-send", sendPanel);

  // ------------------------------------------------------------------ the chat's channel, in its header
  // Which of the company's numbers (or bots) the customer writes to, and whether that channel works:
  // an agent with several channels answers knowing which one the reply goes out from.

  var TRANSPORTS = { whatsapp: "WhatsApp", wapi: "WhatsApp Business", tgapi: "Telegram", telegram: "Telegram",
    viber: "Viber", instagram: "Instagram", vk: "VK", avito: "Avito", max: "MAX" };

  /** "WhatsApp +79865784457": a channel as agents know it (its messenger and its number). */
  function channelLabel(channel) {
    var number = String(channel.plain_id || "");
    if (/^\d{10,15}$/.test(number)) number = "+" + number;
    return (TRANSPORTS[channel.transport] || channel.transport || "Wazzup24") + (number ? " " + number : "");
  }

  function showChannel(target, info) {
    if (!target) return;
    var line = target.querySelector(".wz-chat-channel");
    var channel = info && info.channel;
    if (!channel) {
      if (line) line.remove();
      return;
    }
    if (!line) {
      line = el("span", "wz-chat-channel");
      target.appendChild(line);
    }
    var active = !channel.state || channel.state === "active";
    line.textContent = "via " + channelLabel(channel) + (active ? "" : " (channel " + channel.state + ")");
    line.classList.toggle("wz-chat-channel-down", !active);
    line.title = "Wazzup24 channel " + (channel.channel_id || "");
  }

  // ------------------------------------------------------------------ an icon per messenger
  // The `wazzup` chat type's own icon is WhatsApp's; a chat on another messenger (or a group) shows its
  // own, from its Wazzup chat type (wazzup_chat_type, served with the chat). WhatsApp's is the fallback.

  var ICON_BASE = "/static/plugins/wazzup24/";
  var ICONS = {
    whatsapp: ["whatsapp.svg", "WhatsApp"], whatsgroup: ["whatsapp-group.svg", "WhatsApp group"],
    telegram: ["telegram.svg", "Telegram"], telegroup: ["telegram-group.svg", "Telegram group"],
    viber: ["viber.svg", "Viber"], instagram: ["instagram.svg", "Instagram"], vk: ["vk.svg", "VK"],
    avito: ["avito.svg", "Avito"], max: ["max.svg", "MAX"], maxgroup: ["max-group.svg", "MAX group"]
  };

  host.registerChatIcon("wazzup", function (chat) {
    var icon = ICONS[String(chat.wazzup_chat_type || "whatsapp").toLowerCase()] || ICONS.whatsapp;
    return { src: ICON_BASE + icon[0], label: icon[1] + " (Wazzup24)" };
  });

  // ------------------------------------------------------------------ resend a failed/unknown message

  host.registerMessageAction({
    id: "wazzup24-resend",
    label: "Resend",
    appliesTo: function (message, chat) {
      // The server's verdict: a failed or unknown outgoing message, not resent yet, that would not meet the
      // same refusal again (not to a number that is not on WhatsApp, ...): wazzup_plugin/error_texts.py.
      return chat.type === "wazzup" && message.wazzup_resendable === true;
    },
    run: function (message, chat, ctx) {
      var path = "/api/chats/" + chat.id + "/wazzup24/messages/" + message.id + "/resend";
      return host.api(path, { method: "POST", body: {} }).then(function (r) {
        if (r.status === 201) host.notify("Sent again to Wazzup24.", "success");
        else if (r.status === 202) host.notify("Queued again: it will be sent when Wazzup24 answers.", "info");
        else if (r.ok) host.notify("Resent.", "success");
        else if (r.status !== 401) host.notify("Resend failed: " + reasonOf(r), "error");
        if (ctx && ctx.refresh) ctx.refresh();
      });
    }
  });

  // ------------------------------------------------------------------ a customer's media, as the helpdesk keeps it

  // The helpdesk's own copy (wazzup_media_url, once downloaded) is shown instead of Wazzup's link,
  // which may stop working; until then, or if it cannot be kept, Wazzup's link is shown as before.
  if (typeof host.registerMediaUrl === "function") {
    host.registerMediaUrl(function (message) {
      return message.wazzup_media_state === "stored" ? message.wazzup_media_url || null : null;
    });
  }

  var MEDIA_NOT_KEPT = {
    failed: "The helpdesk could not download this file; Wazzup's link may no longer work.",
    too_big: "This file is too big for the helpdesk to keep; it is shown from Wazzup's link.",
    refused_host: "This file's link is not on Wazzup's store, so the helpdesk did not download it.",
    expired: "The helpdesk kept this file for its retention period and has deleted it."
  };

  if (typeof host.registerMessageDecorator === "function") {
    host.registerMessageDecorator(function (message, chat) {
      var why = chat.type === "wazzup" && MEDIA_NOT_KEPT[message.wazzup_media_state];
      return why ? el("p", "wz-media-note", why) : null;
    });
  }

  host.registerMessageAction({
    id: "wazzup24-media-retry",
    label: "Retry download",
    appliesTo: function (message, chat) {
      return chat.type === "wazzup" && message.wazzup_media_state === "failed";
    },
    run: function (message, chat, ctx) {
      var path = "/api/chats/" + chat.id + "/wazzup24/messages/" + message.id + "/media/retry";
      return host.api(path, { method: "POST", body: {} }).then(function (r) {
        if (r.ok) host.notify("Downloading the file again.", "info");
        else if (r.status !== 401) host.notify("Retry failed: " + reasonOf(r), "error");
        if (ctx && ctx.refresh) ctx.refresh();
      });
    }
  });

  // ------------------------------------------------------------------ reply to (quote) a message

  host.registerMessageAction({
    id: "wazzup24-reply",
    label: "Reply",
    appliesTo: function (message, chat) {
      // Only a message Wazzup knows (it has a Wazzup id) can be quoted.
      return chat.type === "wazzup" && !!message.wazzup_message_id && !message.deleted_at;
    },
    run: function (message, chat) {
      var composer = composers[chat.id];
      if (composer) composer.reply(message);
      else host.notify("The reply box of this chat is not open.", "error");
    }
  });
  // ------------------------------------------------------------------ writing first: a new chat by number

  // The channels a chat can be started from, and what it takes there (a Telegram bot cannot write first).
  var WRITE_FIRST_TRANSPORTS = ["whatsapp", "wapi", "tgapi", "max"];

  /** What the agent typed in "New chat", as the server takes it: a Telegram username ("@name",
   * "t.me/name", or letters) on a Telegram channel, else a phone number. */
  function newChatAddress(typed, transport) {
    var text = typed.trim();
    if (transport === "tgapi" && /^(@|(https?:\/\/)?(t|telegram)\.me\/|[A-Za-z])/i.test(text)) {
      return { username: text };
    }
    return { phone: text };
  }

  /** "New chat": a number or a Telegram username (and a name) in a dialog; the chat is found or created
   * (POST /api/wazzup24/chats) and opened, ready for the first message. Nothing is sent here. */
  function newChatDialog(ctx) {
    var dialog = el("dialog", "wz-new-chat");
    dialog.setAttribute("aria-labelledby", "wz-new-chat-title");
    var form = el("form", "wz-new-chat-form");
    form.noValidate = true;
    var title = el("h2", "wz-new-chat-title", "New chat");
    title.id = "wz-new-chat-title";
    var phoneLabel = el("label", "", "Phone number");
    var phone = el("input", "wz-new-chat-phone");
    phone.type = "tel";
    phone.id = "wz-new-chat-phone";
    phone.autocomplete = "off";
    phone.maxLength = 40;
    phone.placeholder = "+7 916 123-45-67";
    phone.required = true;
    phoneLabel.htmlFor = phone.id;
    var nameLabel = el("label", "", "Name (optional)");
    var name = el("input", "wz-new-chat-name");
    name.id = "wz-new-chat-name";
    name.autocomplete = "off";
    name.maxLength = 300;
    nameLabel.htmlFor = name.id;
    // "From": shown when the account has several channels to write first from (the connection report lists
    // them); a Telegram channel takes a username too.
    var fromLabel = el("label", "", "From");
    var from = el("select", "wz-new-chat-from");
    from.id = "wz-new-chat-from";
    fromLabel.htmlFor = from.id;
    fromLabel.hidden = from.hidden = true;
    var error = el("p", "wz-new-chat-error");
    error.setAttribute("role", "alert");
    var buttons = el("div", "wz-new-chat-buttons");
    var cancel = button("button", "btn btn-ghost", "Cancel");
    var submit = button("submit", "btn btn-primary", "Open the chat");
    buttons.appendChild(cancel);
    buttons.appendChild(submit);
    [title, phoneLabel, phone, nameLabel, name, fromLabel, from, error, buttons].forEach(function (node) { form.appendChild(node); });
    dialog.appendChild(form);
    document.body.appendChild(dialog);

    function close() {
      dialog.close();
    }
    dialog.addEventListener("close", function () {
      dialog.remove();
      if (ctx.opener && ctx.opener.isConnected) ctx.opener.focus();
    });
    cancel.addEventListener("click", close);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (submit.disabled) return;
      if (!phone.value.trim()) {
        error.textContent = telegramChosen() ? "Write the customer's phone number or Telegram username."
          : "Write the customer's phone number.";
        phone.focus();
        return;
      }
      var body = newChatAddress(phone.value, telegramChosen() ? "tgapi" : "");
      if (name.value.trim()) body.name = name.value.trim();
      if (!from.hidden) body.channel_id = from.value;
      submit.disabled = true;
      error.textContent = "";
      ctx.api("/api/wazzup24/chats", { method: "POST", body: body }).then(function (r) {
        submit.disabled = false;
        if (r.ok) {
          close();
          ctx.openChat(r.data.id);
        } else if (r.status !== 401) {
          error.textContent = ctx.errorText(r, "The chat could not be opened.",
            { phone: "Phone number", username: "Username", name: "Name", channel_id: "From" });
          (r.data && r.data.fields && r.data.fields.name ? name : phone).focus();
        }
      });
    });
    dialog.showModal();
    phone.focus();
    var transports = {};   // channel id -> transport, of the channels in "From"
    function telegramChosen() {
      return !from.hidden && transports[from.value] === "tgapi";
    }
    function followChannel() {   // a Telegram channel takes a username as well as a number
      var telegram = telegramChosen();
      phoneLabel.textContent = telegram ? "Phone number or username" : "Phone number";
      phone.type = telegram ? "text" : "tel";
      phone.placeholder = telegram ? "+7 916 123-45-67 or @username" : "+7 916 123-45-67";
    }
    from.addEventListener("change", followChannel);
    ctx.api("/api/wazzup24/connection").then(function (r) {
      var channels = r.ok && r.data.channels ? r.data.channels.filter(function (c) {
        return WRITE_FIRST_TRANSPORTS.indexOf(c.transport) >= 0;
      }) : [];
      // None: the server says so. One WhatsApp channel: the server takes it. Any other one (a Telegram or
      // MAX account) is named: the server's default is WhatsApp's, and a Telegram one takes a username.
      var onlyWhatsApp = channels.length === 1 && (channels[0].transport === "whatsapp" ||
        channels[0].transport === "wapi");
      if (!channels.length || onlyWhatsApp || !dialog.open) return;
      var chosen = r.data.selected_channel && r.data.selected_channel.channel_id;
      channels.forEach(function (c) {
        var option = el("option", "", channelLabel(c) + (c.active ? "" : " (" + c.state + ")"));
        option.value = c.channel_id;
        option.selected = c.channel_id === chosen;
        transports[c.channel_id] = c.transport;
        from.appendChild(option);
      });
      fromLabel.hidden = from.hidden = false;
      followChannel();
    });
  }

  if (typeof host.registerListAction === "function") {
    host.registerListAction({ id: "wazzup24-new-chat", label: "New chat", run: newChatDialog });
  }
})();
