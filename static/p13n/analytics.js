/*
 * p13n.js: an analytics.js-style tracking snippet, served by the p13n server.
 * No build step: include it with a <script> tag and call p13n.load(writeKey).
 *
 *   p13n.page(name?, properties?)      p13n.track(event, properties?)
 *   p13n.identify(userId, traits?)     p13n.reset()
 *   p13n.consent(true|false)           p13n.flush()
 *
 * Ids live in the same cookies as analytics.js (ajs_anonymous_id, ajs_user_id),
 * so a site already running analytics.js and this snippet report one visitor.
 * Messages are batched, retried with backoff, kept in localStorage until the
 * server has them, and sent with sendBeacon when the page is hidden.
 */
(function (window, document) {
  "use strict";
  var VERSION = "1.0.0";
  var ANON_COOKIE = "ajs_anonymous_id";
  var USER_COOKIE = "ajs_user_id";
  var CONSENT_COOKIE = "p13n_consent";
  var STORE_KEY = "p13n_queue";
  var MAX_BATCH = 50;
  var MAX_QUEUE = 500;
  var MAX_BACKOFF_MS = 30000;

  var state = {
    writeKey: null,
    host: "",
    flushInterval: 50,
    queue: [],
    timer: null,
    failures: 0,
    inFlight: false
  };

  function readCookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) {
        var value = decodeURIComponent(parts[i].slice(eq + 1));
        if (value.length >= 2 && value.charAt(0) === '"' && value.charAt(value.length - 1) === '"') {
          value = value.slice(1, -1);
        }
        return value || null;
      }
    }
    return null;
  }

  function writeCookie(name, value, days) {
    var expires = new Date(Date.now() + days * 864e5).toUTCString();
    var secure = window.location.protocol === "https:" ? "; Secure" : "";
    document.cookie = name + "=" + encodeURIComponent(value) + "; expires=" + expires + "; path=/; SameSite=Lax" + secure;
  }

  function removeCookie(name) {
    document.cookie = name + "=; expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/; SameSite=Lax";
  }

  function uuid() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, function (c) {
      var r = (Math.random() * 16) | 0;
      return (c === "x" ? r : (r & 0x3) | 0x8).toString(16);
    });
  }

  function anonymousId() {
    var id = readCookie(ANON_COOKIE);
    if (!id) {
      id = uuid();
      writeCookie(ANON_COOKIE, id, 365);
    }
    return id;
  }

  function hasConsent() {
    return readCookie(CONSENT_COOKIE) !== "denied";
  }

  function loadStored() {
    try {
      var stored = JSON.parse(window.localStorage.getItem(STORE_KEY) || "[]");
      return Array.isArray(stored) ? stored : [];
    } catch (e) {
      return [];
    }
  }

  function store() {
    try {
      window.localStorage.setItem(STORE_KEY, JSON.stringify(state.queue));
    } catch (e) { /* storage full or disabled: the in-memory queue still sends */ }
  }

  function context() {
    return {
      library: { name: "p13n.js", version: VERSION },
      page: {
        path: window.location.pathname,
        url: window.location.href,
        search: window.location.search,
        referrer: document.referrer,
        title: document.title
      },
      userAgent: window.navigator.userAgent,
      locale: window.navigator.language,
      screen: { width: window.screen.width, height: window.screen.height }
    };
  }

  function enqueue(message, always) {
    if (!state.writeKey || (!always && !hasConsent())) return;
    message.messageId = uuid();
    message.timestamp = new Date().toISOString();
    message.anonymousId = anonymousId();
    var userId = readCookie(USER_COOKIE);
    if (userId) message.userId = userId;
    message.context = context();
    state.queue.push(message);
    if (state.queue.length > MAX_QUEUE) state.queue.splice(0, state.queue.length - MAX_QUEUE);
    store();
    schedule(state.queue.length >= MAX_BATCH ? 0 : state.flushInterval);
  }

  function schedule(delay) {
    if (state.timer !== null) return;
    state.timer = window.setTimeout(function () {
      state.timer = null;
      flush();
    }, delay);
  }

  function body(batch) {
    return JSON.stringify({ batch: batch, writeKey: state.writeKey, sentAt: new Date().toISOString() });
  }

  function flush() {
    if (state.inFlight || !state.queue.length || !state.writeKey) return;
    var batch = state.queue.slice(0, MAX_BATCH);
    state.inFlight = true;
    // text/plain keeps the request "simple": no CORS preflight from other origins.
    window.fetch(state.host + "/v1/batch", {
      method: "POST",
      headers: { "Content-Type": "text/plain" },
      body: body(batch),
      keepalive: true,
      credentials: "omit"
    }).then(function (response) {
      state.inFlight = false;
      if (response.ok || (response.status >= 400 && response.status < 500 && response.status !== 429)) {
        // Accepted, or rejected for good: either way never send this batch again.
        var sent = {};
        batch.forEach(function (m) { sent[m.messageId] = true; });
        state.queue = state.queue.filter(function (m) { return !sent[m.messageId]; });
        store();
        state.failures = 0;
        if (state.queue.length) schedule(0);
      } else {
        retry(response.headers.get("Retry-After"));
      }
    }, function () {
      state.inFlight = false;
      retry(null);
    });
  }

  function retry(retryAfter) {
    state.failures += 1;
    var delay = Math.min(MAX_BACKOFF_MS, 500 * Math.pow(2, state.failures - 1));
    if (retryAfter && !isNaN(parseInt(retryAfter, 10))) delay = parseInt(retryAfter, 10) * 1000;
    schedule(delay + Math.random() * 250);
  }

  function beacon() {
    if (!state.queue.length || !state.writeKey || !window.navigator.sendBeacon) return;
    var blob = new Blob([body(state.queue.slice(0, MAX_BATCH))], { type: "text/plain" });
    // The server de-duplicates by messageId, so a beacon racing a fetch is harmless.
    window.navigator.sendBeacon(state.host + "/v1/batch", blob);
  }

  var p13n = window.p13n || {};
  p13n.VERSION = VERSION;

  p13n.load = function (writeKey, options) {
    options = options || {};
    state.writeKey = writeKey;
    state.host = options.host || "";
    if (typeof options.flushInterval === "number") state.flushInterval = options.flushInterval;
    anonymousId();
    state.queue = loadStored().concat(state.queue);
    if (state.queue.length) schedule(0);
    window.addEventListener("pagehide", beacon);
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "hidden") beacon();
    });
  };

  p13n.page = function (name, properties) {
    if (typeof name === "object" && name !== null) {
      properties = name;
      name = undefined;
    }
    var props = Object.assign({
      path: window.location.pathname,
      url: window.location.href,
      referrer: document.referrer,
      title: document.title,
      search: window.location.search
    }, properties || {});
    var message = { type: "page", properties: props };
    if (name) message.name = name;
    enqueue(message);
  };

  p13n.track = function (event, properties) {
    enqueue({ type: "track", event: String(event), properties: properties || {} });
  };

  p13n.identify = function (userId, traits) {
    if (typeof userId === "object" && userId !== null) {
      traits = userId;
      userId = null;
    }
    if (userId) writeCookie(USER_COOKIE, String(userId), 365);
    enqueue({ type: "identify", traits: traits || {} });
  };

  p13n.reset = function () {
    removeCookie(USER_COOKIE);
    removeCookie(ANON_COOKIE);
    state.queue = [];
    store();
    anonymousId();
  };

  p13n.consent = function (granted) {
    if (granted === undefined) return hasConsent();
    if (!granted) {
      // Nothing queued before the refusal is sent; only the refusal itself, so
      // the server records it against the profile.
      state.queue = [];
      store();
    }
    writeCookie(CONSENT_COOKIE, granted ? "granted" : "denied", 365);
    enqueue({ type: "track", event: "consent_changed", properties: { granted: !!granted } }, true);
    return !!granted;
  };

  p13n.user = function () {
    return { anonymousId: anonymousId(), userId: readCookie(USER_COOKIE) };
  };

  p13n.flush = flush;
  window.p13n = p13n;
})(window, document);
