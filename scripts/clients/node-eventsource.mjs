// Node clients: eventsource-parser over the raw bytes, then the `eventsource` npm package 5.x
// (a WHATWG-compliant EventSource) through a proxy that cuts its stream mid-way.
// eventsource 5 declares node >=22.12 in its engines field; these checks pass on node 20 too
// (npm ci only warns), which is what Debian-based CI machines here have.
// Usage: node scripts/clients/node-eventsource.mjs   (uses $SSE_URL/$SSE_LOG, else starts the server)
//
// How the stream is cut: a TCP proxy (lib.mjs) sits between the client and the server and ends
// the live connection, which the client cannot tell from the server closing it. We chose this
// over restarting the server (history is in memory, so nothing could be replayed) and over
// --max-clients (its "server is full" answer never carries an id, so Last-Event-ID is untested);
// the --max-clients answer gets its own check at the end, on a server started for it.
import http from "node:http";
import { EventSource } from "eventsource";
import { createParser } from "eventsource-parser";
import { check, cuttableProxy, finish, publish, serverUnderTest, sleep, startServer, waitFor } from "./lib.mjs";

const hardStop = setTimeout(() => { console.log("FAIL whole script took over 45 s"); process.exit(1); }, 45_000);
hardStop.unref();
const server = await serverUnderTest();
const results = { connected: "FAIL", frames: "FAIL", pushed: "FAIL", reconnect: "FAIL", hole: "FAIL", close: "FAIL", first_byte_ms: "n/a", latency_ms: "n/a" };

await rawStreamChecks();
await eventSourceChecks();
await replayHoleChecks();
await closeChecks();
await overloadChecks();
finish("node-eventsource", results, server);

/** Reads /sse/USER with node:http and feeds the bytes to eventsource-parser. */
async function rawStreamChecks() {
  const user = `raw-${process.pid}`;
  const seen = []; // what the parser reported, in order
  let raw = "";
  const parser = createParser({
    onEvent: (event) => seen.push({ kind: "event", at: performance.now(), ...event }),
    onRetry: (ms) => seen.push({ kind: "retry", ms }),
    onComment: (comment) => seen.push({ kind: "comment", comment }),
    onError: (error) => seen.push({ kind: "error", error: String(error) }),
  });
  const requestedAt = performance.now();
  const request = http.get(`${server.url}/sse/${user}`, { headers: { Accept: "text/event-stream" }, timeout: 5000 });
  const response = await new Promise((resolve, reject) => {
    request.on("response", resolve);
    request.on("error", reject);
    request.on("timeout", () => reject(new Error("no response in 5 s")));
  }).catch((error) => ({ error }));
  if (response.error) { check(`raw GET /sse/${user} (${response.error.message})`, false); return; }
  // A TextDecoder in stream mode keeps a UTF-8 character split across two reads intact.
  const decoder = new TextDecoder("utf-8");
  response.once("data", () => { results.first_byte_ms = (performance.now() - requestedAt).toFixed(1); });
  response.on("data", (chunk) => { const text = decoder.decode(chunk, { stream: true }); raw += text; parser.feed(text); });

  check("raw: status 200", response.statusCode === 200);
  check("raw: content-type text/event-stream; charset=utf-8", response.headers["content-type"] === "text/event-stream; charset=utf-8");
  check("raw: cache-control no-cache, no-transform", response.headers["cache-control"] === "no-cache, no-transform");
  check("raw: x-accel-buffering no", response.headers["x-accel-buffering"] === "no");

  const frames = () => seen.filter((s) => s.kind === "event" && s.id === undefined && s.event === undefined);
  await waitFor(() => frames().length >= 3, 3000);
  const published = await publish(server.url, `/send/${user}?event=chat`, "line1\nline2 ✓");
  const pushed = await waitFor(() => seen.find((s) => s.kind === "event" && s.id === String(published.json?.id)), 2000);
  request.destroy();

  check("raw: first bytes are ':\\n\\n' then 'retry: MS\\n\\n'", /^:\n\nretry: \d+\n\n/.test(raw));
  check("raw: parser saw the empty comment first", seen[0]?.kind === "comment" && seen[0].comment === "");
  const retryMs = Number(process.env.SSE_RETRY_MS || 500);
  check(`raw: parser saw retry second, ${retryMs}..${retryMs + 1000} ms (got ${seen[1]?.ms})`,
    seen[1]?.kind === "retry" && seen[1].ms >= retryMs && seen[1].ms <= retryMs + 1000);
  check("raw: no parse errors", !seen.some((s) => s.kind === "error"));
  const timer = frames().map((s) => JSON.parse(s.data));
  check(`raw: at least 3 timer frames (got ${timer.length})`, timer.length >= 3);
  check("raw: each frame is {userId, users, time} for us, time now", timer.length > 0 && timer.every((f) =>
    Object.keys(f).join() === "userId,users,time" && f.userId === user && f.users >= 1 && Math.abs(f.time - Date.now()) < 5000));
  check("raw: POST /send answered 202", published.status === 202);
  check("raw: pushed event has its id, event: chat and both data lines", pushed?.event === "chat" && pushed?.data === "line1\nline2 ✓");
  if (pushed) console.log(`     raw: the pushed event was parsed ${(pushed.at - published.sentAt).toFixed(1)} ms after the POST was sent`);
}

