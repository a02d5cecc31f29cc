#!/usr/bin/env node
// xmpp.js (@xmpp/client) as a scripted third-party peer for the integration
// tests: connects over RFC 7395 WebSocket, logs in, binds, optionally sends a
// chat message and an IQ, optionally waits for incoming stanzas, then stops.
//
// Every event is one JSON object on one line of stdout:
//   {"event":"online","jid":"alice@localhost/abc"}
//   {"event":"presence_sent"}
//   {"event":"message_sent","id":...,"to":...}
//   {"event":"iq_result","id":...,"xml":"<iq .../>"}
//   {"event":"iq_error","id":...,"condition":...,"xml":...}
//   {"event":"stanza","name":"message","from":...,"type":...,"id":...,"body":...,"xml":...}
//   {"event":"error","kind":"sasl|stream|iq|timeout|disconnect|usage|other","message":...,"condition":...}
//   {"event":"offline"}
// Values are strings; objects are flat, so a tiny line parser reads them
// (tools/testbed/xmppjs.cpp). Diagnostics go to stderr (--trace adds the XML).
//
// Exit status: 0 success; 1 any error (login, IQ error, unexpected
// disconnect); 2 timeout; 64 bad arguments.
//
// Options (each also as an environment variable XMPPJS_<NAME>, e.g.
// XMPPJS_SERVICE; an argument wins):
//   --service URL        ws://host:port/path or wss://... (required)
//   --domain D           XMPP domain (default: the service URL's host)
//   --username U --password P
//   --resource R         requested resource (default: the server picks)
//   --presence           send initial presence once online (needed to get
//                        messages sent to the bare JID)
//   --mechanism M        force one SASL mechanism (SCRAM-SHA-1, PLAIN,
//                        ANONYMOUS: what xmpp.js implements); fails when the
//                        server does not offer it. Default: xmpp.js picks
//                        (SCRAM-SHA-1 before PLAIN).
//   --message-to JID --body TEXT    send <message type='chat'>
//   --iq-to JID          send an IQ and wait for its reply
//   --iq-type get|set    (default get)
//   --iq-payload XML     child of the IQ (default <ping xmlns='urn:xmpp:ping'/>)
//   --iq-id ID           (default xmppjs-iq-1)
//   --iq-error-ok        an <iq type='error'/> reply is an event, not a failure
//   --wait N             then wait for N incoming stanzas of --wait-for
//   --wait-for message|presence|iq|any   (default message)
//   --timeout MS         whole run, including the stop (default 10000)
//   --trace              every stanza and nonza in/out on stderr
//
// Only the WebSocket transport is used: the service must be a ws:// or wss://
// URL, the TCP and TLS transports that @xmpp/client registers are removed
// (so STARTTLS has no TCP socket to upgrade and no SRV lookup happens), and
// automatic reconnection is off (a failed login ends the run).
import { parseArgs } from "node:util";
import { webcrypto } from "node:crypto";
import { WebSocket } from "ws";

// @xmpp/client 0.14 uses the globals WebSocket and crypto (Web Crypto, for
// SCRAM). Node 18 (Debian 12's) has neither by default, Node 20 has WebSocket
// only behind --experimental-websocket: install both before the client loads.
// `ws` is used on every Node version so that behaviour does not depend on it.
globalThis.WebSocket = WebSocket;
if (!globalThis.crypto) globalThis.crypto = webcrypto;

const { client, xml } = await import("@xmpp/client");
const { default: ConnectionWebSocket } = await import("@xmpp/websocket/lib/Connection.js");

const EXIT_ERROR = 1;
const EXIT_TIMEOUT = 2;
const EXIT_USAGE = 64;

function emit(event, fields = {}) {
  const line = { event };
  for (const [k, v] of Object.entries(fields)) {
    if (v !== undefined && v !== null) line[k] = String(v);
  }
  process.stdout.write(JSON.stringify(line) + "\n");
}

function trace(...args) {
  process.stderr.write(`xmppjs: ${args.join(" ")}\n`);
}

