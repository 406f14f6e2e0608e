// `salas serve --workers 2` driven by the official client (socket.io-client 4.8).
// argv: url, mode, then per mode:
//   chat TRANSPORT CLIENTS MESSAGES: CLIENTS sockets (polling, websocket or upgrade) join one
//     room and each sends MESSAGES messages, 100 ms apart; reports what each received.
//   kill TRANSPORT PID0 PID1: four sockets spread over both workers; worker 0 (PID0) is
//     killed with SIGKILL; reports whether its sockets reconnected and the room still works.
"use strict";

const path = require("node:path");
const { open, connected, ack, once, sleep, withTimeout, run } = require(
  path.join(__dirname, "..", "..", "integration", "js", "lib"),
);

function options(transport, extra = {}) {
  const base = { reconnection: false, ...extra };
  if (transport === "polling") return { ...base, transports: ["polling"], upgrade: false };
  if (transport === "websocket") return { ...base, transports: ["websocket"] };
  return base; // polling first, then the websocket upgrade
}

function worker(socket) {
  return Number(String(socket.io.engine.id).split(".")[0]);
}

// Opens `count` sockets until both workers hold at least one (round-robin makes it quick).
async function spread(url, transport, count, extra) {
  const sockets = [];
  for (let i = 0; i < count; i++) {
    const socket = open(url, options(transport, extra));
    socket.received = [];
    socket.on("message", (m) => socket.received.push(m));
    await connected(socket, 8000);
    sockets.push(socket);
  }
  return sockets;
}

// Resolves once every socket's engine runs on `name` (the upgrade is asynchronous).
async function transportsSettled(sockets, name, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (sockets.every((s) => s.io.engine.transport.name === name)) return true;
    await sleep(50);
  }
  return false;
}

async function chat(url, transport, clients, messages) {
  const sockets = await spread(url, transport, clients);
  for (const socket of sockets) await ack(socket, "channel_join", "lobby");
  const settled = await transportsSettled(
    sockets,
    transport === "polling" ? "polling" : "websocket",
    8000,
  );
  const acks = [];
  for (let n = 0; n < messages; n++) {
    const round = sockets.map((s, i) =>
      ack(s, "message", { channel: "lobby", message: `c${i}-m${n}`, client_id: `c${i}-m${n}` }),
    );
    acks.push(...(await Promise.all(round)).map((reply) => reply[0]));
    await sleep(100);
  }
  const expected = clients * messages;
  const deadline = Date.now() + 8000;
  while (Date.now() < deadline && sockets.some((s) => s.received.length < expected)) {
    await sleep(50);
  }
  return {
    workers: sockets.map(worker),
    transports: sockets.map((s) => s.io.engine.transport.name),
    settled,
    acked: acks.filter((a) => a && a.ok).length,
    received: sockets.map((s) => s.received.length),
    // Each socket's messages from every sender, in the order it got them: per sender, in order.
    in_order: sockets.every((s) => {
      const last = {};
      for (const m of s.received) {
        const [sender, n] = m.message.slice(1).split("-m").map(Number);
        if ((last[sender] ?? -1) >= n) return false;
        last[sender] = n;
      }
      return true;
    }),
    connected: sockets.map((s) => s.connected),
  };
}

async function kill(url, transport, pid0) {
  const extra = {
    reconnection: true,
    reconnectionDelay: 200,
    reconnectionDelayMax: 500,
    randomizationFactor: 0,
  };
  const sockets = await spread(url, transport, 4, extra);
  for (const socket of sockets) await ack(socket, "channel_join", "lobby");
  const before = sockets.map(worker);
  const victims = sockets.filter((s) => worker(s) === 0);
  const disconnects = victims.map((s) => once(s, "disconnect", 8000));
  const reconnects = victims.map((s) => once(s.io, "reconnect", 15000));
  process.kill(pid0, "SIGKILL");
  const reasons = (await Promise.all(disconnects)).map((args) => args[0]);
  await Promise.all(reconnects);
  for (const socket of victims) {
    if (!socket.connected) await connected(socket, 8000);
    // The chat forgets a socket that reconnected without recovering: it joins again.
    if (!socket.recovered) await ack(socket, "channel_join", "lobby");
  }
  const marks = sockets.map((s) => s.received.length);
  const sent = await ack(sockets[0], "message", { channel: "lobby", message: "after" });
  await withTimeout(
    (async () => {
      while (sockets.some((s, i) => s.received.length <= marks[i])) await sleep(50);
    })(),
    8000,
    "the message after the kill",
  );
  return {
    before,
    after: sockets.map(worker),
    victims: victims.length,
    reasons,
    ack: sent[0],
    everyone_got_it: sockets.every((s) => s.received.some((m) => m.message === "after")),
  };
}

run(async ({ url, args }) => {
  const [mode, transport, ...rest] = args;
  if (mode === "chat") return chat(url, transport, Number(rest[0]), Number(rest[1]));
  if (mode === "kill") return kill(url, transport, Number(rest[0]));
  throw new Error(`unknown mode ${mode}`);
}, 55000);
