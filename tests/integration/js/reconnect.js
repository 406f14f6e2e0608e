// Reconnection: the server closes the Engine.IO connection (drop_transport); the client
// sees "transport close", reconnects on its own and works again.
"use strict";

const { open, connected, once, ack, run } = require("./lib");

run(async ({ url, args }) => {
  const transport = args[0] || "websocket";
  const socket = open(url, {
    transports: [transport],
    upgrade: false,
    reconnection: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 200,
    randomizationFactor: 0,
  });
  await connected(socket);
  const firstId = socket.id;
  const disconnected = once(socket, "disconnect", 5000);
  const reconnected = once(socket.io, "reconnect", 8000);
  socket.emit("drop_transport");
  const [reason] = await disconnected;
  const [attempts] = await reconnected;
  if (!socket.connected) await connected(socket);
  return {
    reason,
    attempts,
    connected: socket.connected,
    new_id: socket.id !== firstId,
    echo: (await ack(socket, "echo", "back"))[0],
  };
});
