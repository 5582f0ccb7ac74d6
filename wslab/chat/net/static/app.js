// wslab chat: browser client for the chat server's /ws endpoint.
//
// Plain script, no build step, nothing fetched from elsewhere. The page's CSP forbids
// inline scripts and styles, so every change to the page goes through the DOM API, and
// text from the network is only ever set with textContent (never innerHTML).
//
// State a test can read lives in the DOM, not in globals:
//   #status          data-state="connecting|connected|reconnecting|closed",
//                    data-session (id from the last welcome), data-attempt (retries so far),
//                    data-node (the WebSocket URL of the last connection)
//
// Several nodes: a welcome may list the chat's nodes ("nodes", WebSocket URLs). After a
// close the page retries on the next node of that list (this page's own server first),
// with the same backoff and the same resume point: the nodes share one log.
//   #messages > li   data-kind="public|private|system|error|local"; chat messages also
//                    carry data-offset, data-epoch, data-from, data-to,
//                    data-replayed="true|false" and data-origin="live|history|replay":
//                    a first login's history is badged "histórico", what a tab missed
//                    while away and got back on resume "reenviada"; data-id, the line's
//                    id, when its sender gave one
//   #outbox          data-count (lines waiting for their answer); one li[data-id] each
//
// The outbox: every line gets an id (wslab.chat.rules.wire, "The line's id") and waits in
// the outbox, shown under the messages as "enviando…", until a frame carrying its id
// comes back (its echo or replay, the error refusing it, /who's reply). After each
// welcome the page sends the waiting lines again, oldest first, with the same ids: the
// server stores a line sent again at most once, so a line is neither lost nor doubled
// when the connection drops (or was down when it was typed). A refused line goes back
// into the empty text box; Enter on it, unchanged, sends it again with its id.
"use strict";

