// A chat member on the official client (socket.io-client 4.8) for the cluster tests
// (tests/cluster/test_cluster_chat.py): connects to one node as NAME, joins ROOM, then
// records every `message` until COUNT have come (and a moment more, to catch a repeat), and
// prints their ids and texts in arrival order.
"use strict";

const path = require("node:path");
const { ack, connected, open, run, sleep } = require(
  path.join(__dirname, "..", "..", "chat", "js", "chat_lib.js"),
);

run(async ({ url, args }) => {
  const [name, room, count] = [args[0], args[1], Number(args[2])];
  const socket = await connected(open(url, { auth: { name } }));
  const joined = await ack(socket, "channel_join", room);
  if (!joined.ok) throw new Error(`join refused: ${JSON.stringify(joined)}`);
  const deadline = Date.now() + 40000;
  // (With connection state recovery a message carries its offset as a second argument.)
  const messages = () =>
    socket.log
      .filter((e) => e.event === "message")
      .map((e) => (Array.isArray(e.data) ? e.data[0] : e.data));
  while (messages().length < count && Date.now() < deadline) await sleep(10);
  await sleep(300);
  return { messages: messages().map((m) => [m.id, m.message]) };
}, 50000);
