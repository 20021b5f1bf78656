// Headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core) on the demo page:
// connect, frames, user count, send from the form, disconnect, replay on Reconnect, the
// browser's own reconnect with the Last-Event-ID header after the stream is cut, and the replay
// hole (a tab that saw only timer frames still resumes, by both paths); then, on a server of its
// own with --history 3, the gap event, and the shutdown event on SIGTERM; and on servers with a
// subscribe secret, the page getting its token from POST /token/NAME (row browser-token), and
// saying so when it cannot.
// Usage: node scripts/clients/browser.mjs   (uses $SSE_URL/$SSE_LOG, else starts the server)
// Checks text, not pixels; the screenshot (target/clients/demo.png) is for people.
import fs from "node:fs";
import path from "node:path";
import { ROOT, check, cuttableProxy, finish, publish, serverUnderTest, startServer, waitFor, withChromium } from "./lib.mjs";

const hardStop = setTimeout(() => { console.log("FAIL whole script took over 60 s"); process.exit(1); }, 60_000);
hardStop.unref();
const server = await serverUnderTest();
const results = { connected: "FAIL", frames: "FAIL", pushed: "FAIL", reconnect: "FAIL", hole: "FAIL", close: "FAIL", first_byte_ms: "n/a", latency_ms: "n/a" };

let context; // the Chromium every check below opens its pages in
await withChromium(async (launched) => {
  context = launched;
  await demoPageChecks();
  await browserReconnectChecks();
  await replayHoleChecks();
  await gapAndShutdownChecks();
  await tokenChecks();
});
finish("browser", results, server);

function text(page, selector) {
  return page.locator(selector).innerText();
}

/** Clicks `button` inside the page and resolves to the ms until `watched` shows `wanted` (or null). */
function clickAndTime(page, button, watched, wanted) {
  return page.evaluate(([button, watched, wanted]) => new Promise((resolve) => {
    const target = document.querySelector(watched);
    const started = performance.now();
    new MutationObserver(() => {
      if (target.textContent.includes(wanted)) resolve(performance.now() - started);
    }).observe(target, { childList: true, subtree: true, characterData: true });
    setTimeout(() => resolve(null), 3000);
    document.querySelector(button).click();
  }), [button, watched, wanted]);
}

