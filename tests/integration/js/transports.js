// Connects over one transport mode (argv: polling | websocket | upgrade) and exercises it:
// transport names before/after, echo acks (several args), an emitted event, handshake
// auth/query, and a burst of concurrent acks (batched payloads on polling).
"use strict";

const { open, connected, once, ack, run, sleep } = require("./lib");

const MODES = {
  polling: { transports: ["polling"], upgrade: false },
  websocket: { transports: ["websocket"] },
  upgrade: { transports: ["polling", "websocket"] },
};

run(async ({ url, args }) => {
  const mode = args[0];
  const opts = MODES[mode];
  if (!opts) throw new Error(`unknown mode ${mode}`);
  const socket = open(url, { ...opts, auth: { user: "ana" }, query: { foo: "bar" } });
  const engine = socket.io.engine; // opened synchronously by io()
  const result = { initial: engine.transport.name, upgrades: [] };
  const upgraded = new Promise((resolve) =>
    engine.on("upgrade", (transport) => {
      result.upgrades.push(transport.name);
      resolve();
    }),
  );
  await connected(socket);
  if (mode === "upgrade") {
    await Promise.race([upgraded, sleep(5000)]);
  } else {
    await sleep(300); // a would-be upgrade has time to happen
  }
  result.final = engine.transport.name;
  result.echo = await ack(socket, "echo", "a", 1, { b: [true, null, 2.5] }, "ünï©ødé ✓");
  const event = once(socket, "echo");
  socket.emit("echo_event", "x", { y: 2 });
  result.event = await event;
  result.handshake = (await ack(socket, "handshake_info"))[0];
  result.id = socket.id;
  const burst = await Promise.all(
    Array.from({ length: 30 }, (_, i) => ack(socket, "echo", i, `m${i}`)),
  );
  result.burst_ok = burst.every((reply, i) => reply[0] === i && reply[1] === `m${i}`);
  result.final_after_burst = engine.transport.name;
  return result;
});
