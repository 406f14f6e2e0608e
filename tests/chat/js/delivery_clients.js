// Chat members on the official client (socket.io-client 4.8) for the delivery fault tests
// (tests/chat/test_delivery_faults.py): reconnection on, sends with `retries`/`ackTimeout`
// and a client_id, and every message received recorded by id, per room, in arrival order.
//
// A member does what a careful chat client does: after a reconnect that the server recovered
// (`socket.recovered`) it has nothing to do; otherwise it joins its rooms again and fills the
// gap with `history {channel, after: last id}` page by page, holding back live messages of
// that room meanwhile and dropping those the history already gave (counted as `overlap`: a
// message is stored before it is broadcast, so its broadcast may also come a little after
// the history page that held it). An id the server sent live twice is a duplicate (`dups`);
// the test requires none.
//
// Commands: one JSON object per line on stdin, each answered by one JSON line on stdout,
// {"re": <its id>, ...}. See `handle` below.
"use strict";

const path = require("node:path");
const readline = require("node:readline");
const { io } = require(path.join(__dirname, "..", "..", "..", "node_modules", "socket.io-client"));

const HISTORY_PAGE = 200;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A seeded generator (mulberry32): the same seed, the same choices.
function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
let random = seeded(1);
const pick = (items) => items[Math.floor(random() * items.length)];

class Member {
  constructor(index, spec, opts) {
    this.index = index;
    this.name = spec.name ?? `m${index}`;
    this.rooms = spec.rooms;
    this.sends = Boolean(spec.sends);
    this.seq = {};
    this.seen = {};
    this.fromHistory = {}; // ids first had from `history`
    this.buffer = {};
    this.catching = new Set(); // rooms whose live messages wait for the gap to be filled
    this.needCatchUp = new Set(); // rooms whose gap is not filled yet
    this.caughtUp = []; // resolvers waiting for a room to be caught up
    for (const room of this.rooms) {
      this.seq[room] = [];
      this.seen[room] = new Set();
      this.fromHistory[room] = new Set();
      this.buffer[room] = [];
    }
    this.acked = {}; // client_id -> id
    this.outstanding = 0;
    this.sent = 0;
    this.epoch = 0;
    this.joined = false;
    this.stats = {
      connects: 0,
      disconnects: 0,
      recovered: 0,
      fresh: 0,
      destroyed: 0,
      tries: 0, // "message" packets sent, retries by the client included
      resends: 0, // sends repeated by this script (tries exhausted, or not_in_room)
      dups: 0,
      overlap: 0,
      foreign: 0,
      errors: [],
    };
    this.socket = io(spec.url, {
      transports: ["websocket"],
      forceNew: true,
      auth: { name: this.name },
      reconnectionDelay: opts.reconnectionDelay ?? 100,
      reconnectionDelayMax: opts.reconnectionDelayMax ?? 400,
      randomizationFactor: 0.5,
      timeout: 5000,
      retries: opts.retries ?? 3,
      ackTimeout: opts.ackTimeout ?? 5000,
    });
    this.socket.on("connect", () => this.onConnect());
    this.socket.on("disconnect", () => {
      this.stats.disconnects++;
    });
    this.socket.on("message", (m) => this.onMessage(m));
    this.socket.onAnyOutgoing((event) => {
      if (event === "message") this.stats.tries++;
    });
  }

  error(what) {
    if (this.stats.errors.length < 20) this.stats.errors.push(what);
  }

  ack(event, arg, ms = 10000) {
    return this.socket.timeout(ms).emitWithAck(event, arg);
  }

  async start() {
    if (!this.socket.connected) await new Promise((resolve) => this.socket.once("connect", resolve));
    for (const room of this.rooms) {
      const reply = await this.ack("channel_join", room);
      if (!reply.ok) throw new Error(`join ${room}: ${JSON.stringify(reply)}`);
    }
    this.joined = true;
  }

  onConnect() {
    this.epoch++;
    this.stats.connects++;
    if (this.stats.connects === 1) return; // the first connection: `start` joins
    if (this.socket.recovered) {
      this.stats.recovered++;
    } else {
      this.stats.fresh++;
      this.rooms.forEach((room) => this.needCatchUp.add(room));
    }
    // Synchronously: the packets replayed after CONNECT are handled after this.
    for (const room of this.needCatchUp) {
      this.catching.add(room);
      this.catchUp(room, this.epoch);
    }
  }

  async catchUp(room, epoch) {
    try {
      const joined = await this.ack("channel_join", room);
      if (epoch !== this.epoch) return; // a newer connection does it again
      if (!joined.ok) throw new Error(`rejoin ${room}: ${JSON.stringify(joined)}`);
      let after = this.seq[room].length ? this.seq[room][this.seq[room].length - 1] : 0;
      for (let page = 0; page < 1000; page++) {
        const got = await this.ack("history", { channel: room, after, limit: HISTORY_PAGE });
        if (epoch !== this.epoch) return;
        if (!got.ok) throw new Error(`history ${room}: ${JSON.stringify(got)}`);
        for (const m of got.messages) this.append(room, m.id, "history");
        if (got.messages.length < HISTORY_PAGE) break;
        after = got.messages[got.messages.length - 1].id;
      }
      for (const id of this.buffer[room]) this.append(room, id, "live");
      this.buffer[room] = [];
      this.catching.delete(room);
      this.needCatchUp.delete(room);
      const waiting = this.caughtUp;
      this.caughtUp = [];
      waiting.forEach((resolve) => resolve());
    } catch (err) {
      // Disconnected meanwhile (the next connection catches up), or a real failure.
      if (epoch === this.epoch && this.socket.connected) this.error(`catch-up ${room}: ${err}`);
    }
  }

