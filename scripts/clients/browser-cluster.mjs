// Headless Chromium on the demo page of a cluster (scripts/cluster.sh: Redis, two instances, nginx
// round-robin with scripts/nginx/cluster.conf): the instance serving the page is killed with -9; the
// browser reconnects through nginx to the other one and shows the events published meanwhile.
// Usage: node scripts/clients/browser-cluster.mjs   (needs redis-server, nginx, chromium, a release build)
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { ROOT, check, finish, publish, waitFor, withChromium } from "./lib.mjs";

const hardStop = setTimeout(() => { console.log("FAIL whole script took over 60 s"); process.exit(1); }, 60_000);
hardStop.unref();
const results = { connected: "FAIL", frames: "FAIL", pushed: "FAIL", reconnect: "FAIL", close: "n/a", first_byte_ms: "n/a", latency_ms: "n/a" };

// 1. The cluster, as the README starts it. Its own trap stops Redis, the instances and nginx
//    when we send it SIGTERM (or when this process exits).
const cluster = spawn("bash", [path.join(ROOT, "scripts/cluster.sh"), "--port", "0"], {
  cwd: ROOT,
  stdio: ["ignore", "pipe", "pipe"],
  env: {
    ...process.env,
    SSE_SERVER_BIN: process.env.SSE_BIN || path.join(ROOT, "target/release/sse-server"),
    SSE_SERVER_FLAGS: "--interval 200ms --retry 500ms",
  },
});
process.on("exit", () => cluster.kill("SIGTERM"));
let banner = "";
cluster.stdout.setEncoding("utf8");
cluster.stdout.on("data", (chunk) => (banner += chunk));
cluster.stderr.setEncoding("utf8");
cluster.stderr.on("data", (chunk) => (banner += chunk));
const up = await waitFor(() => banner.match(/cluster is up: (http:\/\/\S+?)\/ /), 30_000, 50);
if (!check("cluster: scripts/cluster.sh printed its URL", up)) {
  console.error(banner);
  finish("browser-cluster", results, null);
}
const url = up[1];
const instances = [...banner.matchAll(/instance (\w)\s+(\S+)\s+pid (\d+)\s+log (\S+)/g)]
  .map(([, name, address, pid, log]) => ({ name, address, pid: Number(pid), log }));
check(`cluster: two instances (${instances.map((i) => i.name).join(", ")})`, instances.length === 2);
const logOf = (instance) => { try { return fs.readFileSync(instance.log, "utf8"); } catch { return ""; } };

let context; // the Chromium failoverChecks opens its page in
await withChromium(async (launched) => {
  context = launched;
  await failoverChecks();
});
cluster.kill("SIGTERM");
await waitFor(() => cluster.exitCode !== null || cluster.signalCode !== null, 5000, 50);
finish("browser-cluster", results, null);

async function failoverChecks() {
  const user = `cluster-${process.pid}`;
  const text = (selector) => page.locator(selector).innerText();
  const page = await context.newPage();
  await page.goto(url + "/");
  await page.fill("#name", user);
  await page.click("#connect");
  const open = await waitFor(async () => (await text("#state")) === "open", 5000);
  check("page: state becomes open through nginx", open);
  results.connected = open ? "ok" : "FAIL";
  const frames = await waitFor(async () => (await text("#frames")).includes(`"userId":"${user}"`), 5000);
  check("page: timer frames arrive", frames);
  results.frames = frames ? "ok" : "FAIL";

  const before = await publish(url, `/send/${user}?event=chat`, "before the kill");
  const shown = await waitFor(async () => (await text("#events")).includes(`#${before.json?.id} chat: before the kill`), 5000);
  check(`page: an event published through nginx shows with its Redis id (${before.json?.id})`, shown);
  results.pushed = shown ? "ok" : "FAIL";

  // 2. Kill the instance that serves this page, publish meanwhile, let the browser come back.
  const serving = instances.find((instance) => logOf(instance).includes(`open user="${user}"`));
  const other = instances.find((instance) => instance !== serving);
  if (!check(`failover: the page's stream is on instance ${serving?.name}`, serving && other)) return;
  process.kill(serving.pid, "SIGKILL");
  const away = await publish(url, `/send/${user}?event=chat`, "sent while the browser reconnects");
  check(`failover: a publish through nginx still gets 202 (${away.status})`, away.status === 202);
  const replayed = await waitFor(async () =>
    (await text("#events")).includes(`#${away.json?.id} chat: sent while the browser reconnects`), 10_000, 50);
  check("failover: the browser reconnected and shows the event published meanwhile", replayed);
  check(`failover: the reconnection is on instance ${other.name}`, logOf(other).includes(`open user="${user}"`));
  const events = await text("#events");
  check("failover: the event before the kill is shown once", events.split("chat: before the kill").length === 2);
  check("failover: state is open again", (await text("#state")) === "open");
  results.reconnect = replayed ? "ok" : "FAIL";
  fs.mkdirSync(path.join(ROOT, "target/clients"), { recursive: true });
  await page.screenshot({ path: path.join(ROOT, "target/clients/demo-cluster.png"), fullPage: true });
  await page.close();
}
