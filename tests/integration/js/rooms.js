// Rooms with three clients (A, B on websocket, C on polling): to_room reaches only members,
// to_room_except_me skips the sender, fetch_room lists members, room_join_all moves a
// whole room into another, leave and disconnect take a socket out, an except'ed room is
// skipped, room_leave_all empties a room, room_disconnect disconnects a room's sockets.
// Every broadcast is followed by a "sentinel" broadcast to a room of all three: a client
// has received everything meant for it once its sentinel arrives (per-client order).
"use strict";

const { open, connected, once, ack, run, sleep } = require("./lib");

run(async ({ url, args }) => {
  const tag = args[0] || String(Date.now());
  const all = `all-${tag}`;
  const r1 = `r1-${tag}`;
  const r2 = `r2-${tag}`;
  const r3 = `r3-${tag}`;
  const clients = {
    A: open(url, { transports: ["websocket"] }),
    B: open(url, { transports: ["websocket"] }),
    C: open(url, { transports: ["polling"], upgrade: false }),
  };
  const seen = { A: [], B: [], C: [] };
  for (const [name, socket] of Object.entries(clients)) {
    socket.onAny((event, ...args) => seen[name].push([event, ...args]));
  }
  await Promise.all(Object.values(clients).map((s) => connected(s)));
  const { A, B, C } = clients;
  const result = { ids: { A: A.id, B: B.id, C: C.id } };

  result.join_ack = (await ack(A, "join", all))[0];
  await ack(B, "join", all);
  await ack(C, "join", all);
  await ack(A, "join", r1);
  await ack(B, "join", r1);

  let round = 0;
  // Runs one broadcast from `from` then the sentinel; returns who got `event`.
  async function broadcast(from, kind, room, event, data, except) {
    round += 1;
    for (const name of Object.keys(seen)) seen[name] = [];
    const sentinels = Object.values(clients).map((s) => once(s, "sentinel", 5000));
    await ack(from, kind, except ? { room, event, data, except } : { room, event, data });
    await ack(from, "to_room", { room: all, event: "sentinel", data: round });
    await Promise.all(sentinels);
    const got = {};
    for (const [name, events] of Object.entries(seen)) {
      got[name] = events.filter((e) => e[0] === event).map((e) => e.slice(1));
    }
    return got;
  }

  result.to_room = await broadcast(A, "to_room", r1, "room_msg", { x: 1 });
  result.except_me = await broadcast(A, "to_room_except_me", r1, "room_msg2", "hey");
  result.fetch_r1 = (await ack(C, "fetch_room", r1))[0];
  result.expected_r1 = [A.id, B.id].sort();

  await ack(C, "room_join_all", r1, r2);
  result.fetch_r2 = (await ack(C, "fetch_room", r2))[0];
  result.to_r2 = await broadcast(C, "to_room", r2, "r2_msg", [1, 2]);

  result.leave_ack = (await ack(B, "leave", r1))[0];
  result.fetch_r1_after_leave = (await ack(A, "fetch_room", r1))[0];
  result.to_r1_after_leave = await broadcast(B, "to_room", r1, "room_msg3", null);

  result.except_r1 = await broadcast(A, "to_room", all, "not_r1", 7, r1);

  await ack(C, "room_leave_all", r2, r2);
  result.fetch_r2_after_leave_all = (await ack(C, "fetch_room", r2))[0];
  result.to_r2_after_leave_all = await broadcast(C, "to_room", r2, "r2_msg", 3);

  const D = open(url, { transports: ["websocket"] });
  await connected(D);
  const r4 = `r4-${tag}`;
  await ack(D, "join", r4);
  const dGone = once(D, "disconnect", 5000);
  await ack(A, "room_disconnect", r4);
  result.room_disconnect_reason = (await dGone)[0];
  result.fetch_r4_after_disconnect = (await ack(A, "fetch_room", r4))[0];
  result.a_still_connected = A.connected;

  await ack(C, "join", r3);
  result.fetch_r3 = (await ack(A, "fetch_room", r3))[0];
  C.disconnect();
  let members = [C.id];
  for (let i = 0; i < 40 && members.length; i++) {
    await sleep(50);
    members = (await ack(A, "fetch_room", r3))[0];
  }
  result.fetch_r3_after_disconnect = members;
  return result;
});