(() => {
  // Copies of the server's protocol constants (wslab.chat.commands, wire, names, errors);
  // tests/chat/net/test_static.py holds each equal to its Python original.
  const MAX_TEXT_LENGTH = 2000; // characters (code points), as the server counts them
  const MAX_FRAME_BYTES = 16 * 1024; // the server's frame limit
  // A first look only: the server enforces PRECIS (RFC 8265) and refuses look-alikes.
  const NAME_PATTERN = /^[\p{L}\p{Nd}_.-][\p{L}\p{M}\p{Nd}_.-]{0,31}$/u;
  const HISTORY = 50; // messages a fresh tab asks for (the server allows up to 200)
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_CAP_MS = 10000;
  const WELCOME_TIMEOUT_MS = 10000; // an opened socket that never says welcome is retried
  const STABLE_MS = 5000; // a connection up this long resets the backoff
  const STORAGE_PREFIX = "wslab.chat.resume.";
  const OUTBOX_LIMIT = 100; // lines waiting for their answer; the page refuses more
  // A line first sent longer ago is not sent again: the server knows a line's id for
  // RESEND_SECONDS (300 s) at least; 60 s of margin for clocks and slow networks.
  const RESEND_MS = 240 * 1000;

  // The same names and numbers as wslab.chat.errors.CloseCode (a test checks).
  const CloseCode = Object.freeze({
    NORMAL_CLOSURE: 1000,
    GOING_AWAY: 1001,
    MESSAGE_TOO_BIG: 1009,
    SERVICE_RESTART: 1012,
    TRY_AGAIN_LATER: 1013,
    BAD_HELLO: 4000,
    BAD_SECRET: 4001,
    NAME_LIMIT: 4003,
    THROTTLED: 4029,
  });

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $("status"),
    login: $("login"),
    loginForm: $("login-form"),
    loginName: $("login-name"),
    loginSecret: $("login-secret"),
    loginError: $("login-error"),
    chat: $("chat"),
    me: $("me"),
    logout: $("logout"),
    messages: $("messages"),
    sendForm: $("send-form"),
    line: $("line"),
    outbox: $("outbox"),
  };

  // Who we are: the secret lives only in this closure, never in storage.
  let user = null;
  let secret = null;
  // Resume point of this tab: {epoch, lastOffset}, mirrored to sessionStorage (per tab).
  let epoch = null;
  let resumed = false; // whether the last hello carried a resume point
  let welcomedBefore = false; // a welcome came since this login: the next one is a return
  let lastOffset = 0;
  // Connection.
  let socket = null; // the current WebSocket; events from older ones are ignored
  let welcomed = false;
  let attempt = 0; // consecutive attempts without a connection that stayed up
  let retryTimer = null;
  let countdownTimer = null;
  let welcomeTimer = null;
  let stableTimer = null;
  // The chat's nodes: this page's server first, then those the welcome names.
  let nodes = [ownSocketUrl()];
  let nodeIndex = 0;
  // Lines not answered yet, oldest first: id -> {text, sentAt, item}; sentAt is
  // Date.now() of the first send (null while never sent), item its #outbox li. In memory
  // only, at most OUTBOX_LIMIT lines: a page reload forgets them (like the secret).
  const outbox = new Map();
  // The refused line put back into the text box ({id, text, sentAt}): Enter on it,
  // unchanged, sends it again with its id; any edit forgets it (a new line, a new id).
  let retry = null;

  // -- resume point ------------------------------------------------------------------

  function loadResume(name) {
    try {
      const value = JSON.parse(sessionStorage.getItem(STORAGE_PREFIX + name));
      if (value && typeof value.epoch === "string" && Number.isInteger(value.offset) &&
          value.offset >= 0) {
        return value;
      }
    } catch (_) {
      // unreadable or unavailable storage: start from now
    }
    return null;
  }

  function saveResume() {
    if (user === null || epoch === null) return;
    try {
      sessionStorage.setItem(STORAGE_PREFIX + user, JSON.stringify({ epoch, offset: lastOffset }));
    } catch (_) {
      // storage full or disabled: the resume point still lives in memory
    }
  }

  function forgetResume() {
    epoch = null;
    lastOffset = 0;
    try {
      if (user !== null) sessionStorage.removeItem(STORAGE_PREFIX + user);
    } catch (_) {
      // nothing to forget
    }
  }

  // -- status ------------------------------------------------------------------------

  const STATUS_TEXT = {
    connecting: "conectando…",
    connected: "conectado",
    reconnecting: "reconectando…",
    closed: "desconectado",
  };

  function setStatus(state, session = "", text = STATUS_TEXT[state]) {
    ui.status.dataset.state = state;
    ui.status.dataset.session = session;
    ui.status.dataset.attempt = String(attempt);
    // Only on change: the element is a live region, and the countdown ticks often.
    if (ui.status.textContent !== text) ui.status.textContent = text;
  }

  // -- message list ------------------------------------------------------------------

  function nearBottom() {
    const list = ui.messages;
    return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  }

  function append(item) {
    const stick = nearBottom();
    ui.messages.append(item);
    if (stick) ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  function span(className, text) {
    const element = document.createElement("span");
    element.className = className;
    element.textContent = text;
    return element;
  }

  // kind: "system" and "error" come from the server; "local" from this page.
  function addNotice(kind, text) {
    const item = document.createElement("li");
    item.className = `notice notice-${kind}`;
    item.dataset.kind = kind;
    const label = { system: "aviso", error: "erro", local: "nesta aba" }[kind] || kind;
    item.append(span("badge", label), span("text", String(text)));
    append(item);
  }

  // A replayed message is history on a first login (the hello asked for the recent
  // messages) and a real replay on a return (the hello resumed from an offset).
  const ORIGIN = {
    history: {
      badge: "histórico",
      title: "Mensagem de antes da sua entrada: o servidor manda as mais recentes a quem chega.",
    },
    replay: {
      badge: "reenviada",
      title: "Chegou ao reconectar: foi enviada enquanto a aba estava sem conexão.",
    },
  };

  function addMessage(message) {
    const item = document.createElement("li");
    const kind = message.kind === "private" ? "private" : "public";
    const replayed = message.replayed === true;
    const origin = !replayed ? "live" : resumed ? "replay" : "history";
    item.className = `msg msg-${kind}`;
    if (replayed) item.classList.add("msg-replayed", `msg-${origin}`);
    if (message.from === user) item.classList.add("msg-mine");
    item.dataset.offset = String(message.offset);
    item.dataset.epoch = epoch; // offsets start over when the server restarts
    item.dataset.kind = kind;
    item.dataset.from = String(message.from);
    item.dataset.to = message.to == null ? "" : String(message.to);
    item.dataset.replayed = String(replayed);
    item.dataset.origin = origin;
    if (typeof message.id === "string") item.dataset.id = message.id;

    const meta = document.createElement("span");
    meta.className = "meta";
    meta.append(span("from", String(message.from)));
    if (kind === "private") {
      meta.append(span("arrow", " → "), span("to", String(message.to)));
      meta.append(span("badge badge-private", "privada"));
    }
    if (replayed) {
      const badge = span(`badge badge-replayed badge-${origin}`, ORIGIN[origin].badge);
      badge.title = ORIGIN[origin].title;
      meta.append(badge);
    }
    item.append(meta, span("text", String(message.text)));
    append(item);
  }

  // -- frames from the server --------------------------------------------------------

  function onWelcome(frame) {
    welcomed = true;
    clearTimeout(welcomeTimer);
    // Reset the backoff only once the connection has lasted: a server that welcomes
    // and then drops every connection must not be retried in a tight loop.
    clearTimeout(stableTimer);
    stableTimer = setTimeout(() => { attempt = 0; }, STABLE_MS);
    if (typeof frame.epoch === "string" && frame.epoch !== epoch) {
      // Another epoch (first login, or the server lost its history): offsets start over.
      lastOffset = 0;
      epoch = frame.epoch;
    } else if (frame.recovered === false && resumed) {
      // Same epoch but not recovered: the server's history may be an older copy whose
      // offsets we already passed. Take what it sends; shownBefore() still dedupes.
      lastOffset = 0;
    }
    if (Array.isArray(frame.nodes)) learnNodes(frame.nodes);
    if (typeof frame.user === "string") {
      user = frame.user;
      ui.me.textContent = frame.user;
    }
    saveResume();
    setStatus("connected", String(frame.session ?? ""));
    if (welcomedBefore) {
      // The last line may still say the connection fell or the server was leaving.
      addNotice("local", frame.recovered === true
        ? "Reconectado: o que chegou enquanto a aba estava fora vem a seguir, marcado «reenviada»."
        : "Reconectado.");
    }
    welcomedBefore = true;
    resendOutbox();
  }

  function onChatMessage(frame) {
    const offset = frame.offset;
    if (!Number.isInteger(offset)) return;
    // Defensive dedupe: a message is shown once, even if a resume sends it again.
    if (offset <= lastOffset || shownBefore(frame)) return;
    lastOffset = offset;
    saveResume();
    addMessage(frame);
  }

  function shownBefore(frame) {
    for (const item of ui.messages.querySelectorAll(`li[data-offset="${frame.offset}"]`)) {
      if (item.dataset.epoch === epoch && item.dataset.from === frame.from &&
          item.querySelector(".text")?.textContent === frame.text) return true;
    }
    return false;
  }

  // -- outbox ------------------------------------------------------------------------

  // 16 random bytes in hex. Not crypto.randomUUID: it exists only in secure contexts
  // (https or localhost), and the page may be served over plain http.
  function newId() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  }

  function online() {
    return socket !== null && welcomed && socket.readyState === WebSocket.OPEN;
  }

  function showOutbox() {
    ui.outbox.dataset.count = String(outbox.size);
    ui.outbox.hidden = outbox.size === 0;
  }

  function enqueue(id, text, sentAt) {
    const item = document.createElement("li");
    item.dataset.id = id;
    const badge = span("badge", "enviando…");
    badge.title = "Ainda sem resposta do servidor: a aba a envia de novo ao reconectar.";
    item.append(badge, span("text", text));
    ui.outbox.append(item);
    outbox.set(id, { text, sentAt, item });
    showOutbox();
    if (online()) transmit(id);
  }

  function transmit(id) {
    const entry = outbox.get(id);
    socket.send(JSON.stringify({ type: "say", text: entry.text, id }));
    if (entry.sentAt === null) entry.sentAt = Date.now();
  }

  function settle(id) {
    const entry = outbox.get(id);
    if (entry === undefined) return null;
    outbox.delete(id);
    entry.item.remove();
    showOutbox();
    return entry;
  }

  function forgetOutbox() {
    for (const id of [...outbox.keys()]) settle(id);
    retry = null;
  }

  // After a welcome: every waiting line, oldest first, with its id. A line first sent
  // more than RESEND_MS ago could be stored twice: the page hands it back instead.
  function resendOutbox() {
    const now = Date.now();
    for (const [id, entry] of [...outbox]) {
      if (entry.sentAt === null || now - entry.sentAt <= RESEND_MS) {
        transmit(id);
        continue;
      }
      settle(id);
      addNotice("local", "Esta mensagem pode não ter sido enviada (ficou mais de 4 minutos " +
        `sem resposta): confira se ela aparece acima e, se não, envie de novo: «${entry.text}»`);
    }
  }

  // The waiting line a frame answers (taken out of the outbox), or null. A message
  // answers a line only if it is the user's own: ids are the sender's.
  function answered(frame) {
    if (typeof frame.id !== "string") return null;
    if (frame.type === "message" && frame.from !== user) return null;
    if (frame.type === "message" && retry !== null && retry.id === frame.id) {
      // The line refused as not confirmed was stored after all (a store that failed
      // over): sending it from the box would not show it twice, but nothing would come.
      if (ui.line.value === retry.text) ui.line.value = "";
      retry = null;
      addNotice("local", "A mensagem que tinha voltado para a caixa de texto apareceu: " +
        "ela foi enviada, e a caixa foi limpa.");
    }
    return settle(frame.id);
  }

  // A line the server refused: back into the box if it is empty (Enter sends it again,
  // with its id), else quoted in a notice, so that it is never lost.
  function refused(id, entry) {
    if (ui.line.value === "") {
      ui.line.value = entry.text;
      retry = { id, text: entry.text, sentAt: entry.sentAt };
    } else {
      addNotice("local", `A mensagem recusada foi: «${entry.text}» (a caixa de texto não ` +
        "estava vazia para recebê-la de volta).");
    }
  }

  function onFrame(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch (_) {
      addNotice("local", "O servidor mandou algo que não é JSON; foi ignorado.");
      return;
    }
    if (frame === null || typeof frame !== "object") return;
    switch (frame.type) {
      case "welcome": onWelcome(frame); break;
      case "message": onChatMessage(frame); answered(frame); break;
      case "system":
        // A notice answering a line whose answer already came (its echo, replayed after
        // a resume, then "already stored" for the line sent again) is not news.
        if (answered(frame) !== null || typeof frame.id !== "string") {
          addNotice("system", frame.text);
        }
        break;
      case "error": {
        const entry = answered(frame);
        addNotice("error", frame.text);
        if (entry !== null) refused(frame.id, entry);
        break;
      }
      default: break; // unknown types are ignored, for forward compatibility
    }
  }

  // -- connection --------------------------------------------------------------------

  function clearTimers() {
    clearTimeout(retryTimer);
    clearInterval(countdownTimer);
    clearTimeout(welcomeTimer);
    clearTimeout(stableTimer);
    retryTimer = countdownTimer = welcomeTimer = stableTimer = null;
  }

  function ownSocketUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/ws`;
  }

  // Keep the node in use where it is; add the welcome's ws(s):// URLs not known yet.
  function learnNodes(urls) {
    const current = nodes[nodeIndex];
    const known = [ownSocketUrl()];
    for (const url of urls) {
      if (typeof url === "string" && /^wss?:\/\/[^\s/]+\/ws$/.test(url) && !known.includes(url)) {
        known.push(url);
      }
    }
    nodes = known;
    nodeIndex = Math.max(0, nodes.indexOf(current));
  }

  function connect() {
    clearTimers();
    welcomed = false;
    setStatus(attempt === 0 ? "connecting" : "reconnecting");
    ui.status.dataset.node = nodes[nodeIndex];
    let ws;
    try {
      ws = new WebSocket(nodes[nodeIndex]);
    } catch (error) {
      scheduleReconnect();
      return;
    }
    socket = ws;
    ws.onopen = () => {
      if (socket !== ws) return;
      // A fresh tab asks for the recent history; a returning one resumes from its offset.
      resumed = epoch !== null;
      const resume = resumed ? { epoch, offset: lastOffset } : null;
      const history = resumed ? 0 : HISTORY;
      ws.send(JSON.stringify({ type: "hello", user, secret, resume, history }));
    };
    ws.onmessage = (event) => {
      if (socket === ws) onFrame(event.data);
    };
    ws.onclose = (event) => {
      if (socket !== ws) return;
      socket = null;
      onClose(event);
    };
    // An error is always followed by a close event, which decides what to do.
    welcomeTimer = setTimeout(() => {
      if (socket !== ws || welcomed) return;
      socket = null;
      ws.close();
      scheduleReconnect();
    }, WELCOME_TIMEOUT_MS);
  }

  function onClose(event) {
    clearTimeout(welcomeTimer);
    clearTimeout(stableTimer);
    const reason = event.reason;
    switch (event.code) {
      case CloseCode.BAD_SECRET:
        // Retrying cannot help: the name belongs to someone with another secret. The
        // reason says when the next try may come once too many went wrong in a row.
        backToLogin(`${reason || "Senha errada para este nome (código 4001)."} ` +
          "Confira a senha ou escolha outro nome.");
        return;
      case CloseCode.THROTTLED:
      case CloseCode.NAME_LIMIT:
        // Retrying now would only be refused again: the reason says when to try.
        backToLogin(reason || `O servidor recusou a entrada (código ${event.code}).`);
        return;
      case CloseCode.BAD_HELLO:
        // The server refused what we sent (bad name, bad resume point): no retry.
        forgetResume();
        backToLogin(reason || "O servidor recusou a entrada (código 4000).");
        return;
      case CloseCode.MESSAGE_TOO_BIG:
        addNotice("local", "O servidor fechou a conexão por uma mensagem grande demais " +
          "(código 1009); reconectando.");
        break;
      case CloseCode.GOING_AWAY:
        addNotice("local", "O servidor está saindo do ar (código 1001); " +
          "tentando de novo em instantes.");
        break;
      case CloseCode.SERVICE_RESTART:
        // The server's history lost messages: resume; the welcome says what was lost.
        addNotice("local", `${reason || "O servidor reiniciou o histórico"} (código 1012); ` +
          "reconectando.");
        break;
      default:
        if (welcomed) addNotice("local", "A conexão caiu; reconectando sozinho.");
        break;
    }
    scheduleReconnect();
  }

  function scheduleReconnect() {
    clearTimers();
    // The next node (the same one when there is one): the node just lost may be down.
    nodeIndex = (nodeIndex + 1) % nodes.length;
    // Exponential backoff with jitter: a random delay in the upper half of the ceiling,
    // so many tabs cut at once do not come back at the same instant.
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    attempt += 1;
    const due = Date.now() + delay;
    const tick = () => {
      const seconds = Math.max(1, Math.ceil((due - Date.now()) / 1000));
      setStatus("reconnecting", "", `reconectando em ${seconds} s…`);
    };
    tick();
    countdownTimer = setInterval(tick, 250);
    retryTimer = setTimeout(connect, delay);
  }

  function disconnect() {
    clearTimers();
    const ws = socket;
    socket = null;
    welcomed = false;
    if (ws !== null) ws.close(CloseCode.NORMAL_CLOSURE, "saiu");
  }

  // -- login and logout --------------------------------------------------------------

  function showLoginError(text) {
    ui.loginError.textContent = text;
    ui.loginError.hidden = !text;
  }

  function backToLogin(errorText) {
    disconnect();
    secret = null;
    attempt = 0;
    setStatus("closed");
    ui.chat.hidden = true;
    ui.login.hidden = false;
    showLoginError(errorText || "");
    if (errorText) ui.loginSecret.focus();
    else ui.loginName.focus();
  }

  ui.loginForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = ui.loginName.value.trim().normalize("NFC");
    const typedSecret = ui.loginSecret.value;
    if (!NAME_PATTERN.test(name)) {
      showLoginError("Nome inválido: use de 1 a 32 letras (acentos valem), dígitos, " +
        "'_', '.' ou '-', sem espaços nem símbolos.");
      ui.loginName.focus();
      return;
    }
    if (!typedSecret) {
      showLoginError("Escreva uma senha: ela protege o seu nome.");
      ui.loginSecret.focus();
      return;
    }
    const normalized = name.toLowerCase();
    if (normalized !== user) {
      // Another user's view; the same user after a logout keeps the waiting lines.
      ui.messages.replaceChildren();
      forgetOutbox();
    }
    user = normalized;
    secret = typedSecret;
    ui.loginSecret.value = "";
    const saved = loadResume(user);
    epoch = saved ? saved.epoch : null;
    lastOffset = saved ? saved.offset : 0;
    showLoginError("");
    ui.me.textContent = user;
    welcomedBefore = false;
    ui.login.hidden = true;
    ui.chat.hidden = false;
    attempt = 0;
    connect();
    ui.line.focus();
  });

  ui.logout.addEventListener("click", () => backToLogin(""));

  // -- sending -----------------------------------------------------------------------

  // The text the server will check against the limit: the whole line, or after
  // "/msg <user>" for a private message.
  function messageText(line) {
    const trimmed = line.trim();
    const privateMatch = /^\/msg\s+\S+\s+([\s\S]*)$/i.exec(trimmed);
    return privateMatch ? privateMatch[1].trim() : trimmed;
  }

  ui.sendForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const line = ui.line.value;
    if (!line.trim()) return;
    const length = Array.from(messageText(line)).length;
    if (length > MAX_TEXT_LENGTH) {
      addNotice("local", `Mensagem longa demais: ${length} caracteres; o limite é ` +
        `${MAX_TEXT_LENGTH}. Ela continua na caixa de texto.`);
      return;
    }
    // The refused line, sent again unchanged, keeps its id: the server stores it once.
    const again = retry !== null && retry.text === line ? retry : null;
    const id = again !== null ? again.id : newId();
    const frame = JSON.stringify({ type: "say", text: line, id });
    if (new TextEncoder().encode(frame).length > MAX_FRAME_BYTES) {
      addNotice("local", "Mensagem grande demais para um envio (16 KiB). " +
        "Ela continua na caixa de texto.");
      return;
    }
    if (outbox.size >= OUTBOX_LIMIT) {
      addNotice("local", `Já há ${OUTBOX_LIMIT} mensagens esperando resposta do servidor; ` +
        "espere algumas chegarem. Esta continua na caixa de texto.");
      return;
    }
    retry = null;
    // Sent now if connected, else after the next welcome: it waits in the outbox.
    enqueue(id, line, again !== null ? again.sentAt : null);
    ui.line.value = "";
  });

  ui.line.addEventListener("input", () => { retry = null; });

  // Back online: do not wait for the rest of the backoff.
  window.addEventListener("online", () => {
    if (retryTimer !== null) connect();
  });

  setStatus("closed");
  ui.loginName.focus();
})();
