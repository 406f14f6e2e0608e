// Official socket.io-client: one client's transport is cut (by the server, or destroyed on the
// client side) while another keeps sending; prints what the cut client received.
// usage: node recovery.js URL server|client
const { io } = require("socket.io-client");
const [url, cut] = process.argv.slice(2);
const options = { transports: ["websocket"], reconnectionDelay: 100, reconnectionDelayMax: 200 };
const sender = io(url, options);
const victim = io(url, options);
const received = [];
victim.on("said", (text) => received.push(text));

const connected = (socket) => new Promise((resolve) => socket.once("connect", resolve));
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

(async () => {
  await Promise.all([connected(sender), connected(victim)]);
  await sender.emitWithAck("join", "r");
  await victim.emitWithAck("join", "r");
  const before = await victim.emitWithAck("whoami");
  sender.emit("say", "r", "m0");
  await pause(100);
  const gone = new Promise((resolve) => victim.once("disconnect", resolve));
  if (cut === "server") {
    victim.emit("drop");
  } else {
    victim.io.engine.transport.ws._socket.destroy();
  }
  const reason = await gone;
  for (let i = 1; i <= 20; i++) sender.emit("say", "r", `m${i}`);
  await sender.emitWithAck("whoami"); // the sends above have been handled
  await connected(victim);
  const after = await victim.emitWithAck("whoami");
  sender.emit("say", "r", "m21");
  await pause(300);
  console.log(JSON.stringify({ reason, recovered: victim.recovered, before, after, received }));
  process.exit(0);
})();
setTimeout(() => {
  console.log(JSON.stringify({ error: "timeout", received }));
  process.exit(1);
}, 10000);
