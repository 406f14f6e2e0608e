// Helpers shared by the Node client scenarios (official socket.io-client 4.8).
//
// A scenario exports nothing: it calls run(async (ctx) => result) which prints the result
// as one JSON line on stdout, closes every socket it opened and exits; a scenario that does
// not finish within its deadline prints {"error": ...} and exits 1.
"use strict";

const path = require("node:path");
const client = require(path.join(__dirname, "..", "..", "..", "node_modules", "socket.io-client"));

const { io, Manager } = client;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function withTimeout(promise, ms, label) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${label}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Resolves with the event's arguments (an array).
function once(emitter, event, ms = 5000) {
  return withTimeout(
    new Promise((resolve) => emitter.once(event, (...args) => resolve(args))),
    ms,
    `event ${event}`,
  );
}

// Resolves once the socket is connected; rejects with the connect_error.
function connected(socket, ms = 5000) {
  if (socket.connected) return Promise.resolve();
  return withTimeout(
    new Promise((resolve, reject) => {
      const onConnect = () => {
        socket.off("connect_error", onError);
        resolve();
      };
      const onError = (err) => {
        socket.off("connect", onConnect);
        reject(err);
      };
      socket.once("connect", onConnect);
      socket.once("connect_error", onError);
    }),
    ms,
    `connect ${socket.nsp}`,
  );
}

// Resolves with the connect_error ({message, data}) of a refused connection.
function connectError(socket, ms = 5000) {
  return withTimeout(
    new Promise((resolve, reject) => {
      socket.once("connect", () => reject(new Error(`${socket.nsp} unexpectedly connected`)));
      socket.once("connect_error", (err) =>
        resolve({ message: err.message, data: err.data === undefined ? null : err.data }),
      );
    }),
    ms,
    `connect_error ${socket.nsp}`,
  );
}

// Emits with an ack and resolves with all of the ack's arguments (an array).
function ack(socket, event, ...args) {
  return new Promise((resolve, reject) => {
    socket.timeout(5000).emit(event, ...args, (err, ...reply) => {
      if (err) reject(new Error(`no ack for ${event}: ${err.message}`));
      else resolve(reply);
    });
  });
}

// JSON-able view of values that may hold Buffers / ArrayBuffers: {"$bin": "<hex>"}.
function describe(value) {
  if (Buffer.isBuffer(value)) return { $bin: value.toString("hex") };
  if (value instanceof ArrayBuffer) return { $bin: Buffer.from(value).toString("hex") };
  if (ArrayBuffer.isView(value)) {
    return { $bin: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("hex") };
  }
  if (Array.isArray(value)) return value.map(describe);
  if (value && typeof value === "object") {
    const out = {};
    for (const key of Object.keys(value)) out[key] = describe(value[key]);
    return out;
  }
  return value === undefined ? null : value;
}

const opened = [];

// Opens a socket (reconnection off unless asked) and remembers it for clean-up.
function open(url, opts = {}) {
  const socket = io(url, { reconnection: false, forceNew: true, ...opts });
  opened.push(socket);
  return socket;
}

function manager(url, opts = {}) {
  const m = new Manager(url, { reconnection: false, ...opts });
  opened.push(m);
  return m;
}

function closeAll() {
  for (const item of opened) {
    try {
      if (typeof item.disconnect === "function") item.disconnect();
      else if (item.engine) item.engine.close();
    } catch (e) {
      // already closed
    }
  }
}

function run(scenario, deadlineMs = 25000) {
  const url = process.argv[2];
  const args = process.argv.slice(3);
  const timer = setTimeout(() => {
    process.stdout.write(JSON.stringify({ error: `scenario deadline ${deadlineMs} ms` }) + "\n");
    process.exit(1);
  }, deadlineMs);
  scenario({ url, args })
    .then((result) => {
      clearTimeout(timer);
      closeAll();
      process.stdout.write(JSON.stringify(result) + "\n");
      setTimeout(() => process.exit(0), 50);
    })
    .catch((err) => {
      clearTimeout(timer);
      closeAll();
      process.stdout.write(JSON.stringify({ error: String(err && err.stack ? err.stack : err) }) + "\n");
      setTimeout(() => process.exit(1), 50);
    });
}

module.exports = {
  io,
  Manager,
  sleep,
  withTimeout,
  once,
  connected,
  connectError,
  ack,
  describe,
  open,
  manager,
  run,
};
