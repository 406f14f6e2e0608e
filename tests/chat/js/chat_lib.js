// Helpers of the chat's Node client scenarios (official socket.io-client 4.8).
//
// A scenario calls run(async ({url, args}) => result): the result is printed as one JSON line,
// every socket opened is closed, and the process exits; past its deadline it prints
// {"error": ...} and exits 1.
"use strict";

const path = require("node:path");
const { io } = require(path.join(__dirname, "..", "..", "..", "node_modules", "socket.io-client"));

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const opened = [];

// A socket that records every event it receives ({event, data}) in `socket.log`.
function open(url, opts = {}) {
  const socket = io(url, { reconnection: false, forceNew: true, transports: ["websocket"], ...opts });
  socket.log = [];
  socket.onAny((event, ...args) => socket.log.push({ event, data: args.length === 1 ? args[0] : args }));
  opened.push(socket);
  return socket;
}

// Resolves with the first logged `event` at index >= `after` matching `where`.
async function next(socket, event, where = () => true, after = 0, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = socket.log.slice(after).find((e) => e.event === event && where(e.data));
    if (found) return found.data;
    if (Date.now() > deadline) {
      throw new Error(`no ${event} event; got ${JSON.stringify(socket.log.slice(after))}`);
    }
    await sleep(5);
  }
}

// Connected, and welcomed (the chat's first event).
async function connected(socket) {
  await next(socket, "welcome");
  return socket;
}

// emitWithAck with a timeout; resolves with the ack's value.
function ack(socket, event, ...args) {
  return socket.timeout(5000).emitWithAck(event, ...args);
}

// A message to `room` from `sender`, awaited by every observer: afterwards each observer's log
// holds, in order, all it was sent before.
async function sentinel(sender, room, ...observers) {
  const text = `sentinel-${sender.id}-${sender.log.length}`;
  const reply = await ack(sender, "message", { channel: room, message: text });
  if (!reply.ok) throw new Error(`sentinel refused: ${JSON.stringify(reply)}`);
  for (const o of observers) await next(o, "message", (m) => m.message === text);
}

function onlySentinels(entries) {
  return entries.every((e) => e.event === "message" && String(e.data.message).startsWith("sentinel-"));
}

function run(scenario, deadlineMs = 25000) {
  const url = process.argv[2];
  const args = process.argv.slice(3);
  const timer = setTimeout(() => {
    process.stdout.write(JSON.stringify({ error: `scenario deadline ${deadlineMs} ms` }) + "\n");
    process.exit(1);
  }, deadlineMs);
  const finish = (result, code) => {
    clearTimeout(timer);
    for (const s of opened) s.disconnect();
    process.stdout.write(JSON.stringify(result) + "\n");
    setTimeout(() => process.exit(code), 50);
  };
  scenario({ url, args }).then(
    (result) => finish(result, 0),
    (err) => finish({ error: String(err && err.stack ? err.stack : err) }, 1),
  );
}

module.exports = { ack, connected, next, onlySentinels, open, run, sentinel, sleep };