  onMessage(m) {
    const room = m && m.channel;
    if (!(room in this.seq)) {
      this.stats.foreign++;
      return;
    }
    if (this.catching.has(room)) this.buffer[room].push(m.id);
    else this.append(room, m.id, "live");
  }

  append(room, id, source) {
    if (this.seen[room].has(id)) {
      if (source === "live" && !this.fromHistory[room].has(id)) this.stats.dups++;
      else this.stats.overlap++;
      return;
    }
    this.seen[room].add(id);
    if (source === "history") this.fromHistory[room].add(id);
    this.seq[room].push(id);
  }

  // Send until the server acknowledges it: the client's own retries first, then again
  // (same client_id) if those ran out or the socket was not back in the room yet.
  async send(room, text, clientId) {
    this.outstanding++;
    try {
      for (let attempt = 0; attempt < 200; attempt++) {
        if (attempt > 0) this.stats.resends++;
        const payload = { channel: room, message: text, client_id: clientId };
        const [err, answer] = await new Promise((resolve) =>
          this.socket.emit("message", payload, (e, a) => resolve([e, a])),
        );
        if (err) {
          await sleep(100);
          continue;
        }
        if (answer.ok) {
          if (clientId in this.acked && this.acked[clientId] !== answer.id) {
            this.error(`${clientId} acked as ${this.acked[clientId]} and ${answer.id}`);
          }
          this.acked[clientId] = answer.id;
          return answer;
        }
        const code = answer.error && answer.error.code;
        if (code === "not_in_room" && this.needCatchUp.has(room)) {
          await new Promise((resolve) => this.caughtUp.push(resolve));
        } else if (code === "rate_limited" || code === "unavailable") {
          await sleep(300);
        } else {
          this.error(`send ${clientId}: ${JSON.stringify(answer)}`);
          return answer;
        }
      }
      this.error(`send ${clientId}: gave up`);
      return null;
    } finally {
      this.outstanding--;
    }
  }

  async stream(intervalMs) {
    while (streaming) {
      const room = pick(this.rooms);
      const n = this.sent++;
      await this.send(room, `${this.name} ${n}`, `${this.name}-${n}`);
      await sleep(intervalMs * (0.5 + random()));
    }
  }

  destroy() {
    const transport = this.socket.io.engine && this.socket.io.engine.transport;
    const raw = transport && transport.ws && transport.ws._socket;
    if (!this.socket.connected || !raw) return false;
    raw.destroy();
    this.stats.destroyed++;
    return true;
  }

  state() {
    const counts = {};
    for (const room of this.rooms) counts[room] = this.seq[room].length;
    return {
      name: this.name,
      connected: this.socket.connected,
      counts,
      catching: [...this.catching],
      outstanding: this.outstanding,
      stats: this.stats,
    };
  }
}

let members = [];
let streaming = false;
let chaos = null;

async function untilDrained(ms) {
  const deadline = Date.now() + ms;
  while (members.some((m) => m.outstanding > 0)) {
    if (Date.now() > deadline) throw new Error("sends still unacknowledged");
    await sleep(20);
  }
}

function startChaos([low, high]) {
  const tick = () => {
    const live = members.filter((m) => m.joined && m.socket.connected);
    if (live.length) pick(live).destroy();
    chaos = setTimeout(tick, low + random() * (high - low));
  };
  chaos = setTimeout(tick, low);
}

async function handle(cmd) {
  switch (cmd.cmd) {
    case "start": {
      random = seeded(cmd.seed ?? 1);
      members = cmd.members.map((spec, i) => new Member(i, spec, cmd.opts ?? {}));
      await Promise.all(members.map((m) => m.start()));
      return { members: members.length };
    }
    case "stream": {
      streaming = true;
      members.filter((m) => m.sends).forEach((m) => m.stream(cmd.interval_ms));
      return {};
    }
    case "stop_stream": {
      streaming = false;
      await untilDrained(cmd.timeout_ms ?? 60000);
      return {};
    }
    case "chaos": {
      if (chaos !== null) clearTimeout(chaos);
      chaos = null;
      if (cmd.every_ms) startChaos(cmd.every_ms);
      return {};
    }
    case "send": {
      const reply = await members[cmd.member].send(cmd.room, cmd.text, cmd.client_id);
      return { reply, tries: members[cmd.member].stats.tries };
    }
    case "destroy":
      return { destroyed: members[cmd.member].destroy() };
    case "state":
      return { members: members.map((m) => m.state()) };
    case "report":
      return {
        members: members.map((m) => ({ ...m.state(), seq: m.seq, acked: m.acked })),
      };
    case "quit":
      members.forEach((m) => m.socket.disconnect());
      setTimeout(() => process.exit(0), 50);
      return {};
    default:
      throw new Error(`unknown command ${cmd.cmd}`);
  }
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  handle(cmd).then(
    (result) => process.stdout.write(`${JSON.stringify({ re: cmd.id, ...result })}\n`),
    (err) => process.stdout.write(`${JSON.stringify({ re: cmd.id, error: String(err.stack || err) })}\n`),
  );
});

// Never outlive the test that started it.
setTimeout(() => process.exit(3), Number(process.argv[2] || 300) * 1000).unref();
process.stdin.on("end", () => process.exit(0));