const spec = {
  service: { type: "string" },
  domain: { type: "string" },
  username: { type: "string" },
  password: { type: "string" },
  resource: { type: "string" },
  presence: { type: "boolean" },
  mechanism: { type: "string" },
  "message-to": { type: "string" },
  body: { type: "string" },
  "iq-to": { type: "string" },
  "iq-type": { type: "string" },
  "iq-payload": { type: "string" },
  "iq-id": { type: "string" },
  "iq-error-ok": { type: "boolean" },
  wait: { type: "string" },
  "wait-for": { type: "string" },
  timeout: { type: "string" },
  trace: { type: "boolean" },
};

let opts;
try {
  ({ values: opts } = parseArgs({ options: spec, strict: true, allowPositionals: false }));
} catch (err) {
  emit("error", { kind: "usage", message: err.message });
  process.exit(EXIT_USAGE);
}
for (const name of Object.keys(spec)) {
  const env = process.env["XMPPJS_" + name.toUpperCase().replaceAll("-", "_")];
  if (opts[name] === undefined && env !== undefined && env !== "") {
    opts[name] = spec[name].type === "boolean" ? env !== "0" : env;
  }
}

function usage(message) {
  emit("error", { kind: "usage", message });
  process.exit(EXIT_USAGE);
}

function count(name, fallback) {
  const s = opts[name];
  if (s === undefined) return fallback;
  if (!/^\d+$/.test(s)) usage(`--${name} must be a non-negative integer, not "${s}"`);
  return Number(s);
}

