// Through nginx with TLS (tests/integration/test_nginx.py). argv: mode (polling | websocket |
// upgrade), scenario (chat | address | origin), the CA file that signed nginx's certificate,
// and the local address to connect from (a loopback address other than nginx's own, so that
// the client's address differs from the proxy's).
//   chat:    join a room and send a message; the broadcast and the acks come back
//   address: the address the server saw, with a forged X-Forwarded-For sent by the client
//   origin:  (websocket) a page of the site's own origin connects, a foreign one is refused
"use strict";

const fs = require("node:fs");
const https = require("node:https");
const { open, connected, connectError, once, ack, run, sleep } = require("./lib");

const MODES = {
  polling: { transports: ["polling"], upgrade: false },
  websocket: { transports: ["websocket"] },
  upgrade: { transports: ["polling", "websocket"] },
};

run(async ({ url, args }) => {
  const [mode, scenario, caFile, localAddress] = args;
  const ca = fs.readFileSync(caFile);
  // The agent carries the CA and the local address for the polling requests; the websocket
  // transport takes them as options too.
  const agent = new https.Agent({ ca, localAddress });
  const tls = { ...MODES[mode], ca, agent, localAddress };

  // `listen` registers handlers before the connection opens (welcome comes right after it).
  async function connect(opts = {}, listen = () => {}) {
    const socket = open(url, { ...tls, ...opts });
    listen(socket);
    const engine = socket.io.engine;
    const upgraded = new Promise((resolve) => engine.on("upgrade", resolve));
    await connected(socket);
    if (mode === "upgrade") await Promise.race([upgraded, sleep(5000)]);
    return socket;
  }

  if (scenario === "chat") {
    let welcome;
    const socket = await connect({}, (s) => {
      welcome = once(s, "welcome");
    });
    const [info] = await welcome;
    const [joined] = await ack(socket, "channel_join", "lobby");
    const message = once(socket, "message");
    const [sent] = await ack(socket, "message", {
      channel: "lobby",
      message: "through nginx",
      client_id: `c-${mode}`,
    });
    const [received] = await message;
    return {
      transport: socket.io.engine.transport.name,
      welcome: info.name !== undefined,
      joined,
      sent,
      received,
    };
  }
  if (scenario === "address") {
    const socket = await connect({ extraHeaders: { "X-Forwarded-For": "203.0.113.7" } });
    const [seen] = await ack(socket, "address");
    return { ...seen, final: socket.io.engine.transport.name };
  }
  if (scenario === "origin") {
    const host = new URL(url).host;
    const own = await connect({ extraHeaders: { Origin: `https://${host}` } });
    const foreign = open(url, { ...tls, extraHeaders: { Origin: "https://evil.example" } });
    return { own: own.connected, foreign: await connectError(foreign) };
  }
  throw new Error(`unknown scenario ${scenario}`);
});
