// A chat member on the official client (socket.io-client 4.8) with reconnection on, driven
// by tests/recovery/test_recovery_restart.py: commands on stdin ("join <room>", "quit"), one
// JSON line on stdout per thing that happens (connect, disconnect, message, joined).
"use strict";

const path = require("node:path");
const readline = require("node:readline");
const { io } = require(path.join(__dirname, "..", "..", "..", "node_modules", "socket.io-client"));

const say = (what) => process.stdout.write(`${JSON.stringify(what)}\n`);

const socket = io(process.argv[2], {
  transports: ["websocket"],
  auth: { name: "bea" },
  reconnection: true,
  reconnectionDelay: 100,
  reconnectionDelayMax: 200,
  randomizationFactor: 0,
  timeout: 2000,
});

socket.on("connect", () =>
  // engine: the Engine.IO session id (under `salas serve --workers`, "<worker>.<...>").
  say({
    type: "connect",
    id: socket.id,
    recovered: socket.recovered,
    engine: socket.io.engine.id,
  }),
);
socket.on("disconnect", (reason) =>
  // _lastOffset: what the client will hand back to be recovered (no public getter).
  say({ type: "disconnect", reason, offset: socket._lastOffset ?? null }),
);
socket.on("message", (m, offset) =>
  say({ type: "message", channel: m.channel, message: m.message, id: m.id, offset }),
);

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const [command, arg] = line.trim().split(" ");
  if (command === "join") {
    socket.timeout(5000).emit("channel_join", arg, (err, reply) =>
      say({ type: "joined", ok: !err && reply.ok === true }),
    );
  } else if (command === "quit") {
    socket.disconnect();
    process.exit(0);
  }
});

setTimeout(() => {
  say({ type: "error", error: "still running after 60 s" });
  process.exit(1);
}, 60_000).unref();
