// The tutorial's relay on the Node.js reference server (socket.io 4.8), for bench/.
//   PORT=9001 node bench/servers/node_relay.js
// websocket transport only, compression off; `channel_join` joins a room (single-room mode:
// the previous room is left), `message` is re-emitted to the room as {channel, message}.
"use strict";
const http = require("http");
const { Server } = require("socket.io");

const port = Number(process.env.PORT || 9001);
const httpServer = http.createServer();
const io = new Server(httpServer, {
  transports: ["websocket"],
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
  cors: { origin: "*" },
});

io.on("connection", (socket) => {
  socket.on("channel_join", (channel) => {
    if (socket.data.room) socket.leave(socket.data.room);
    socket.join(channel);
    socket.data.room = channel;
  });
  socket.on("message", (text) => {
    const room = socket.data.room;
    if (room) io.to(room).emit("message", { channel: room, message: text });
  });
});

httpServer.listen(port, "127.0.0.1", 4096, () => {
  console.error(`node relay listening on 127.0.0.1:${port}`);
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(0));
