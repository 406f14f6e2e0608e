// Binary both ways over one transport (argv: polling | websocket): Buffers nested in the
// arguments are acked back byte-equal, and the server's emit carries Buffers to the client.
"use strict";

const { open, connected, once, ack, run, describe } = require("./lib");

run(async ({ url, args }) => {
  const transport = args[0];
  const socket = open(url, { transports: [transport], upgrade: false });
  await connected(socket);
  const all = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) all[i] = i;
  const sent = [
    Buffer.from([1, 2, 3]),
    { nested: { buf: Buffer.from("héllo", "utf8"), list: [1, all, "s"] }, n: null },
    "text",
    [Buffer.alloc(0), Buffer.from([255])],
  ];
  const reply = await ack(socket, "binary", ...sent);
  const event = once(socket, "echo");
  socket.emit("echo_event", { data: Buffer.from([9, 8, 7]), label: "bin" }, Buffer.from("end"));
  const emitted = await event;
  return {
    transport: socket.io.engine.transport.name,
    sent: describe(sent),
    acked: describe(reply),
    acked_is_buffer: Buffer.isBuffer(reply[0]),
    emitted: describe(emitted),
    emitted_is_buffer: Buffer.isBuffer(emitted[1]),
  };
});