/** The eventsource package through the cuttable proxy: frames, pushes, retry, Last-Event-ID. */
async function eventSourceChecks() {
  const user = `node-${process.pid}`;
  const proxy = await cuttableProxy(server.url);
  // The package accepts a fetch implementation; this one records the headers of each attempt.
  const attempts = [];
  const recordingFetch = (url, init) => {
    attempts.push({ at: performance.now(), lastEventId: new Headers(init?.headers).get("last-event-id") });
    return fetch(url, init);
  };
  const source = new EventSource(`${proxy.url}/sse/${user}`, { fetch: recordingFetch });
  const log = { opens: 0, errors: 0, frames: [], chats: [] };
  source.addEventListener("open", () => log.opens++);
  source.addEventListener("error", () => log.errors++);
  source.addEventListener("message", (e) => log.frames.push(JSON.parse(e.data)));
  source.addEventListener("chat", (e) => log.chats.push({ id: e.lastEventId, data: e.data, at: performance.now() }));

  check("eventsource: open", await waitFor(() => log.opens === 1, 3000));
  check("eventsource: timer frames arrive as message events",
    await waitFor(() => log.frames.length >= 2 && log.frames.every((f) => f.userId === user), 3000));
  const first = await publish(server.url, `/send/${user}?event=chat`, "before the cut");
  const got = await waitFor(() => log.chats.find((c) => c.data === "before the cut"), 2000);
  check("eventsource: chat event arrives with lastEventId = the published id", got?.id === String(first.json?.id));
  results.connected = log.opens === 1 ? "ok" : "FAIL";
  results.frames = log.frames.length >= 2 ? "ok" : "FAIL";
  results.pushed = got?.id === String(first.json?.id) ? "ok" : "FAIL";
  if (got) results.latency_ms = (got.at - first.sentAt).toFixed(1);

  // Cut the stream, publish while the client is away, then let it back in.
  const retryMs = proxy.connections.at(-1)?.retryMs;
  const cutAt = performance.now();
  proxy.cut();
  check("eventsource: the cut is reported as an error event", await waitFor(() => log.errors >= 1, 2000));
  check("eventsource: readyState is CONNECTING (it will retry by itself)", source.readyState === EventSource.CONNECTING);
  const missed = await publish(server.url, `/send/${user}?event=chat`, "while cut");
  await sleep(100);
  proxy.resume();
  const replayed = await waitFor(() => log.chats.find((c) => c.data === "while cut"), (retryMs ?? 3000) + 3000);
  const again = proxy.connections.at(-1);
  const delay = again.acceptedAt - cutAt;
  check(`eventsource: reconnected after ${delay.toFixed(0)} ms, honouring retry: ${retryMs}`,
    retryMs > 0 && delay >= retryMs - 20 && delay <= retryMs + 1000);
  check(`eventsource: reconnect sent Last-Event-ID: ${first.json?.id} (fetch saw ${attempts.at(-1)?.lastEventId})`,
    attempts.length === 2 && attempts[1].lastEventId === String(first.json?.id));
  check(`eventsource: the header reached the wire (proxy saw ${again.lastEventId})`, again.lastEventId === String(first.json?.id));
  check("eventsource: the event published while cut is replayed with its id", replayed?.id === String(missed.json?.id));
  results.reconnect = replayed?.id === String(missed.json?.id) && again.lastEventId === String(first.json?.id) ? "ok" : "FAIL";
  source.close();
  proxy.close();
}

/**
 * The replay hole (issue 11): a client that has seen only timer frames has no event id of its
 * own. Every stream starts with an id-only block ("id: N" and a blank line, WHATWG HTML §9.2.6:
 * it sets the last event id without dispatching anything), so after a cut the client still
 * reconnects with Last-Event-ID and gets what was published while it was away. eventsource 4.x
 * ignored id-only blocks; 5.x keeps them, as the spec says.
 */