const service = opts.service;
if (!service) usage("--service ws://host:port/path is required");
if (!/^wss?:\/\//i.test(service)) usage(`--service must be a ws:// or wss:// URL, not "${service}"`);
const timeoutMs = count("timeout", 10000);
const waitCount = count("wait", 0);
const waitFor = opts["wait-for"] ?? "message";
if (!["message", "presence", "iq", "any"].includes(waitFor)) usage(`--wait-for ${waitFor}: not message|presence|iq|any`);
const iqType = opts["iq-type"] ?? "get";
if (!["get", "set"].includes(iqType)) usage(`--iq-type ${iqType}: not get|set`);

/// The single element in `text`, parsed with xmpp.js's own parser.
function parseElement(text) {
  const parser = new xml.Parser();
  const found = [];
  let error;
  parser.on("element", (el) => found.push(el));
  parser.on("error", (err) => (error = err));
  parser.write(`<wrap>${text}</wrap>`);
  if (error) throw error;
  if (found.length !== 1) throw new Error(`expected one element, found ${found.length}`);
  found[0].parent = null;
  return found[0];
}

let iqPayload;
try {
  iqPayload = opts["iq-payload"] ? parseElement(opts["iq-payload"]) : xml("ping", { xmlns: "urn:xmpp:ping" });
} catch (err) {
  usage(`--iq-payload: ${err.message}`);
}

// Authentication: a function gets the mechanisms both sides support (SASL or
// SASL2, whichever the server offers) and picks one when it is forced. The
// user agent goes into a SASL2 <authenticate/> (XEP-0388, initiation).
const credentials = { username: opts.username, password: opts.password };
const userAgent = xml("user-agent", { id: globalThis.crypto.randomUUID() },
  xml("software", {}, "asio-xmpp xmppjs_client"));
let credentialsArg = credentials;
if (opts.mechanism) {
  const forced = opts.mechanism.toUpperCase();
  credentialsArg = async (authenticate, mechanisms) => {
    if (!mechanisms.includes(forced)) {
      const err = new Error(`SASL mechanism ${forced} not available (server and xmpp.js share: ${mechanisms.join(" ") || "none"})`);
      err.kind = "sasl";
      throw err;
    }
    await authenticate(credentials, forced, userAgent);
  };
}

const xmpp = client({
  service,
  domain: opts.domain,
  resource: opts.resource,
  credentials: credentialsArg,
  userAgent,
  // Per-step deadline inside xmpp.js (open, close, SASL round trips); the
  // whole run is bounded by timeoutMs below.
  timeout: timeoutMs,
});

xmpp.reconnect.stop();
if (!xmpp.transports.includes(ConnectionWebSocket)) {
  emit("error", { kind: "other", message: "@xmpp/client did not register its WebSocket transport" });
  process.exit(EXIT_ERROR);
}
xmpp.transports = [ConnectionWebSocket];

let failed = false;
let stopping = false;
const reported = new Set();

function errorKind(err) {
  if (err.kind) return err.kind;
  switch (err.name) {
    case "SASLError": return "sasl";
    case "StreamError": return "stream";
    case "StanzaError": return "iq";
    case "TimeoutError": return "timeout";
    default: return "other";
  }
}

function reportError(err, kind = errorKind(err)) {
  if (reported.has(err)) return;
  reported.add(err);
  failed = true;
  emit("error", { kind, message: err.message || String(err), condition: err.condition, text: err.text });
}

let finishing = null;
function finish(code) {
  finishing ??= (async () => {
    clearTimeout(deadline);
    stopping = true;
    if (xmpp.status !== "offline") {
      // A stop that hangs must not keep us alive.
      await Promise.race([xmpp.stop().catch(() => {}), new Promise((r) => setTimeout(r, 2000))]);
    }
    emit("offline");
    process.exit(code);
  })();
  return finishing;
}

const deadline = setTimeout(() => {
  const err = new Error(`timeout after ${timeoutMs} ms (status ${xmpp.status}, ${received.length}/${waitCount} ${waitFor} stanzas received)`);
  reportError(err, "timeout");
  stopping = true;
  process.exit(EXIT_TIMEOUT);
}, timeoutMs);

xmpp.on("error", (err) => reportError(err));
xmpp.on("status", (status) => trace("status", status));
xmpp.on("disconnect", ({ clean, reason } = {}) => {
  if (stopping) return;
  const err = new Error(`disconnected by the server (${clean ? "clean" : "dirty"}${reason?.message ? ": " + reason.message : ""})`);
  reportError(err, "disconnect");
  finish(EXIT_ERROR);
});
if (opts.trace) {
  xmpp.on("element", (el) => trace("in ", el.toString()));
  xmpp.on("send", (el) => trace("out", el.toString()));
}

// "stanza" sees every incoming stanza, also the replies to xmpp.js's own IQs
// (resource binding) and to ours (reported as iq_result/iq_error): skip
// replies to any IQ we sent.
const requested = new Set();
xmpp.on("send", (el) => {
  if (el.name === "iq" && (el.attrs.type === "get" || el.attrs.type === "set")) requested.add(el.attrs.id);
});
const received = [];
let waitDone;
const waited = new Promise((resolve) => (waitDone = resolve));
const iqId = opts["iq-id"] ?? "xmppjs-iq-1";

xmpp.on("stanza", (stanza) => {
  const { name } = stanza;
  const { type, id, from } = stanza.attrs;
  if (name === "iq" && (type === "result" || type === "error") && requested.has(id)) return;
  emit("stanza", {
    name,
    from,
    type,
    id,
    body: name === "message" ? stanza.getChildText("body") : undefined,
    xml: stanza.toString(),
  });
  if (waitFor === "any" || waitFor === name) {
    received.push(stanza);
    if (received.length >= waitCount) waitDone();
  }
});
if (waitCount === 0) waitDone();

try {
  const address = await xmpp.start();
  emit("online", { jid: address.toString() });

  if (opts.presence) {
    await xmpp.send(xml("presence"));
    emit("presence_sent");
  }

  if (opts["message-to"]) {
    const id = "xmppjs-msg-1";
    await xmpp.send(xml("message", { to: opts["message-to"], type: "chat", id },
      xml("body", {}, opts.body ?? "hello from xmpp.js")));
    emit("message_sent", { id, to: opts["message-to"] });
  }

  if (opts["iq-to"]) {
    const iq = xml("iq", { type: iqType, to: opts["iq-to"], id: iqId }, iqPayload);
    try {
      const reply = await xmpp.iqCaller.request(iq, timeoutMs);
      emit("iq_result", { id: reply.attrs.id, from: reply.attrs.from, xml: reply.toString() });
    } catch (err) {
      if (err.name !== "StanzaError") throw err;
      emit("iq_error", { id: iqId, condition: err.condition, text: err.text, xml: err.element?.parent?.toString() });
      if (!opts["iq-error-ok"]) failed = true;
    }
  }

  await waited;
  await finish(failed ? EXIT_ERROR : 0);
} catch (err) {
  reportError(err);
  await finish(EXIT_ERROR);
}
