// Every chat event through the official client with acks, then a table of bad inputs: each
// gets its exact code (ack and `error` event), the bystander gets nothing, the offender's
// connection keeps working. argv: url.
"use strict";

const { ack, connected, next, onlySentinels, open, run, sentinel, sleep } = require("./chat_lib");

const BAD = [
  ["channel_join", [], "bad_request"],
  ["channel_join", [null], "bad_request"],
  ["channel_join", [42], "bad_request"],
  ["channel_join", [["room1"]], "bad_request"],
  ["channel_join", [{ channel: { deep: [1] } }], "invalid_room"],
  ["channel_join", ["x".repeat(65)], "invalid_room"],
  ["channel_join", ["a\u0000b"], "invalid_room"],
  ["channel_leave", [false], "bad_request"],
  ["message", [], "bad_request"],
  ["message", [null], "bad_request"],
  ["message", [3.14], "bad_request"],
  ["message", [{ channel: "room1" }], "bad_request"],
  ["message", [{ channel: "room1", message: ["hi"] }], "invalid_message"],
  ["message", [{ channel: "room1", message: "   " }], "invalid_message"],
  ["message", [{ channel: "room1", message: "x".repeat(4001) }], "invalid_message"],
  ["message", [{ channel: "room1", message: "x".repeat(200000) }], "invalid_message"],
  ["message", [{ channel: "room1", message: "hi", client_id: 5 }], "bad_request"],
  ["message", [{ channel: "elsewhere", message: "hi" }], "not_in_room"],
  ["message", [Buffer.from([1, 2, 3])], "bad_request"],
  ["typing", [{ channel: "room1", typing: "yes" }], "bad_request"],
  ["typing", [{ channel: "elsewhere" }], "not_in_room"],
  ["history", [{ channel: "room1", limit: 1000 }], "bad_request"],
  ["history", [{ channel: "room1", before: "9" }], "bad_request"],
  ["nick", [""], "invalid_name"],
  ["nick", [{ name: null }], "bad_request"],
  ["nick", [["x"]], "bad_request"],
];

run(async ({ url }) => {
  const ana = await connected(open(url, { auth: { name: "ana" } }));
  const bob = await connected(open(url, { auth: { name: "bob" } }));
  const r = {};
  r.welcome = ana.log[0];
  r.join = await ack(ana, "channel_join", "room1");
  r.join_bob = await ack(bob, "channel_join", { channel: "room1" });
  r.presence_at_ana = await next(ana, "presence", (p) => p.user === "bob");
  r.message_ack = await ack(ana, "message", { channel: "room1", message: "hello", client_id: "n-1" });
  r.message_at_bob = await next(bob, "message", (m) => m.message === "hello");
  r.retry_ack = await ack(ana, "message", { channel: "room1", message: "hello", client_id: "n-1" });
  r.plain_ack = await ack(ana, "message", "plain string");
  r.typing_ack = await ack(ana, "typing", { channel: "room1", typing: true });
  r.typing_at_bob = await next(bob, "typing");
  await ack(ana, "typing", { channel: "room1", typing: false });
  r.typing_stop_at_bob = await next(bob, "typing", (t) => t.typing === false);
  r.history = await ack(bob, "history", { channel: "room1", limit: 10 });
  r.history_before = await ack(bob, "history", { channel: "room1", before: r.plain_ack.id });
  r.history_after = await ack(bob, "history", { channel: "room1", after: r.message_ack.id });
  r.nick = await ack(bob, "nick", "roberto");
  r.renamed_at_ana = await next(ana, "presence", (p) => p.event === "renamed");
  r.nick_taken = await ack(bob, "nick", "ANA");

  // Let the room list settle, so that what bob gets from here on is caused by ana's input.
  await next(bob, "rooms", (x) => x.rooms.length === 1 && x.rooms[0].count === 2);
  await sleep(150);
  r.bad = [];
  for (const [event, args, code] of BAD) {
    const markAna = ana.log.length;
    const markBob = bob.log.length;
    const reply = await ack(ana, event, ...args);
    const error = await next(ana, "error", () => true, markAna);
    await sentinel(ana, "room1", ana, bob);
    r.bad.push({
      event,
      expected: code,
      ack_code: reply.ok === false ? reply.error.code : null,
      event_code: error.code,
      event_event: error.event,
      bystander_clean: onlySentinels(bob.log.slice(markBob)),
      still_connected: ana.connected,
    });
  }
  r.leave = await ack(bob, "channel_leave", "room1");
  r.left_at_ana = await next(ana, "presence", (p) => p.event === "left");
  r.rooms_at_ana = await next(ana, "rooms", (x) => x.rooms.length === 1 && x.rooms[0].count === 1);
  return r;
});
