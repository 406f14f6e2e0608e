// The tutorial's browser code against the chat: emit("channel_join", id) and
// emit("message", text) without acks, read m.channel / m.message. argv: url, transport,
// "single" when the server runs --single-room (then a second join moves the sender).
"use strict";

const { connected, next, open, run, sentinel } = require("./chat_lib");

run(async ({ url, args }) => {
  const [transport, mode] = args;
  const opts = { transports: [transport], upgrade: false };
  const [a, b, c] = await Promise.all([open(url, opts), open(url, opts), open(url, opts)].map(connected));
  b.emit("channel_join", "room1");
  c.emit("channel_join", "room2");
  await next(b, "presence", (p) => p.channel === "room1");
  await next(c, "presence", (p) => p.channel === "room2");
  // The tutorial's order: join, then message right away, no waiting for answers.
  a.emit("channel_join", "room1");
  a.emit("message", "hola sala 1");
  const atB = await next(b, "message");
  const result = {
    b_got: { channel: atB.channel, message: atB.message, user_is_string: typeof atB.user === "string" },
  };
  if (mode === "single") {
    a.emit("channel_join", "room2");
    a.emit("message", "hola sala 2");
    const atC = await next(c, "message", (m) => m.message === "hola sala 2");
    result.c_got = { channel: atC.channel, message: atC.message };
    result.b_saw_left = (await next(b, "presence", (p) => p.event === "left")).user === atB.user;
  }
  await sentinel(b, "room1", b);
  await sentinel(c, "room2", c);
  result.b_messages = b.log.filter((e) => e.event === "message").map((e) => e.data.message);
  result.c_messages = c.log.filter((e) => e.event === "message").map((e) => e.data.message);
  result.transport = a.io.engine.transport.name;
  return result;
});
