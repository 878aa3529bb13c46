/*
 * <p13n-slot name="hero">: a slot whose block follows the visitor's segments live.
 * <p13n-segments>: shows the visitor's current segments.
 *
 * The server renders the first paint inside the element. One WebSocket per page
 * (/ws/personalize/) subscribes for every slot on the page; when the visitor's
 * memberships change the server pushes the newly chosen blocks, already
 * rendered, and the elements swap them in. If the socket keeps failing, the
 * page polls the block API instead, and keeps trying the socket with backoff.
 * No dependencies; works in plain HTML, React and Vue alike.
 */
(function (window, document) {
  "use strict";
  var POLL_MS = 5000;
  var PING_MS = 25000;
  var MAX_BACKOFF_MS = 30000;
  var FAILURES_BEFORE_POLLING = 2;

  var live = {
    slots: new Set(),
    badges: new Set(),
    socket: null,
    failures: 0,
    reconnectTimer: null,
    pingTimer: null,
    pollTimer: null,
    scheduled: false,
    segments: null,
    options: { url: null, apiBase: "", token: null }
  };

  function token() {
    if (live.options.token !== null) return live.options.token;
    var meta = document.querySelector('meta[name="p13n-live-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // --- measurement: impressions when a block is seen, clicks inside it ----------
  var seen = new Set();
  var observer = "IntersectionObserver" in window
    ? new window.IntersectionObserver(function (entries) {
        entries.forEach(function (entry) {
          if (entry.isIntersecting) {
            observer.unobserve(entry.target);
            impression(entry.target);
          }
        });
      }, { threshold: 0.5 })
    : null;

  function report(event, properties) {
    if (window.p13n && typeof window.p13n.track === "function") window.p13n.track(event, properties);
  }

  // The event contract measurement reads (docs/variants.md): exactly these
  // properties, with these types; the page's path travels in the event context.
  function blockProperties(el) {
    var slot = el.closest("p13n-slot");
    return {
      block_id: parseInt(el.getAttribute("data-p13n-block-id"), 10),
      block_key: el.getAttribute("data-p13n-block") || "",
      slot: slot ? slot.getAttribute("name") || "" : "",
      variant: el.getAttribute("data-p13n-variant") || "",
      holdout: el.getAttribute("data-p13n-holdout") === "true",
      via: "component"
    };
  }

  function impression(el) {
    var props = blockProperties(el);
    // A new variant or a change into/out of the holdout is a new thing seen.
    var id = [props.slot, props.block_key, props.variant, props.holdout].join("/");
    if (seen.has(id)) return;
    seen.add(id);
    report("block_impression", props);
  }

  function watch(slotEl) {
    slotEl.querySelectorAll("[data-p13n-block]").forEach(function (el) {
      if (observer) observer.observe(el);
      else impression(el);
    });
  }

  function onClick(event) {
    var target = event.target && event.target.closest ? event.target.closest("[data-p13n-block]") : null;
    if (!target) return;
    var props = blockProperties(target);
    var link = event.target.closest("a");
    if (link) props.href = link.getAttribute("href");
    report("block_clicked", props);
  }

  function slotNames() {
    var names = [];
    live.slots.forEach(function (el) {
      var name = el.getAttribute("name");
      if (name && names.indexOf(name) === -1) names.push(name);
    });
    return names;
  }

  function socketUrl() {
    var base = live.options.url;
    if (!base) {
      var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
      base = scheme + "//" + window.location.host + "/ws/personalize/";
    }
    var signed = token();
    return signed ? base + (base.indexOf("?") === -1 ? "?" : "&") + "token=" + encodeURIComponent(signed) : base;
  }

  function apply(message) {
    var slots = message.slots || {};
    live.slots.forEach(function (el) {
      var blocks = slots[el.getAttribute("name")];
      if (blocks) el.render(blocks);
    });
    if (message.segments) {
      live.segments = message.segments;
      live.badges.forEach(function (el) { el.render(message.segments); });
    }
    document.dispatchEvent(new CustomEvent("p13n:update", { detail: message }));
  }

  function subscribe() {
    if (live.socket && live.socket.readyState === 1) {
      live.socket.send(JSON.stringify({ type: "subscribe", slots: slotNames() }));
    }
  }

  function connect() {
    if (live.socket || !("WebSocket" in window)) {
      if (!("WebSocket" in window)) startPolling();
      return;
    }
    var socket;
    try {
      socket = new window.WebSocket(socketUrl());
    } catch (e) {
      onFailure();
      return;
    }
    live.socket = socket;
    socket.onopen = function () {
      live.failures = 0;
      stopPolling();
      subscribe();
      live.pingTimer = window.setInterval(function () {
        if (socket.readyState === 1) socket.send(JSON.stringify({ type: "ping" }));
      }, PING_MS);
    };
    socket.onmessage = function (event) {
      var message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      if (message.type === "update") apply(message);
    };
    socket.onclose = function (event) {
      window.clearInterval(live.pingTimer);
      live.socket = null;
      if (event.code === 4403 && token()) {
        // The page's token expired (a tab left open for long): the cookie still proves the visitor.
        live.options.token = "";
        onFailure();
        return;
      }
      if (event.code === 4401 || event.code === 4403) {
        // Not allowed to listen: polling the block API still personalizes.
        startPolling();
        return;
      }
      onFailure();
    };
  }

  function onFailure() {
    live.failures += 1;
    if (live.failures >= FAILURES_BEFORE_POLLING) startPolling();
    var delay = Math.min(MAX_BACKOFF_MS, 500 * Math.pow(2, live.failures - 1)) + Math.random() * 250;
    window.clearTimeout(live.reconnectTimer);
    live.reconnectTimer = window.setTimeout(connect, delay);
  }

  function poll() {
    var names = slotNames();
    if (!names.length) return;
    // impressions=client: this component reports what is seen; the API must not count it too.
    var query = names.map(function (n) { return "slot=" + encodeURIComponent(n); }).join("&") + "&impressions=client";
    window.fetch(live.options.apiBase + "/api/v1/blocks?" + query, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) apply({ type: "update", slots: data.slots, segments: data.segments }); })
      .catch(function () { /* the next poll tries again */ });
  }

  function startPolling() {
    if (live.pollTimer !== null) return;
    poll();
    live.pollTimer = window.setInterval(poll, POLL_MS);
  }

  function stopPolling() {
    if (live.pollTimer === null) return;
    window.clearInterval(live.pollTimer);
    live.pollTimer = null;
  }

  function scheduleSync() {
    // Elements upgrade one by one; subscribe once for all of them.
    if (live.scheduled) return;
    live.scheduled = true;
    window.setTimeout(function () {
      live.scheduled = false;
      if (live.socket) subscribe();
      else connect();
    }, 0);
  }

  function signature(b) {
    return b.key + "@" + (b.variant || "") + (b.holdout ? "!holdout" : "");
  }

  class P13nSlot extends HTMLElement {
    connectedCallback() {
      live.slots.add(this);
      this.addEventListener("click", onClick);
      watch(this);
      scheduleSync();
    }

    disconnectedCallback() {
      live.slots.delete(this);
      this.removeEventListener("click", onClick);
    }

    render(blocks) {
      var keys = blocks.map(function (b) { return b.key; }).join(" ");
      var shown = blocks.map(signature).join(" ");
      var current = Array.prototype.map.call(this.querySelectorAll("[data-p13n-block]"), function (el) {
        return signature({
          key: el.getAttribute("data-p13n-block"),
          variant: el.getAttribute("data-p13n-variant") || "",
          holdout: el.getAttribute("data-p13n-holdout") === "true"
        });
      }).join(" ");
      if (shown === current) return;
      var wrapper = document.createElement("div");
      blocks.forEach(function (b) {
        var el = document.createElement("div");
        el.className = "p13n-block";
        el.setAttribute("data-p13n-block", b.key);
        el.setAttribute("data-p13n-block-id", String(b.id));
        el.setAttribute("data-p13n-variant", b.variant || "");
        el.setAttribute("data-p13n-holdout", b.holdout ? "true" : "false");
        // The server sanitized this HTML when the block was saved and again when rendered.
        el.innerHTML = b.html;
        wrapper.appendChild(el);
      });
      this.replaceChildren.apply(this, Array.prototype.slice.call(wrapper.childNodes));
      this.setAttribute("data-blocks", keys);
      watch(this);
      this.dispatchEvent(new CustomEvent("p13n:swap", { bubbles: true, detail: { blocks: blocks } }));
    }
  }

  class P13nSegments extends HTMLElement {
    connectedCallback() {
      live.badges.add(this);
      if (live.segments) this.render(live.segments);
    }

    disconnectedCallback() {
      live.badges.delete(this);
    }

    render(segments) {
      this.textContent = "";
      var self = this;
      segments.forEach(function (slug) {
        var badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = slug;
        self.appendChild(badge);
      });
    }
  }

  window.p13nLive = {
    configure: function (options) { Object.assign(live.options, options || {}); },
    refresh: poll
  };
  if (!window.customElements.get("p13n-slot")) window.customElements.define("p13n-slot", P13nSlot);
  if (!window.customElements.get("p13n-segments")) window.customElements.define("p13n-segments", P13nSegments);
})(window, document);
