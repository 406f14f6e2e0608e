// Namespaces: "/" and "/admin" over one Manager (one Engine.IO connection), the /admin
// middleware refusing a bad token with connect_error {message, data}, and an unknown
// namespace refused with "Invalid namespace" -- while "/" on the same connection works.
"use strict";

const { manager, open, connected, connectError, ack, run, sleep } = require("./lib");

run(async ({ url, args }) => {
  const transport = args[0] || "websocket";
  const opts = { transports: [transport], upgrade: false };
  const result = {};

  const m1 = manager(url, opts);
  const main = m1.socket("/");
  const admin = m1.socket("/admin", { auth: { token: "secret" } });
  await Promise.all([connected(main), connected(admin)]);
  result.same_engine = main.io.engine === admin.io.engine;
  result.engine_id = m1.engine.id;
  result.main_id = main.id;
  result.admin_id = admin.id;
  result.whoami = (await ack(admin, "whoami"))[0];
  result.main_echo = (await ack(main, "echo", "main"))[0];

  const m2 = manager(url, opts);
  const main2 = m2.socket("/");
  await connected(main2);
  const refused = m2.socket("/admin", { auth: { token: "wrong" } });
  result.refused = await connectError(refused);
  await sleep(100);
  result.refused_active = refused.active;
  result.refused_connected = refused.connected;
  const unknown = m2.socket("/nope");
  result.unknown = await connectError(unknown);
  result.main2_echo_after = (await ack(main2, "echo", "still"))[0];
  result.main2_engine_open = m2.engine.readyState;

  // refused without any other namespace on the connection
  const lone = open(url + "/admin", { ...opts, auth: {} });
  result.lone = await connectError(lone);
  return result;
});
