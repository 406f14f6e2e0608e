// Server-side disconnect ("io server disconnect", no reconnection), a handler that throws
// (the connection keeps working), and a client disconnect as the server reports it.
"use strict";

const { open, connected, once, ack, run, sleep } = require("./lib");

run(async ({ url, args }) => {
  const transport = args[0] || "websocket";
  const opts = { transports: [transport], upgrade: false };
  const result = {};

  const kicked = open(url, { ...opts, reconnection: true, reconnectionDelay: 100 });
  await connected(kicked);
  const gone = once(kicked, "disconnect", 5000);
  kicked.emit("disconnect_me");
  result.kicked_reason = (await gone)[0];
  await sleep(400);
  result.kicked_connected = kicked.connected;
  result.kicked_active = kicked.active;

  const crasher = open(url, opts);
  await connected(crasher);
  crasher.emit("crash");
  crasher.emit("crash", 1, 2);
  result.after_crash = (await ack(crasher, "echo", "alive"))[0];
  result.crasher_connected = crasher.connected;

  const leaver = open(url, opts);
  await connected(leaver);
  const leaverId = leaver.id;
  leaver.disconnect();
  let entry;
  for (let i = 0; i < 40 && !entry; i++) {
    await sleep(50);
    const log = (await ack(crasher, "disconnect_log"))[0];
    entry = log.find((e) => e.id === leaverId);
  }
  result.client_disconnect_reason = entry ? entry.reason : null;
  return result;
});
