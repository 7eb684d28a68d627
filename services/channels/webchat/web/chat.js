/*
 * Switchboard browser chat client. Plain JavaScript, no framework, no build step.
 *
 * Protocol (see the server):
 *   POST /v1/chat/sessions              -> {session_id, token, expires_at}
 *   WS   /v1/chat/ws?token=<token>
 *     server -> {type:"ready"} | {type:"ack", id} | {type:"reply", reply_id, in_reply_to, text}
 *               | {type:"error", code, message, id?} | {type:"pong"}
 *     client -> {type:"message", id, text} | {type:"ping"}
 *
 * Reliability model: every user message gets a client id and sits in an outbox
 * (persisted in localStorage) until the server acks it; the outbox is resent with
 * the same ids after every reconnect and the server dedupes. Replies are delivered
 * at least once, so reply_ids already shown are remembered and skipped.
 *
 * Retry policy (docs/web-chat.md): an `error` frame with code `unavailable` is the
 * only one retried (same id, exponential backoff with jitter). Any other error code
 * is permanent: the message leaves the outbox and is shown as failed (Retry is then
 * the user's call). A message in flight when the socket dies abnormally three times
 * is treated the same, so a frame that kills the socket cannot be resent forever.
 */
(function () {
  'use strict';

  // ---------------------------------------------------------------- settings

  var STORAGE_PREFIX = 'switchboard.chat.';
  var KEYS = {
    session: STORAGE_PREFIX + 'session',
    history: STORAGE_PREFIX + 'history',
    outbox: STORAGE_PREFIX + 'outbox',
    replies: STORAGE_PREFIX + 'replies',
  };

  var SESSIONS_URL = '/v1/chat/sessions';
  var WS_PATH = '/v1/chat/ws';

  var MAX_TEXT_LENGTH = 4000;
  var MAX_HISTORY = 100; // bubbles kept across reloads
  var MAX_REMEMBERED_REPLIES = 200; // reply_ids kept for de-duplication
  var NEAR_LIMIT_CHARS = 3500; // start showing the character counter here

  var BACKOFF_BASE_MS = 500;
  var BACKOFF_MAX_MS = 10000;
  var PING_INTERVAL_MS = 25000;
  // No frame at all for this long (pongs included) means the socket is dead
  // even if the browser has not noticed yet (e.g. after a laptop sleep).
  var STALE_SOCKET_MS = 2 * PING_INTERVAL_MS + 10000;
  var OPEN_FAILURES_BEFORE_NEW_SESSION = 2;
  // Treat a session as expired slightly early so we never connect with a token
  // that dies during the handshake.
  var SESSION_EXPIRY_MARGIN_MS = 30000;
  // Stop claiming "agent is typing" for a message nobody answered in this long.
  var TYPING_TIMEOUT_MS = 120000;
  var REFUSED_TOKEN_CLOSE_CODES = [4401, 4403];
  // `unavailable` (Kafka or Redis briefly away): resend the same id after this backoff.
  var RETRYABLE_ERROR_CODE = 'unavailable';
  var UNAVAILABLE_RETRY_BASE_MS = 1000;
  var UNAVAILABLE_RETRY_MAX_MS = 30000;
  // A socket that closes abnormally this soon after a message was sent on it may have
  // been killed by that message; after MAX_SUSPECT_CLOSES such deaths it is dropped.
  var SUSPECT_CLOSE_WINDOW_MS = 10000;
  var MAX_SUSPECT_CLOSES = 3;
  var CLEAN_CLOSE_CODES = [1000, 1001, 4409]; // normal, server shutdown, replaced

  var STATUS_LABELS = {
    connecting: 'Connecting',
    online: 'Online',
    reconnecting: 'Reconnecting…',
    offline: 'Offline',
  };

  // ---------------------------------------------------------------- elements

  var els = {
    messages: document.getElementById('messages'),
    input: document.getElementById('composer-input'),
    send: document.getElementById('send-button'),
    form: document.getElementById('composer'),
    status: document.getElementById('status'),
    typing: document.getElementById('typing-indicator'),
    charCount: document.getElementById('char-count'),
    newConversation: document.getElementById('new-conversation'),
  };

  // ---------------------------------------------------------------- state

  var state = {
    status: 'connecting',
    everOnline: false,
    session: null, // {session_id, token, expires_at}
    socket: null,
    socketOpened: false,
    pendingConnect: null, // identity of the connect() in flight, if any
    openFailures: 0, // handshakes refused in a row while the server answered HTTP
    reconnectAttempt: 0,
    reconnectTimer: null,
    pingTimer: null,
    lastFrameAt: 0,
    history: [], // [{kind:'user', id, text, state, answered, ts} | {kind:'agent', replyId, inReplyTo, text, ts}]
    outbox: [], // [{id, text, suspectCloses?}] not yet acked by the server
    sentAt: new Map(), // client message id -> when it was last sent on the current socket
    retries: new Map(), // client message id -> {attempt, timer} after an `unavailable` error
    delayNoticeShown: false,
    shownReplies: [], // reply_ids already rendered, oldest first
    shownReplySet: new Set(),
    userBubbles: new Map(), // client message id -> element
  };

  // ---------------------------------------------------------------- storage
  // localStorage can throw (private mode, quota); the chat must keep working
  // in memory when it does.

  function loadJson(key, fallback) {
    try {
      var raw = window.localStorage.getItem(key);
      return raw ? JSON.parse(raw) : fallback;
    } catch (err) {
      return fallback;
    }
  }

  function saveJson(key, value) {
    try {
      window.localStorage.setItem(key, JSON.stringify(value));
    } catch (err) {
      /* keep going in memory */
    }
  }

  function clearChatStorage() {
    try {
      var doomed = [];
      for (var i = 0; i < window.localStorage.length; i++) {
        var key = window.localStorage.key(i);
        if (key && key.indexOf(STORAGE_PREFIX) === 0) doomed.push(key);
      }
      doomed.forEach(function (key) { window.localStorage.removeItem(key); });
    } catch (err) {
      /* nothing stored, nothing to clear */
    }
  }

  function saveHistory() {
    if (state.history.length > MAX_HISTORY) {
      state.history = state.history.slice(-MAX_HISTORY);
    }
    saveJson(KEYS.history, state.history);
  }

  function saveOutbox() {
    saveJson(KEYS.outbox, state.outbox);
  }

  function rememberReply(replyId) {
    state.shownReplySet.add(replyId);
    state.shownReplies.push(replyId);
    if (state.shownReplies.length > MAX_REMEMBERED_REPLIES) {
      state.shownReplies = state.shownReplies.slice(-MAX_REMEMBERED_REPLIES);
      state.shownReplySet = new Set(state.shownReplies);
    }
    saveJson(KEYS.replies, state.shownReplies);
  }

  /** Restore history, outbox and seen reply ids, tolerating corrupt storage. */
  function loadPersistedState() {
    var history = loadJson(KEYS.history, []);
    state.history = Array.isArray(history) ? history.filter(isValidHistoryEntry) : [];

    var outbox = loadJson(KEYS.outbox, []);
    state.outbox = Array.isArray(outbox)
      ? outbox.filter(function (m) { return m && typeof m.id === 'string' && typeof m.text === 'string'; })
      : [];

    var replies = loadJson(KEYS.replies, []);
    state.shownReplies = Array.isArray(replies) ? replies.filter(function (r) { return typeof r === 'string'; }) : [];
    state.shownReplySet = new Set(state.shownReplies);

    reconcileOutboxWithHistory();
  }

  function isValidHistoryEntry(entry) {
    if (!entry || typeof entry.text !== 'string') return false;
    if (entry.kind === 'user') return typeof entry.id === 'string';
    return entry.kind === 'agent';
  }

  /**
   * The outbox and the history are written separately, so after a crash they
   * can disagree: a bubble still "sending" must be in the outbox (or it would
   * never be resent), and an outbox entry for an acked bubble must go.
   */
  function reconcileOutboxWithHistory() {
    var queued = new Set(state.outbox.map(function (m) { return m.id; }));
    state.history.forEach(function (entry) {
      if (entry.kind !== 'user') return;
      if (entry.state === 'sending' && !queued.has(entry.id)) {
        state.outbox.push({ id: entry.id, text: entry.text });
      }
    });
    var settled = new Set(state.history
      .filter(function (e) { return e.kind === 'user' && e.state !== 'sending'; })
      .map(function (e) { return e.id; }));
    state.outbox = state.outbox.filter(function (m) { return !settled.has(m.id); });
    saveOutbox();
  }

  // ---------------------------------------------------------------- session

  function isSessionUsable(session) {
    if (!session || typeof session.token !== 'string' || !session.token) return false;
    var expiresAt = Date.parse(session.expires_at);
    // An unparseable expiry is left for the server to judge rather than
    // creating a fresh session on every page load.
    if (isNaN(expiresAt)) return true;
    return expiresAt - SESSION_EXPIRY_MARGIN_MS > Date.now();
  }

  function forgetSession() {
    state.session = null;
    try { window.localStorage.removeItem(KEYS.session); } catch (err) { /* ignore */ }
  }

  function createSession() {
    return fetch(SESSIONS_URL, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: '{}',
      credentials: 'same-origin',
      cache: 'no-store',
    }).then(function (res) {
      if (!res.ok) throw new Error('session request failed: HTTP ' + res.status);
      return res.json();
    }).then(function (body) {
      if (!body || typeof body.token !== 'string' || !body.token) {
        throw new Error('session response without a token');
      }
      var session = { session_id: body.session_id, token: body.token, expires_at: body.expires_at };
      saveJson(KEYS.session, session);
      return session;
    });
  }

  /** Stored session if still valid, otherwise a new one from the server. */
  function ensureSession() {
    if (isSessionUsable(state.session)) return Promise.resolve(state.session);
    var stored = loadJson(KEYS.session, null);
    if (isSessionUsable(stored)) return Promise.resolve(stored);
    return createSession();
  }

  /**
   * A socket that fails before opening looks the same (close code 1006) whether
   * the token was refused or the server is down; an HTTP answer tells them apart.
   * Any status below 500 counts (even 404/405): 5xx is what a proxy says when
   * the app behind it is down.
   */
  function isServerReachable() {
    return fetch(window.location.pathname || '/', { method: 'HEAD', cache: 'no-store', credentials: 'same-origin' })
      .then(function (res) { return res.status < 500; })
      .catch(function () { return false; });
  }

  // ---------------------------------------------------------------- connection

  function setStatus(status) {
    state.status = status;
    els.status.dataset.status = status;
    els.status.textContent = STATUS_LABELS[status] || status;
    updateTypingIndicator();
  }

  /** Status to show while not connected. */
  function disconnectedStatus() {
    if (navigator.onLine === false) return 'offline';
    return state.everOnline ? 'reconnecting' : 'connecting';
  }

  function webSocketUrl(token) {
    var scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    return scheme + '//' + window.location.host + WS_PATH + '?token=' + encodeURIComponent(token);
  }

  function connect() {
    clearReconnectTimer();
    if (state.socket || state.pendingConnect) return;
    var attempt = {};
    state.pendingConnect = attempt;

    dropSessionIfTokenSuspect();
    ensureSession()
      .then(function (session) {
        if (state.pendingConnect !== attempt) return; // superseded (e.g. "New conversation")
        state.pendingConnect = null;
        state.session = session;
        openSocket(session);
      })
      .catch(function () {
        if (state.pendingConnect !== attempt) return;
        state.pendingConnect = null;
        setStatus(disconnectedStatus());
        scheduleReconnect();
      });
  }

  /** After repeated refused handshakes the token is the likely culprit: replace it. */
  function dropSessionIfTokenSuspect() {
    if (state.openFailures < OPEN_FAILURES_BEFORE_NEW_SESSION) return;
    forgetSession();
    state.openFailures = 0;
  }

  /**
   * Count a socket that closed before opening against its token, but only if
   * the server answers HTTP right now: during an outage every handshake fails,
   * and the session (with the replies still owed to it) must survive that.
   */
  function noteFailedOpen(session) {
    isServerReachable().then(function (reachable) {
      if (reachable && state.session === session) state.openFailures++;
    });
  }

  function openSocket(session) {
    var socket;
    try {
      socket = new WebSocket(webSocketUrl(session.token));
    } catch (err) {
      setStatus(disconnectedStatus());
      scheduleReconnect();
      return;
    }
    state.socket = socket;
    state.socketOpened = false;

    // Handlers check identity so events from a replaced socket are ignored.
    socket.onopen = function () { if (state.socket === socket) handleSocketOpen(); };
    socket.onmessage = function (event) { if (state.socket === socket) handleFrame(event.data); };
    socket.onclose = function (event) { if (state.socket === socket) handleSocketClosed(event.code); };
    socket.onerror = function () { /* a close event always follows; handled there */ };
  }

  function handleSocketOpen() {
    state.socketOpened = true;
    state.everOnline = true;
    state.openFailures = 0;
    state.lastFrameAt = Date.now();
    state.delayNoticeShown = false;
    setStatus('online');
    startPing();
    flushOutbox();
  }

  function handleSocketClosed(code) {
    var wasOpen = state.socketOpened;
    detachSocket();
    if (wasOpen) countSuspectCloses(code);
    clearRetryTimers(); // the reconnect flushes the whole outbox anyway

    if (wasOpen && REFUSED_TOKEN_CLOSE_CODES.indexOf(code) !== -1) {
      // The server refused our token after accepting the socket: get a new session.
      forgetSession();
    } else if (!wasOpen) {
      noteFailedOpen(state.session);
    }
    setStatus(disconnectedStatus());
    scheduleReconnect();
  }

  /** Forget the current socket without triggering our close handling. */
  function detachSocket() {
    stopPing();
    var socket = state.socket;
    state.socket = null;
    state.socketOpened = false;
    if (!socket) return;
    socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
    if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) {
      try { socket.close(1000); } catch (err) { /* already closing */ }
    }
  }

  /** Give up on a socket we believe is dead and start reconnecting now-ish. */
  function dropSocket() {
    detachSocket();
    setStatus(disconnectedStatus());
    scheduleReconnect();
  }

  function scheduleReconnect() {
    clearReconnectTimer();
    var exponential = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * Math.pow(2, state.reconnectAttempt));
    // +-25% jitter so many clients do not reconnect in lockstep after an outage.
    var delay = Math.min(BACKOFF_MAX_MS, exponential * (0.75 + Math.random() * 0.5));
    state.reconnectAttempt++;
    state.reconnectTimer = window.setTimeout(connect, delay);
  }

  function clearReconnectTimer() {
    if (state.reconnectTimer !== null) {
      window.clearTimeout(state.reconnectTimer);
      state.reconnectTimer = null;
    }
  }

  /** Network came back or the tab became visible: don't wait for the backoff timer. */
  function reconnectNow() {
    var socket = state.socket;
    if (socket && socket.readyState === WebSocket.CONNECTING) return;
    if (socket && state.socketOpened) {
      if (Date.now() - state.lastFrameAt > STALE_SOCKET_MS) {
        dropSocket();
      } else {
        setStatus('online');
        sendFrame({ type: 'ping' }); // cheap liveness check after sleep / network change
        return;
      }
    }
    state.reconnectAttempt = 0;
    connect();
  }

  function startPing() {
    stopPing();
    state.pingTimer = window.setInterval(function () {
      if (Date.now() - state.lastFrameAt > STALE_SOCKET_MS) {
        dropSocket();
        return;
      }
      sendFrame({ type: 'ping' });
    }, PING_INTERVAL_MS);
  }

  function stopPing() {
    if (state.pingTimer !== null) {
      window.clearInterval(state.pingTimer);
      state.pingTimer = null;
    }
  }

  function isSocketOpen() {
    return !!state.socket && state.socketOpened && state.socket.readyState === WebSocket.OPEN;
  }

  function sendFrame(frame) {
    if (!isSocketOpen()) return false;
    try {
      state.socket.send(JSON.stringify(frame));
      return true;
    } catch (err) {
      return false;
    }
  }

  /** Resend every un-acked message with its original id; the server dedupes. */
  function flushOutbox() {
    state.outbox.forEach(sendMessageFrame);
  }

  function sendMessageFrame(message) {
    if (sendFrame({ type: 'message', id: message.id, text: message.text })) {
      state.sentAt.set(message.id, Date.now());
    }
  }

  function findOutboxMessage(id) {
    for (var i = 0; i < state.outbox.length; i++) {
      if (state.outbox[i].id === id) return state.outbox[i];
    }
    return null;
  }

  /**
   * The server answers every frame it refuses with an error frame and keeps the
   * socket open, so a socket dying right after a message was sent is suspicious:
   * after MAX_SUSPECT_CLOSES of those, stop resending that message on reconnect.
   */
  function countSuspectCloses(code) {
    var now = Date.now();
    var doomed = [];
    if (CLEAN_CLOSE_CODES.indexOf(code) === -1) {
      state.outbox.forEach(function (message) {
        var sentAt = state.sentAt.get(message.id);
        if (sentAt === undefined || now - sentAt > SUSPECT_CLOSE_WINDOW_MS) return;
        message.suspectCloses = (message.suspectCloses || 0) + 1;
        if (message.suspectCloses >= MAX_SUSPECT_CLOSES) doomed.push(message.id);
      });
      saveOutbox();
    }
    state.sentAt.clear();
    doomed.forEach(function (id) {
      appendSystemLine('A message could not be delivered: the connection kept failing.');
      markFailed(id);
    });
  }

  /** `unavailable`: resend the same id later, backing off while the service recovers. */
  function scheduleResend(id) {
    if (!findOutboxMessage(id)) return;
    var retry = state.retries.get(id) || { attempt: 0, timer: null };
    if (retry.timer !== null) window.clearTimeout(retry.timer);
    var exponential = Math.min(UNAVAILABLE_RETRY_MAX_MS, UNAVAILABLE_RETRY_BASE_MS * Math.pow(2, retry.attempt));
    var delay = exponential * (0.75 + Math.random() * 0.5);
    retry.attempt++;
    retry.timer = window.setTimeout(function () {
      retry.timer = null;
      var message = findOutboxMessage(id);
      if (message) sendMessageFrame(message);
    }, delay);
    state.retries.set(id, retry);
  }

  function forgetRetry(id) {
    var retry = state.retries.get(id);
    if (retry && retry.timer !== null) window.clearTimeout(retry.timer);
    state.retries.delete(id);
    state.sentAt.delete(id);
  }

  /** Stop pending resends but keep their attempt counts, so backoff carries over. */
  function clearRetryTimers() {
    state.retries.forEach(function (retry) {
      if (retry.timer !== null) window.clearTimeout(retry.timer);
      retry.timer = null;
    });
  }

  // ---------------------------------------------------------------- server frames

  function handleFrame(raw) {
    state.lastFrameAt = Date.now();
    // A frame proves the connection really works (not just opened then refused),
    // so only now is it safe to forget the backoff.
    state.reconnectAttempt = 0;

    var frame;
    try {
      frame = JSON.parse(raw);
    } catch (err) {
      return; // not ours to interpret
    }
    if (!frame || typeof frame !== 'object') return;

    switch (frame.type) {
      case 'ready': return handleReady(frame);
      case 'ack': return markAcked(frame.id);
      case 'reply': return handleReply(frame);
      case 'error': return handleError(frame);
      case 'pong': return undefined; // lastFrameAt already updated
      default: return undefined; // unknown frame types are ignored for forward compatibility
    }
  }

  function handleReady(frame) {
    if (state.session && typeof frame.session_id === 'string' && frame.session_id !== state.session.session_id) {
      state.session.session_id = frame.session_id;
      saveJson(KEYS.session, state.session);
    }
  }

  function findUserEntry(id) {
    for (var i = state.history.length - 1; i >= 0; i--) {
      var entry = state.history[i];
      if (entry.kind === 'user' && entry.id === id) return entry;
    }
    return null;
  }

  function removeFromOutbox(id) {
    forgetRetry(id);
    var before = state.outbox.length;
    state.outbox = state.outbox.filter(function (m) { return m.id !== id; });
    if (state.outbox.length !== before) saveOutbox();
  }

  function markAcked(id) {
    if (typeof id !== 'string') return;
    removeFromOutbox(id);
    var entry = findUserEntry(id);
    if (entry && entry.state !== 'sent') {
      entry.state = 'sent';
      saveHistory();
      updateUserBubble(entry);
    }
    updateTypingIndicator();
  }

  function handleReply(frame) {
    var replyId = typeof frame.reply_id === 'string' ? frame.reply_id : null;
    if (replyId && state.shownReplySet.has(replyId)) return; // at-least-once duplicate
    var inReplyTo = typeof frame.in_reply_to === 'string' ? frame.in_reply_to : null;

    if (inReplyTo) {
      // A reply proves the server accepted the message, even if its ack was lost.
      markAcked(inReplyTo);
      markAnsweredUpTo(inReplyTo);
    }

    var entry = {
      kind: 'agent',
      replyId: replyId,
      inReplyTo: inReplyTo,
      text: typeof frame.text === 'string' ? frame.text : String(frame.text == null ? '' : frame.text),
      ts: Date.now(),
    };
    if (replyId) rememberReply(replyId);
    state.history.push(entry);
    saveHistory();
    appendEntry(entry, false);
    updateTypingIndicator();
  }

  /**
   * The agent may answer several quick messages with one reply to the last of
   * them, so a reply counts as answering its message and every earlier one.
   */
  function markAnsweredUpTo(messageId) {
    var target = findUserEntry(messageId);
    if (!target) return;
    for (var i = 0; i < state.history.length; i++) {
      var entry = state.history[i];
      if (entry.kind === 'user') entry.answered = true;
      if (entry === target) break;
    }
    saveHistory();
  }

  function handleError(frame) {
    var id = typeof frame.id === 'string' ? frame.id : null;
    if (frame.code === RETRYABLE_ERROR_CODE) {
      // Transient: the message stays in the outbox ("sending") and is resent later.
      if (id) {
        scheduleResend(id);
      } else if (!state.delayNoticeShown) {
        state.delayNoticeShown = true; // once per socket: the server retries by itself
        appendSystemLine('The service is catching up; replies may be delayed.');
      }
      return;
    }
    // Every other code is permanent: resending the same frame would be refused again.
    var text = typeof frame.message === 'string' && frame.message ? frame.message : 'Something went wrong.';
    if (typeof frame.code === 'string' && frame.code) text += ' (' + frame.code + ')';
    appendSystemLine(text);
    if (id) markFailed(id);
  }

  function markFailed(id) {
    // Failed messages leave the outbox: resending is now the user's call (Retry).
    removeFromOutbox(id);
    var entry = findUserEntry(id);
    if (entry) {
      entry.state = 'failed';
      saveHistory();
      updateUserBubble(entry);
    }
    updateTypingIndicator();
  }

  // ---------------------------------------------------------------- sending

  function newMessageId() {
    if (window.crypto && typeof window.crypto.randomUUID === 'function') {
      return window.crypto.randomUUID();
    }
    // randomUUID needs a secure context; getRandomValues works on plain http too.
    var bytes = new Uint8Array(16);
    if (window.crypto && typeof window.crypto.getRandomValues === 'function') {
      window.crypto.getRandomValues(bytes);
    } else {
      for (var i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    var hex = Array.prototype.map.call(bytes, function (b) { return (b + 0x100).toString(16).slice(1); }).join('');
    return hex.slice(0, 8) + '-' + hex.slice(8, 12) + '-' + hex.slice(12, 16) + '-' + hex.slice(16, 20) + '-' + hex.slice(20);
  }

  function sendUserMessage(text) {
    var entry = { kind: 'user', id: newMessageId(), text: text, state: 'sending', answered: false, ts: Date.now() };
    state.history.push(entry);
    saveHistory();
    // Queue before sending: if the tab dies right now, the reload resends it.
    var message = { id: entry.id, text: text };
    state.outbox.push(message);
    saveOutbox();
    appendEntry(entry, true);
    sendMessageFrame(message);
    updateTypingIndicator();
  }

  /** Resend a failed message with the same id and text (the server dedupes). */
  function retryMessage(id) {
    var entry = findUserEntry(id);
    if (!entry || entry.state !== 'failed') return;
    entry.state = 'sending';
    entry.ts = Date.now();
    saveHistory();
    var message = { id: entry.id, text: entry.text }; // a fresh start: no suspect closes
    state.outbox.push(message);
    saveOutbox();
    updateUserBubble(entry);
    sendMessageFrame(message);
    updateTypingIndicator();
  }

  // ---------------------------------------------------------------- markdown

  function escapeHtml(text) {
    return text.replace(/[&<>"']/g, function (ch) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[ch];
    });
  }

  /**
   * Tiny, safe markdown subset for agent replies. The whole text is HTML-escaped
   * first; afterwards only our own tags are introduced, so nothing the agent (or
   * anyone injecting into it) writes can become markup.
   */
  function renderMarkdown(text) {
    // \u0000 is our placeholder marker in renderInline; it must not come from input.
    var escaped = escapeHtml(String(text).replace(/\u0000/g, ''));
    var lines = escaped.replace(/\r\n?/g, '\n').split('\n');
    var blocks = [];
    var paragraph = [];
    var listItems = [];

    function flushParagraph() {
      if (paragraph.length) blocks.push('<p>' + paragraph.map(renderInline).join('<br>') + '</p>');
      paragraph = [];
    }
    function flushList() {
      if (listItems.length) {
        blocks.push('<ul>' + listItems.map(function (item) { return '<li>' + renderInline(item) + '</li>'; }).join('') + '</ul>');
      }
      listItems = [];
    }

    lines.forEach(function (line) {
      var bullet = /^\s*[-*]\s+(.*)$/.exec(line);
      if (bullet) {
        flushParagraph();
        listItems.push(bullet[1]);
      } else if (line.trim() === '') {
        flushParagraph();
        flushList();
      } else {
        flushList();
        paragraph.push(line);
      }
    });
    flushParagraph();
    flushList();
    return blocks.join('');
  }

  /** Inline markup on one already-escaped line: `code`, [text](http..), **bold**, *italic*. */
  function renderInline(escapedLine) {
    var slots = [];
    // Code spans and links are set aside first so their contents (URLs with
    // asterisks, code with stars) are not touched by the emphasis rules.
    function stash(html) {
      slots.push(html);
      return '\u0000' + (slots.length - 1) + '\u0000';
    }

    var out = escapedLine.replace(/`([^`]+)`/g, function (_, code) {
      return stash('<code>' + code + '</code>');
    });
    out = out.replace(/\[([^\]]+)\]\((https?:\/\/[^\s)]+)\)/g, function (_, label, url) {
      return stash('<a href="' + url + '" target="_blank" rel="noopener">' + renderEmphasis(label) + '</a>');
    });
    out = renderEmphasis(out);

    // Links may contain stashed code spans, so restore until nothing is left.
    for (var depth = 0; depth < 3 && /\u0000\d+\u0000/.test(out); depth++) {
      out = out.replace(/\u0000(\d+)\u0000/g, function (_, index) { return slots[Number(index)]; });
    }
    return out;
  }

  function renderEmphasis(text) {
    return text
      // Bold may contain a complete *italic* span ("**see *this***").
      .replace(/\*\*(?=\S)((?:[^*]|\*[^*]+\*)+?)\*\*/g, '<strong>$1</strong>')
      .replace(/(^|[^*\w])\*(?=\S)([^*]*?\S)\*(?![*\w])/g, '$1<em>$2</em>');
  }

  // ---------------------------------------------------------------- rendering

  function formatTime(ts) {
    try {
      return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    } catch (err) {
      return '';
    }
  }

  function isScrolledNearBottom() {
    var m = els.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  }

  function scrollToBottom() {
    els.messages.scrollTop = els.messages.scrollHeight;
  }

  function createMeta(ts) {
    var meta = document.createElement('div');
    meta.className = 'msg-meta';
    var time = document.createElement('time');
    time.dateTime = new Date(ts).toISOString();
    time.textContent = formatTime(ts);
    meta.appendChild(time);
    return meta;
  }

  function createUserBubble(entry) {
    var bubble = document.createElement('div');
    bubble.className = 'msg user';
    bubble.dataset.messageId = entry.id;
    var body = document.createElement('div');
    body.className = 'msg-body';
    body.textContent = entry.text; // user text is never interpreted as markup
    bubble.appendChild(body);
    bubble.appendChild(createMeta(entry.ts || Date.now()));
    state.userBubbles.set(entry.id, bubble);
    updateUserBubble(entry);
    return bubble;
  }

  /** Refresh a user bubble's delivery state (sending / sent tick / failed + Retry). */
  function updateUserBubble(entry) {
    var bubble = state.userBubbles.get(entry.id);
    if (!bubble) return;
    var status = entry.state === 'sent' || entry.state === 'failed' ? entry.state : 'sending';
    bubble.dataset.state = status;

    var meta = bubble.querySelector('.msg-meta');
    var old = meta.querySelectorAll('.msg-state, .retry-button');
    Array.prototype.forEach.call(old, function (node) { node.remove(); });

    var indicator = document.createElement('span');
    indicator.className = 'msg-state';
    if (status === 'sent') {
      indicator.textContent = '✓';
      indicator.title = 'Delivered';
    } else if (status === 'sending') {
      indicator.classList.add('is-sending'); // drawn by CSS: a tiny spinner
      indicator.title = 'Sending…';
      indicator.setAttribute('aria-label', 'Sending');
    } else {
      indicator.textContent = 'Not delivered ·';
    }
    meta.appendChild(indicator);

    if (status === 'failed') {
      var retry = document.createElement('button');
      retry.type = 'button';
      retry.className = 'retry-button';
      retry.textContent = 'Retry';
      retry.addEventListener('click', function () { retryMessage(entry.id); });
      meta.appendChild(retry);
    }
  }

  function createAgentBubble(entry) {
    var bubble = document.createElement('div');
    bubble.className = 'msg agent';
    if (entry.replyId) bubble.dataset.replyId = entry.replyId;
    var body = document.createElement('div');
    body.className = 'msg-body';
    body.innerHTML = renderMarkdown(entry.text); // escaped inside renderMarkdown
    bubble.appendChild(body);
    bubble.appendChild(createMeta(entry.ts || Date.now()));
    return bubble;
  }

  function appendEntry(entry, forceScroll) {
    var stick = forceScroll || isScrolledNearBottom();
    var node = entry.kind === 'user' ? createUserBubble(entry) : createAgentBubble(entry);
    els.messages.appendChild(node);
    if (stick) scrollToBottom();
  }

  /** Small red line for errors; not persisted, it only matters in the moment. */
  function appendSystemLine(text) {
    var stick = isScrolledNearBottom();
    var line = document.createElement('div');
    line.className = 'system-line';
    line.setAttribute('role', 'status');
    line.textContent = text;
    els.messages.appendChild(line);
    if (stick) scrollToBottom();
  }

  function renderHistory() {
    els.messages.textContent = '';
    state.userBubbles.clear();
    state.history.forEach(function (entry) { appendEntry(entry, false); });
    scrollToBottom();
  }

  /** "Agent is typing…" while online and some delivered-or-sending message awaits an answer. */
  function updateTypingIndicator() {
    var now = Date.now();
    var waiting = state.history.some(function (entry) {
      return entry.kind === 'user' && !entry.answered && entry.state !== 'failed' &&
        now - (entry.ts || 0) < TYPING_TIMEOUT_MS;
    });
    var active = waiting && state.status === 'online';
    els.typing.classList.toggle('is-active', active);
    els.typing.setAttribute('aria-hidden', active ? 'false' : 'true');
  }

  // ---------------------------------------------------------------- composer

  function autosizeInput() {
    // A taller composer shrinks the message list; keep the latest message in view.
    var stick = isScrolledNearBottom();
    els.input.style.height = 'auto';
    els.input.style.height = Math.min(els.input.scrollHeight, 160) + 'px';
    if (stick) scrollToBottom();
  }

  function updateComposerState() {
    var length = els.input.value.length;
    els.send.disabled = els.input.value.trim() === '' || length > MAX_TEXT_LENGTH;
    var counter = els.charCount;
    counter.textContent = length >= NEAR_LIMIT_CHARS ? length + ' / ' + MAX_TEXT_LENGTH : '';
    counter.classList.toggle('is-near-limit', length >= NEAR_LIMIT_CHARS && length <= MAX_TEXT_LENGTH);
    counter.classList.toggle('is-over-limit', length > MAX_TEXT_LENGTH);
  }

  /** Lone UTF-16 surrogates (from a broken paste) become U+FFFD; the server refuses them. */
  function wellFormed(text) {
    if (typeof text.toWellFormed === 'function') return text.toWellFormed();
    var out = '';
    for (var i = 0; i < text.length; i++) {
      var code = text.charCodeAt(i);
      if (code >= 0xD800 && code <= 0xDBFF) {
        var next = text.charCodeAt(i + 1);
        if (next >= 0xDC00 && next <= 0xDFFF) {
          out += text[i] + text[i + 1];
          i++;
          continue;
        }
        out += '\uFFFD';
      } else if (code >= 0xDC00 && code <= 0xDFFF) {
        out += '\uFFFD';
      } else {
        out += text[i];
      }
    }
    return out;
  }

  function submitComposer() {
    var text = wellFormed(els.input.value).trim();
    if (!text) return;
    if (text.length > MAX_TEXT_LENGTH) {
      appendSystemLine('Messages are limited to ' + MAX_TEXT_LENGTH + ' characters.');
      return;
    }
    sendUserMessage(text);
    els.input.value = '';
    autosizeInput();
    updateComposerState();
    els.input.focus();
  }

  function handleComposerKeydown(event) {
    // isComposing: Enter that confirms an IME candidate must not send.
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      submitComposer();
    }
  }

  // ---------------------------------------------------------------- new conversation

  function startNewConversation() {
    state.pendingConnect = null; // cancels a connect() in flight
    clearReconnectTimer();
    detachSocket();
    clearChatStorage();
    state.session = null;
    state.history = [];
    state.outbox = [];
    clearRetryTimers();
    state.retries.clear();
    state.sentAt.clear();
    state.shownReplies = [];
    state.shownReplySet = new Set();
    state.openFailures = 0;
    state.reconnectAttempt = 0;
    state.everOnline = false;
    renderHistory();
    setStatus('connecting');
    connect();
    els.input.focus();
  }

  // ---------------------------------------------------------------- wiring

  function bindEvents() {
    els.form.addEventListener('submit', function (event) {
      event.preventDefault();
      submitComposer();
    });
    els.input.addEventListener('keydown', handleComposerKeydown);
    els.input.addEventListener('input', function () {
      autosizeInput();
      updateComposerState();
    });
    els.newConversation.addEventListener('click', function (event) {
      event.preventDefault();
      startNewConversation();
    });

    window.addEventListener('online', reconnectNow);
    window.addEventListener('offline', function () { setStatus('offline'); });
    document.addEventListener('visibilitychange', function () {
      if (document.visibilityState === 'visible') reconnectNow();
    });
    // Coming back from the back/forward cache: timers and sockets may be stale.
    window.addEventListener('pageshow', function (event) {
      if (event.persisted) reconnectNow();
    });
    // Mobile keyboards resize the viewport; don't let it hide the latest message.
    var wasNearBottom = true;
    els.messages.addEventListener('scroll', function () { wasNearBottom = isScrolledNearBottom(); }, { passive: true });
    window.addEventListener('resize', function () { if (wasNearBottom) scrollToBottom(); });
    // Re-check the typing timeout now and then; it depends on the clock alone.
    window.setInterval(updateTypingIndicator, 5000);
  }

  /** Read-only snapshot for browser tests. */
  function snapshot() {
    return {
      status: state.status,
      sessionId: state.session ? state.session.session_id || null : null,
      pending: state.outbox.length,
      failed: els.messages.querySelectorAll('.msg.user[data-state="failed"]').length,
      shown: els.messages.querySelectorAll('.msg.agent').length,
    };
  }

  function init() {
    els.input.maxLength = MAX_TEXT_LENGTH;
    loadPersistedState();
    var storedSession = loadJson(KEYS.session, null);
    if (isSessionUsable(storedSession)) state.session = storedSession;
    renderHistory();
    bindEvents();
    updateComposerState();
    setStatus(navigator.onLine === false ? 'offline' : 'connecting');
    connect();
    window.switchboardChat = Object.freeze({ state: snapshot });
  }

  init();
})();