/** Connect, watch frames, send from the form, disconnect, publish meanwhile, Reconnect. */
async function demoPageChecks() {
  const user = `browser-${process.pid}`;
  const page = await context.newPage();
  const sseRequests = [];
  page.on("request", (request) => { if (request.url().includes("/sse/")) sseRequests.push(request.url()); });
  await page.goto(server.url + "/");
  check("page: GET / is the demo page", (await page.title()) === "sse-server demo");

  await page.fill("#name", user);
  const openedAfter = await clickAndTime(page, "#connect", "#state", "open");
  if (openedAfter !== null) results.first_byte_ms = openedAfter.toFixed(1);
  const open = await waitFor(async () => (await text(page, "#state")) === "open", 5000);
  check("page: state becomes open", open);
  const frames = await waitFor(async () => (await text(page, "#frames")).includes(`"userId":"${user}"`), 5000);
  check("page: timer frames for us appear in #frames", frames);
  const users = Number(await text(page, "#users"));
  check(`page: #users shows the user count (${users})`, users >= 1);
  results.connected = open ? "ok" : "FAIL";
  results.frames = frames && users >= 1 ? "ok" : "FAIL";

  // Send to ourselves from the form; time from the click to the event being on screen.
  await page.fill("#target", user);
  await page.fill("#event", "chat");
  await page.fill("#message", "hello from the page");
  const latency = await clickAndTime(page, "#send", "#events", "hello from the page");
  const line = await page.locator("#events li", { hasText: "hello from the page" }).first().innerText().catch(() => "");
  const sentId = line.match(/^#(\S+) chat: hello from the page$/)?.[1];
  check(`page: the message comes back as '#ID chat: ...' (${line})`, sentId !== undefined);
  check(`page: #send-result says delivered to 1 (${await text(page, "#send-result")})`,
    /^sent #\S+, delivered to 1 connection/.test(await text(page, "#send-result")));
  results.pushed = sentId !== undefined ? "ok" : "FAIL";
  if (latency !== null) results.latency_ms = latency.toFixed(1);

  // Disconnect: the server must notice the browser closed the stream.
  const since = server.logLines();
  await page.click("#disconnect");
  check("page: state becomes closed", (await text(page, "#state")) === "closed");
  if (server.hasLog) {
    const logged = await server.closeLogged(user, since, 2000);
    check(`page: server logged close user="${user}" within 2 s of Disconnect`, logged);
    results.close = logged ? "ok" : "FAIL";
  } else {
    results.close = "n/a";
  }

  // Publish while away, then Reconnect: the page passes ?lastEventId= and gets it replayed.
  const missed = await publish(server.url, `/send/${user}?event=chat`, "sent while you were away");
  check(`page: publish while away delivers to nobody (${missed.body})`, missed.json?.delivered === 0);
  await page.click("#reconnect");
  const replayed = await waitFor(async () => (await text(page, "#events")).includes(`#${missed.json?.id} chat: sent while you were away`), 5000);
  check(`page: Reconnect asked for ?lastEventId=${sentId} (${sseRequests.at(-1)})`, sseRequests.at(-1)?.endsWith(`?lastEventId=${sentId}`));
  check("page: the message sent while away is replayed with its id", replayed);
  const reconnectedByPage = replayed && sseRequests.at(-1)?.endsWith(`?lastEventId=${sentId}`);

  fs.mkdirSync(path.join(ROOT, "target/clients"), { recursive: true });
  await page.screenshot({ path: path.join(ROOT, "target/clients/demo.png"), fullPage: true });
  await page.close();
  results.reconnect = reconnectedByPage ? "ok" : "FAIL";
}

/** The browser reconnects by itself when the stream breaks, sending the Last-Event-ID header. */
async function browserReconnectChecks() {
  const user = `browser-auto-${process.pid}`;
  const proxy = await cuttableProxy(server.url);
  const page = await context.newPage();
  try {
    await page.goto(proxy.url + "/");
    await page.fill("#name", user);
    await page.click("#connect");
    await waitFor(async () => (await text(page, "#state")) === "open", 5000);
    const first = await publish(server.url, `/send/${user}?event=chat`, "before the cut");
    await waitFor(async () => (await text(page, "#events")).includes("before the cut"), 3000);

    proxy.cut();
    const connecting = await waitFor(async () => (await text(page, "#state")) === "connecting", 3000);
    check("auto: after the cut the page shows connecting (the browser retries)", connecting);
    const missed = await publish(server.url, `/send/${user}?event=chat`, "sent during the cut");
    proxy.resume();
    const replayed = await waitFor(async () => (await text(page, "#events")).includes(`#${missed.json?.id} chat: sent during the cut`), 5000);
    const header = proxy.connections.filter((c) => c.head.startsWith("GET /sse/")).at(-1)?.lastEventId;
    check(`auto: Chromium reconnected with Last-Event-ID: ${first.json?.id} (sent ${header})`, header === String(first.json?.id));
    check("auto: the message sent during the cut is replayed", replayed);
    check("auto: state is open again", (await text(page, "#state")) === "open");
    if (!(replayed && header === String(first.json?.id))) results.reconnect = "FAIL";
  } finally {
    await page.close();
    proxy.close();
  }
}

/**
 * The replay hole (issue 11), with Chromium's own EventSource: a tab that has seen only timer
 * frames still knows an id, because every stream starts with an id-only block ("id: N" and a
 * blank line, WHATWG HTML §9.2.6). First the browser's automatic reconnect after a cut must
 * send it as Last-Event-ID; then the demo page's own Reconnect button (a new EventSource, which
 * passes ?lastEventId=) must resume from it too. Either way the event published while the tab
 * was away arrives.
 */
async function replayHoleChecks() {
  const proxy = await cuttableProxy(server.url);
  const page = await context.newPage();
  const user = `browser-hole-${process.pid}`;
  const sseRequests = [];
  page.on("request", (request) => { if (request.url().includes("/sse/")) sseRequests.push(request.url()); });
  let auto = false;
  let byPage = false;
  try {
    await page.goto(proxy.url + "/");
    await page.fill("#name", user);
    await page.click("#connect");
    const framesSeen = await waitFor(async () => (await text(page, "#frames")).includes(`"userId":"${user}"`), 5000);
    const startId = proxy.connections.find((c) => c.head.startsWith("GET /sse/"))
      ?.received.match(/^retry: \d+\n\nid: ([^\n]+)\n\n/m)?.[1];
    check("hole: timer frames arrive and no pushed event", framesSeen && (await page.locator("#events li").count()) === 0);
    check(`hole: the stream opens with an id-only block after retry: (id ${startId})`, startId !== undefined);
    check(`hole: the page shows that id as its last event id (${await text(page, "#last-id")})`,
      startId !== undefined && (await text(page, "#last-id")) === startId);

    // 1. The browser's own reconnect after a cut.
    proxy.cut();
    await waitFor(async () => (await text(page, "#state")) === "connecting", 3000);
    const missed = await publish(server.url, `/send/${user}?event=chat`, "published during the outage");
    check(`hole: the publish during the outage reached nobody (${missed.body})`, missed.json?.delivered === 0);
    proxy.resume();
    auto = await waitFor(async () => (await text(page, "#events")).includes(`#${missed.json?.id} chat: published during the outage`), 5000);
    const header = proxy.connections.filter((c) => c.head.startsWith("GET /sse/")).at(-1)?.lastEventId;
    check(`hole: Chromium reconnected with Last-Event-ID: ${startId} (sent ${header})`, startId !== undefined && header === startId);
    check("hole: the event published during the outage arrived after the automatic reconnect", auto);

    // 2. The page's own path: Disconnect, a timer frame's worth of nothing, Reconnect.
    //    Use a second user that has never been sent anything, so only the id-only block can
    //    give the page an id to resume from.
    const quiet = `${user}-page`;
    await page.click("#disconnect");
    await page.fill("#name", quiet);
    await page.click("#connect");
    await waitFor(async () => (await text(page, "#frames")).includes(`"userId":"${quiet}"`), 5000);
    const pageId = await text(page, "#last-id");
    await page.click("#disconnect");
    // Publish only once the server has seen the tab go, or the event would still reach it.
    const gone = await waitFor(async () => !(await (await fetch(server.url + "/users")).text()).includes(`"${quiet}"`), 3000);
    check("hole: the server saw the page disconnect", gone);
    const away = await publish(server.url, `/send/${quiet}?event=chat`, "published while disconnected");
    await page.click("#reconnect");
    byPage = await waitFor(async () => (await text(page, "#events")).includes(`#${away.json?.id} chat: published while disconnected`), 5000);
    check(`hole: Reconnect asked for ?lastEventId=${pageId} (${sseRequests.at(-1)})`,
      pageId !== "none" && sseRequests.at(-1)?.endsWith(`?lastEventId=${encodeURIComponent(pageId)}`));
    check("hole: the event published while disconnected arrived after the page's Reconnect", byPage);
  } finally {
    results.hole = auto && byPage ? "ok" : "FAIL";
    await page.close();
    proxy.close();
  }
}

/**
 * A server of our own keeping only 3 events: coming back after 5 missed ones shows a gap.
 * SIGTERM then shows the shutdown event; that needs the binary with the ctrlc feature
 * (scripts/clients.sh builds it into target/ctrlc), and its absence counts as a failure.
 */
async function gapAndShutdownChecks() {
  const ctrlcBin = process.env.SSE_CTRLC_BIN || path.join(ROOT, "target/ctrlc/release/sse-server");
  const graceful = fs.existsSync(ctrlcBin);
  const own = await startServer(graceful ? ctrlcBin : undefined, "--port 0 --interval 0 --history 3 --retry 500ms");
  const user = `browser-gap-${process.pid}`;
  const page = await context.newPage();
  try {
    await page.goto(own.url + "/");
    await page.fill("#name", user);
    await page.click("#connect");
    await waitFor(async () => (await text(page, "#state")) === "open", 5000);
    check("gap: with --interval 0, #users comes from GET /users", await waitFor(async () => (await text(page, "#users")) === "1", 3000));
    const first = await publish(own.url, `/send/${user}`, "first");
    await waitFor(async () => (await text(page, "#events")).includes(`#${first.json?.id} message: first`), 3000);
    await page.click("#disconnect");
    // Publish only once the server has seen the tab go, or "missed 1" would still reach it.
    await waitFor(async () => !(await (await fetch(own.url + "/users")).text()).includes(`"${user}"`), 3000);
    const missed = [];
    for (let i = 1; i <= 5; i++) missed.push(await publish(own.url, `/send/${user}?event=chat`, `missed ${i}`));
    const last = missed.at(-1);
    await page.click("#reconnect");
    // History keeps 3 events: "missed 1" and "missed 2" are gone, so the gap runs from the
    // page's last id up to and including the id of "missed 2" (ids are ms-seq strings).
    const after = first.json?.id;
    const to = missed[1].json?.id;
    const wanted = `#${to} gap: events after ${after} up to ${to} may be lost`;
    const gap = await waitFor(async () => (await text(page, "#events")).includes(wanted), 3000);
    check(`gap: the page shows '${wanted}' (${(await text(page, "#events")).split("\n").find((l) => l.includes("gap:"))})`, gap);
    check("gap: the 3 retained events follow it", (await text(page, "#events")).includes(`#${last.json?.id} chat: missed 5`));
    await page.screenshot({ path: path.join(ROOT, "target/clients/demo-gap.png"), fullPage: true });

    if (!graceful) {
      check(`shutdown: ${ctrlcBin} exists (cargo build --release --features ctrlc --target-dir target/ctrlc)`, false);
      return;
    }
    process.kill(own.pid, "SIGTERM");
    const shown = await waitFor(async () => (await text(page, "#events")).includes("shutdown: server is shutting down"), 5000);
    check("shutdown: on SIGTERM the page shows the shutdown event", shown);
    check("shutdown: the page closed its EventSource (no retrying)", (await text(page, "#state")) === "closed");
    const exit = await Promise.race([own.exited, new Promise((resolve) => setTimeout(() => resolve(null), 5000))]);
    check(`shutdown: the server exited 0 (${JSON.stringify(exit)})`, exit?.code === 0);
    check("shutdown: the server logged 'shutdown closed=1'", own.logText().includes("shutdown closed=1"));
  } finally {
    await page.close();
    own.stop();
  }
}

/**
 * With a subscribe secret the page fetches a token from POST /token/NAME (the browser is on
 * loopback), connects with ?token=, and resumes with a fresh token after Disconnect. With a
 * publish token as well, the page may not mint one: it says so, and the stream is refused.
 * No token may appear in the server log. Prints its own RESULT row, browser-token.
 */
async function tokenChecks() {
  const row = { connected: "FAIL", frames: "FAIL", pushed: "FAIL", reconnect: "FAIL", close: "n/a", first_byte_ms: "n/a", latency_ms: "n/a" };
  const secret = `browser-secret-${process.pid}-0123456789abcdef0123456789`;
  const own = await startServer(undefined, "--port 0 --interval 200ms --retry 500ms", { SSE_SUBSCRIBE_SECRET: secret });
  const user = `browser-token-${process.pid}`;
  const page = await context.newPage();
  const sseRequests = [];
  page.on("request", (request) => { if (request.url().includes("/sse/")) sseRequests.push(request.url()); });
  try {
    await page.goto(own.url + "/");
    await page.fill("#name", user);
    await page.click("#connect");
    const open = await waitFor(async () => (await text(page, "#state")) === "open", 5000);
    check(`token: the page connects with a secret set (${sseRequests.at(-1)})`, open && /\?token=\d+\.[\w-]{43}$/.test(sseRequests.at(-1) ?? ""));
    check(`token: the page says where its token came from (${await text(page, "#token-note")})`,
      (await text(page, "#token-note")).startsWith(`from POST /token/${user}`));
    const frames = await waitFor(async () => (await text(page, "#frames")).includes(`"userId":"${user}"`), 5000);
    check("token: timer frames arrive", frames);
    row.connected = open ? "ok" : "FAIL";
    row.frames = frames ? "ok" : "FAIL";

    const first = await publish(own.url, `/send/${user}?event=chat`, "sent with a token");
    await waitFor(async () => (await text(page, "#events")).includes(`#${first.json?.id} chat: sent with a token`), 3000);
    await page.click("#disconnect");
    const missed = await publish(own.url, `/send/${user}?event=chat`, "sent while away");
    await page.click("#reconnect");
    const replayed = await waitFor(async () => (await text(page, "#events")).includes(`#${missed.json?.id} chat: sent while away`), 5000);
    const resumed = sseRequests.at(-1)?.endsWith(`&lastEventId=${first.json?.id}`) && /\?token=\d+\.[\w-]{43}&/.test(sseRequests.at(-1));
    check(`token: Reconnect fetches a fresh token and resumes with ?lastEventId= (${sseRequests.at(-1)})`, replayed && resumed);
    row.pushed = replayed ? "ok" : "FAIL";
    row.reconnect = replayed && resumed ? "ok" : "FAIL";

    const tokens = sseRequests.map((url) => new URL(url).searchParams.get("token")).filter(Boolean);
    const leaked = tokens.filter((token) => own.logText().includes(token.split(".")[1]));
    check(`token: no token in the server log (${tokens.length} used)`, tokens.length >= 2 && leaked.length === 0);
  } finally {
    await page.close();
    own.stop();
  }

  // A publish token: the page cannot mint a subscriber token, and says so.
  const guarded = await startServer(undefined, "--port 0 --interval 200ms --publish-token browser-pub-token", { SSE_SUBSCRIBE_SECRET: secret });
  const refusedPage = await context.newPage();
  try {
    await refusedPage.goto(guarded.url + "/");
    await refusedPage.fill("#name", user);
    await refusedPage.click("#connect");
    const said = await waitFor(async () => (await text(refusedPage, "#token-note")).startsWith("cannot get a token (401"), 5000);
    check(`token: without a token the page says so (${await text(refusedPage, "#token-note")})`, said);
    const closed = await waitFor(async () => (await text(refusedPage, "#state")) === "closed" &&
      guarded.logText().includes("reject status=401 reason=\"no token\""), 5000);
    check("token: the stream is refused (401, logged as no token) and the page shows closed", closed);
  } finally {
    await refusedPage.close();
    guarded.stop();
  }
  console.log(`RESULT client=browser-token ${Object.entries(row).map(([key, value]) => `${key}=${value}`).join(" ")}`);
}
