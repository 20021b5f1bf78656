// Shared helpers for the Node client checks: the server under test, a cuttable TCP proxy,
// the server log, headless Chromium, and the pass/fail tally. Uses $SSE_URL/$SSE_LOG from scripts/clients.sh,
// or starts target/release/sse-server itself.
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let passed = 0;
let failed = 0;
export function check(name, ok) {
  if (ok) passed++; else failed++;
  console.log(`${ok ? "ok  " : "FAIL"} ${name}`);
  return Boolean(ok);
}

/** Prints the one-line result scripts/clients.sh turns into a table, then the tally. */
export function finish(client, results, server) {
  const fields = Object.entries(results).map(([key, value]) => `${key}=${value}`).join(" ");
  console.log(`RESULT client=${client} ${fields}`);
  if (failed > 0 && server?.own) console.error("--- server log ---\n" + server.logText().split("\n").slice(-40).join("\n"));
  console.log(`${passed} passed, ${failed} failed`);
  server?.stop();
  process.exit(failed === 0 ? 0 : 1);
}

/** Polls until fn() returns something truthy; returns it, or null after timeoutMs. */
export async function waitFor(fn, timeoutMs, stepMs = 10) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) return null;
    await sleep(stepMs);
  }
}

/** The server under test: $SSE_URL/$SSE_LOG if set, else one started here (see startServer). */
export async function serverUnderTest() {
  if (!process.env.SSE_URL) return startServer();
  return serverHandle(process.env.SSE_URL, process.env.SSE_LOG, null);
}

/**
 * Starts a server (with `env` added to the environment) and waits for its "listening on" line. Resolves to
 * { url, own, pid, hasLog, logText(), logLines(), closeLogged(user, sinceLine, ms), stop(), exited }.
 */
// Servers this process started are killed when it exits, however it exits (a hard-stop timer,
// an uncaught error), so none is left running.
const spawned = new Set();
process.on("exit", () => {
  for (const child of spawned) child.kill("SIGKILL");
});

export async function startServer(bin = process.env.SSE_BIN || path.join(ROOT, "target/release/sse-server"),
  flags = process.env.SSE_FLAGS || "--port 0 --interval 200ms --retry 500ms", env = {}) {
  const logFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "sse-node-")), "server.log");
  const fd = fs.openSync(logFile, "w");
  const child = spawn(bin, flags.split(/\s+/), { stdio: ["ignore", fd, fd], env: { ...process.env, ...env } });
  fs.closeSync(fd);
  spawned.add(child);
  child.on("exit", () => spawned.delete(child));
  const line = await waitFor(() => readLog(logFile).match(/listening on (http:\/\/\S+)/), 10_000);
  if (!line) throw new Error("server did not print 'listening on' within 10 s:\n" + readLog(logFile));
  return serverHandle(line[1], logFile, child);
}

function serverHandle(url, logFile, child) {
  const logText = () => (logFile ? readLog(logFile) : "");
  const exited = child ? new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal }))) : null;
  return {
    url,
    own: child !== null,
    pid: child?.pid,
    exited,
    hasLog: Boolean(logFile),
    logText,
    logLines: () => logText().split("\n").length - 1,
    /** Resolves to true once the log, after line sinceLine, shows `close user="USER"`. */
    closeLogged: async (user, sinceLine, ms) =>
      Boolean(await waitFor(() => logText().split("\n").slice(sinceLine).some((l) => l.startsWith(`close user="${user}"`)), ms, 20)),
    stop: () => {
      if (!child) return;
      child.kill();
      fs.rmSync(path.dirname(logFile), { recursive: true, force: true });
    },
  };
}

function readLog(file) {
  try { return fs.readFileSync(file, "utf8"); } catch { return ""; }
}

/** POST text to the server; resolves to { status, body, json, sentAt } (sentAt: performance.now()). */
export function publish(baseUrl, pathAndQuery, text) {
  // node:http rather than fetch: fetch's first call loads undici, which would count as latency.
  return new Promise((resolve) => {
    const payload = Buffer.from(text, "utf8");
    const request = http.request(baseUrl + pathAndQuery, { method: "POST", timeout: 5000, headers: { "Content-Length": payload.length } });
    const done = (status, body) => {
      let json = null;
      try { json = JSON.parse(body); } catch { /* checked by the caller */ }
      resolve({ status, body, json, sentAt });
    };
    request.on("response", (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk) => (body += chunk));
      response.on("end", () => done(response.statusCode, body));
    });
    request.on("timeout", () => request.destroy(new Error("timeout")));
    request.on("error", (error) => done(0, String(error)));
    const sentAt = performance.now();
    request.end(payload);
  });
}

/**
 * A TCP proxy on 127.0.0.1 in front of the server, so a test can cut live connections the way
 * a restarting server or a dropped network would (the client sees its stream end), and can
 * read what each client sent and got. `cut()` ends every open connection and holds new ones
 * until `resume()`; held clients are connected then, so nothing is refused.
 * Each entry of `connections`: { acceptedAt, head (request head text), lastEventId, retryMs }.
 */
export async function cuttableProxy(targetUrl) {
  const target = new URL(targetUrl);
  const live = new Set();
  let held = [];
  let paused = false;
  const connections = [];
  const server = net.createServer((client) => {
    const record = { acceptedAt: performance.now(), head: "", lastEventId: null, retryMs: null, received: "" };
    connections.push(record);
    client.on("error", () => {});
    const start = () => {
      const upstream = net.connect(Number(target.port), target.hostname);
      const pair = { client, upstream };
      live.add(pair);
      upstream.on("error", () => client.destroy());
      client.on("data", (chunk) => {
        if (!record.head.includes("\r\n\r\n")) {
          record.head += chunk.toString("latin1");
          const header = record.head.match(/^last-event-id:[ \t]*(.*?)\r$/im);
          if (header) record.lastEventId = header[1];
        }
      });
      upstream.on("data", (chunk) => {
        if (record.received.length < 4096) record.received += chunk.toString("utf8");
        const retry = record.received.match(/^retry: (\d+)$/m);
        if (retry && record.retryMs === null) record.retryMs = Number(retry[1]);
      });
      client.pipe(upstream);
      upstream.pipe(client);
      const forget = () => live.delete(pair);
      client.on("close", () => { forget(); upstream.end(); });
      upstream.on("close", () => { forget(); client.end(); });
    };
    if (paused) held.push(start); else start();
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    connections,
    cut() {
      paused = true;
      for (const { client, upstream } of live) { client.destroy(); upstream.destroy(); }
      live.clear();
    },
    resume() {
      paused = false;
      const waiting = held;
      held = [];
      for (const start of waiting) start();
    },
    close() {
      for (const { client, upstream } of live) { client.destroy(); upstream.destroy(); }
      server.close();
    },
  };
}

/**
 * Runs `checks(context)` with headless Chromium (Debian's /usr/bin/chromium, or $CHROMIUM) in a
 * fresh profile, then closes it and removes the profile. The flags keep Chromium off the
 * (closed) network and quiet; an exception is a failed check, not a crash.
 */
export async function withChromium(checks) {
  const { chromium } = await import("playwright-core");
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "sse-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      // Nothing but loopback resolves: whatever Chromium tries on its own stays on this machine.
      "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"],
  });
  context.setDefaultTimeout(5000);
  try {
    await checks(context);
  } catch (error) {
    check(`browser script threw: ${error.message.split("\n")[0]}`, false);
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}