async function replayHoleChecks() {
  const user = `node-hole-${process.pid}`;
  const proxy = await cuttableProxy(server.url);
  const attempts = [];
  const recordingFetch = (url, init) => {
    attempts.push({ lastEventId: new Headers(init?.headers).get("last-event-id") });
    return fetch(url, init);
  };
  const source = new EventSource(`${proxy.url}/sse/${user}`, { fetch: recordingFetch });
  const log = { opens: 0, errors: 0, frames: [], chats: [] };
  source.addEventListener("open", () => log.opens++);
  source.addEventListener("error", () => log.errors++);
  source.addEventListener("message", (e) => log.frames.push({ lastEventId: e.lastEventId, frame: JSON.parse(e.data) }));
  source.addEventListener("chat", (e) => log.chats.push({ id: e.lastEventId, data: e.data }));
  try {
    const framesSeen = await waitFor(() => log.opens === 1 && log.frames.length >= 2, 3000);
    check("hole: connected and received timer frames only", framesSeen && log.chats.length === 0 &&
      log.frames.every(({ frame }) => Object.keys(frame).join() === "userId,users,time"));
    // The id the stream started with: the first id: line, before any event was sent.
    const startId = proxy.connections[0]?.received.match(/^retry: \d+\n\nid: ([^\n]+)\n\n/m)?.[1];
    check(`hole: the stream opens with an id-only block after retry: (id ${startId})`, startId !== undefined);
    check(`hole: timer frames show it as lastEventId (${log.frames[0]?.lastEventId})`,
      startId !== undefined && log.frames.every((f) => f.lastEventId === startId));

    proxy.cut();
    await waitFor(() => log.errors >= 1, 2000);
    const missed = await publish(server.url, `/send/${user}?event=chat`, "published during the outage");
    check(`hole: the publish during the outage reached nobody (${missed.body})`, missed.json?.delivered === 0);
    proxy.resume();
    const retryMs = proxy.connections[0]?.retryMs ?? 3000;
    const arrived = await waitFor(() => log.chats.find((c) => c.data === "published during the outage"), retryMs + 3000);
    check(`hole: the reconnect sent Last-Event-ID: ${startId} (fetch saw ${attempts[1]?.lastEventId})`,
      startId !== undefined && attempts.length >= 2 && attempts[1].lastEventId === startId);
    check(`hole: the event published during the outage arrived after the reconnect (id ${arrived?.id})`,
      arrived !== null && arrived.id === String(missed.json?.id));
    results.hole = arrived ? "ok" : "FAIL";
  } finally {
    source.close();
    proxy.close();
  }
}

/** A direct connection closed by the client: the server must log `close user=...` within 2 s. */
async function closeChecks() {
  if (!server.hasLog) { console.log("skip close detection: no server log ($SSE_LOG unset)"); results.close = "n/a"; return; }
  const user = `node-close-${process.pid}`;
  const source = new EventSource(`${server.url}/sse/${user}`);
  const opened = await waitFor(() => source.readyState === EventSource.OPEN, 3000);
  const since = server.logLines();
  const closedAt = performance.now();
  source.close();
  const logged = opened && (await server.closeLogged(user, since, 2000));
  check(`eventsource: server logged close user="${user}" ${(performance.now() - closedAt).toFixed(0)} ms after close()`, logged);
  results.close = logged ? "ok" : "FAIL";
}

/** --max-clients 1 and the slot taken: the client is told "retry: MS" and keeps trying until it fits. */
async function overloadChecks() {
  const own = await startServer(undefined, "--port 0 --interval 200ms --retry 300ms --max-clients 1");
  const holder = http.get(`${own.url}/sse/holder`);
  holder.on("error", () => {});
  await new Promise((resolve) => holder.on("response", resolve));
  // Through the proxy only to read the retry: value of each answer the client got.
  const proxy = await cuttableProxy(own.url);
  try {
    const full = await rawBody(`${own.url}/sse/too-many`, 1000);
    check(`overload: a full server answers retry: and ": server is full, retry later" (${JSON.stringify(full)})`,
      /^retry: \d+\n\n?: server is full, retry later\n\n$/.test(full));

    const source = new EventSource(`${proxy.url}/sse/node-overload`);
    let frames = 0;
    source.addEventListener("message", () => frames++);
    const retried = await waitFor(() => proxy.connections.length >= 2, 8000);
    const [first, second] = proxy.connections;
    const gap = retried ? second.acceptedAt - first.acceptedAt : NaN;
    check(`overload: eventsource came back ${gap.toFixed(0)} ms later, honouring retry: ${first.retryMs}`,
      retried && first.retryMs > 0 && gap >= first.retryMs - 20 && gap <= first.retryMs + 1000 && frames === 0);
    holder.destroy();
    const fits = await waitFor(() => frames > 0, 8000);
    check("overload: once the slot is free, the client gets in by itself and receives frames", fits);
    source.close();
  } finally {
    holder.destroy();
    proxy.close();
    own.stop();
  }
}

/** The whole body of a response that ends by itself (or what arrived within ms). */
function rawBody(url, ms) {
  return new Promise((resolve) => {
    let body = "";
    const request = http.get(url, (response) => {
      response.setEncoding("utf8");
      response.on("data", (chunk) => (body += chunk));
      response.on("end", () => resolve(body));
    });
    request.on("error", () => resolve(body));
    setTimeout(() => { request.destroy(); resolve(body); }, ms);
  });
}
