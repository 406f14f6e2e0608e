// The integration test application on the Node.js reference server (socket.io 4.8).
//
// tests/apps/salas_app.py implements the same behaviour on salas; the suite in
// tests/integration runs against either (SALAS_TEST_TARGETS=node,salas) so that every
// expectation is first shown to be the real Socket.IO behaviour.
//
// Environment: PORT (0 = any free port), PING_INTERVAL_MS, PING_TIMEOUT_MS, MAX_PAYLOAD,
// CONNECT_TIMEOUT_MS, CORS_ORIGIN ("*" by default, or one origin).
// Prints "READY <port>" on stdout once listening.
"use strict";

const http = require("node:http");
const path = require("node:path");

// tests/apps -> repository root, where node_modules lives
const { Server } = require(path.join(__dirname, "..", "..", "node_modules", "socket.io"));

function envInt(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new Error(`${name} must be a number, got ${raw}`);
  return value;
}

const port = envInt("PORT", 0);
const corsOrigin = process.env.CORS_ORIGIN || "*";

// A handler that throws must not take the server down (salas: the exception is logged,
// the connection keeps working). Node would exit on an unhandled rejection.
process.on("unhandledRejection", (err) => {
  process.stderr.write(`handler error: ${err && err.message}\n`);
});
process.on("uncaughtException", (err) => {
  process.stderr.write(`uncaught: ${err && err.stack}\n`);
});

const httpServer = http.createServer();
const io = new Server(httpServer, {
  pingInterval: envInt("PING_INTERVAL_MS", 25000),
  pingTimeout: envInt("PING_TIMEOUT_MS", 20000),
  maxHttpBufferSize: envInt("MAX_PAYLOAD", 1e6),
  connectTimeout: envInt("CONNECT_TIMEOUT_MS", 45000),
  cors: { origin: corsOrigin },
  serveClient: false,
});

// Last disconnect reasons seen by the server, newest last (bounded).
const disconnects = [];
function recordDisconnect(nsp, id, reason) {
  disconnects.push({ nsp, id, reason });
  if (disconnects.length > 200) disconnects.shift();
}

// Split "...args, ack" as delivered by socket.io (the ack is the last argument if any).
function splitAck(args) {
  if (args.length && typeof args[args.length - 1] === "function") {
    return [args.slice(0, -1), args[args.length - 1]];
  }
  return [args, () => {}];
}

io.on("connection", (socket) => {
  socket.on("error", () => {}); // malformed input is reported here; the session is closed by the server
  socket.on("disconnect", (reason) => recordDisconnect("/", socket.id, reason));

  socket.on("echo", (...raw) => {
    const [args, ack] = splitAck(raw);
    ack(...args);
  });

  socket.on("echo_event", (...raw) => {
    const [args] = splitAck(raw);
    socket.emit("echo", ...args);
  });

  socket.on("binary", (...raw) => {
    const [args, ack] = splitAck(raw);
    ack(...args);
  });

  socket.on("handshake_info", (ack) => {
    ack({
      auth: socket.handshake.auth,
      query: { foo: socket.handshake.query.foo },
      transport: socket.conn.transport.name,
      id: socket.id,
    });
  });

  socket.on("join", async (room, ack) => {
    await socket.join(room);
    if (typeof ack === "function") ack([...socket.rooms].sort());
  });

  socket.on("leave", async (room, ack) => {
    await socket.leave(room);
    if (typeof ack === "function") ack([...socket.rooms].sort());
  });

  socket.on("to_room", (msg, ack) => {
    // {room, event, data, except?}: except (a room) is left out of the broadcast
    const target = msg.except ? io.to(msg.room).except(msg.except) : io.to(msg.room);
    target.emit(msg.event, msg.data);
    if (typeof ack === "function") ack(true);
  });

  socket.on("to_room_except_me", (msg, ack) => {
    socket.to(msg.room).emit(msg.event, msg.data);
    if (typeof ack === "function") ack(true);
  });

  socket.on("server_ack", async (timeoutMs, ack) => {
    let result;
    try {
      const reply = await socket.timeout(timeoutMs).emitWithAck("ping_me", { n: 42 });
      result = { ok: true, reply };
    } catch (err) {
      result = { ok: false, error: "timeout" };
    }
    if (typeof ack === "function") ack(result);
  });

  socket.on("drop_transport", () => {
    socket.conn.close();
  });

  socket.on("disconnect_me", () => {
    socket.disconnect();
  });

  socket.on("crash", async () => {
    throw new Error("crash requested by the client");
  });

  socket.on("fetch_room", async (room, ack) => {
    const sockets = await io.in(room).fetchSockets();
    ack(sockets.map((s) => s.id).sort());
  });

  socket.on("room_join_all", async (room, other, ack) => {
    io.in(room).socketsJoin(other);
    if (typeof ack === "function") ack(true);
  });

  socket.on("room_leave_all", async (room, other, ack) => {
    io.in(room).socketsLeave(other);
    if (typeof ack === "function") ack(true);
  });

  socket.on("room_disconnect", async (room, ack) => {
    io.in(room).disconnectSockets();
    if (typeof ack === "function") ack(true);
  });

  socket.on("disconnect_log", (ack) => {
    ack(disconnects.slice());
  });
});

const admin = io.of("/admin");
admin.use((socket, next) => {
  const auth = socket.handshake.auth || {};
  if (auth.token !== "secret") {
    const err = new Error("unauthorized");
    err.data = { reason: "bad token" };
    return next(err);
  }
  next();
});
admin.on("connection", (socket) => {
  socket.on("error", () => {});
  socket.on("disconnect", (reason) => recordDisconnect("/admin", socket.id, reason));
  socket.on("whoami", (ack) => {
    ack({ nsp: "/admin", id: socket.id });
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  process.stdout.write(`READY ${httpServer.address().port}\n`);
});

function shutdown() {
  io.close();
  httpServer.close();
  setTimeout(() => process.exit(0), 200).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
