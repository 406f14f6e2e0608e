// Acknowledgements both ways, with timeouts: the client's timeout(ms).emitWithAck answered
// and unanswered, many acks in flight at once, and the server's emit-with-ack to a client
// that answers, one without a handler and one whose handler never calls back.
"use strict";

const { open, connected, ack, run } = require("./lib");

run(async ({ url, args }) => {
  const transport = args[0] || "websocket";
  const opts = { transports: [transport], upgrade: false };
  const answering = open(url, opts);
  const noHandler = open(url, opts);
  const silent = open(url, opts);
  answering.on("ping_me", (arg, cb) => cb({ pong: arg }));
  silent.on("ping_me", () => {}); // never acks
  await Promise.all([connected(answering), connected(noHandler), connected(silent)]);
  const result = {};
  result.client_ack = await answering.timeout(2000).emitWithAck("echo", "hi");
  const started = Date.now();
  try {
    await answering.timeout(300).emitWithAck("no_such_event", 1);
    result.client_timeout = "answered";
  } catch (err) {
    result.client_timeout = err.message;
    result.client_timeout_ms = Date.now() - started;
  }
  const inFlight = await Promise.all(
    Array.from({ length: 20 }, (_, i) => answering.timeout(3000).emitWithAck("echo", { i })),
  );
  result.in_flight_ok = inFlight.every((reply, i) => reply.i === i);
  result.server_ack_answered = (await ack(answering, "server_ack", 2000))[0];
  result.server_ack_no_handler = (await ack(noHandler, "server_ack", 300))[0];
  result.server_ack_silent = (await ack(silent, "server_ack", 300))[0];
  // the sessions are still usable after the timeouts
  result.after = [
    (await ack(noHandler, "echo", "still"))[0],
    (await ack(silent, "echo", "here"))[0],
  ];
  return result;
});
