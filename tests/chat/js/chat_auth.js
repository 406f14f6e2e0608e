// Token auth, identity, private rooms and moderation through the official client.
// argv: url, then a JSON object of tokens {ana, ana2, bob, mod}.
"use strict";

const { ack, connected, next, open, run, sentinel } = require("./chat_lib");

run(async ({ url, args }) => {
  const tokens = JSON.parse(args[0]);
  const r = {};

  // Refused: no token, then a bad one.
  for (const [key, auth] of [["no_token", {}], ["bad_token", { token: "x.y.z" }]]) {
    const socket = open(url, { auth });
    r[key] = await new Promise((resolve) => {
      socket.on("connect_error", (err) => resolve({ message: err.message, data: err.data }));
      socket.on("connect", () => resolve({ connected: true }));
    });
  }

  const ana = await connected(open(url, { auth: { token: tokens.ana } }));
  const ana2 = await connected(open(url, { auth: { token: tokens.ana2 } }));
  const bob = await connected(open(url, { auth: { token: tokens.bob } }));
  const mod = await connected(open(url, { auth: { token: tokens.mod } }));
  r.welcome = ana.log[0].data;
  r.mod_welcome_role = mod.log[0].data.role;

  await ack(bob, "channel_join", "r");
  const bobMark = bob.log.length;
  r.join_ana = await ack(ana, "channel_join", "r");
  r.join_ana2 = await ack(ana2, "channel_join", "r");
  await ack(mod, "channel_join", "r");
  r.nick = await ack(ana, "nick", "Queen");
  r.private_join = await ack(bob, "channel_join", "staff-1");
  r.private_mod = await ack(mod, "channel_join", "staff-1");

  const sent = await ack(ana, "message", { channel: "r", message: "hello" });
  r.message_at_bob = await next(bob, "message", (m) => m.id === sent.id);
  r.delete_by_bob = await ack(bob, "delete_message", { channel: "r", id: sent.id });
  r.delete_by_mod = await ack(mod, "delete_message", { channel: "r", id: sent.id });
  r.deleted_at_bob = await next(bob, "message_deleted");

  r.kick = await ack(mod, "kick", { channel: "r", user_id: "u-ana" });
  r.kicked_ana = await next(ana, "kicked");
  r.kicked_ana2 = await next(ana2, "kicked");
  r.presence_kicked = await next(bob, "presence", (p) => p.event === "kicked");
  await sentinel(mod, "r", bob);
  r.presence_at_bob = bob.log
    .slice(bobMark)
    .filter((e) => e.event === "presence")
    .map((e) => [e.data.event, e.data.user_id]);

  r.ban = await ack(mod, "ban", { channel: "r", user_id: "u-bob", seconds: 60 });
  r.kicked_bob = await next(bob, "kicked");
  r.rejoin_bob = await ack(bob, "channel_join", "r");
  r.unban = await ack(mod, "unban", { channel: "r", user_id: "u-bob" });
  r.rejoin_after_unban = await ack(bob, "channel_join", "r");
  return r;
});
