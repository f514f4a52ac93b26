// The browser test's driver, run by tests/test_ui_browser.py with a real agents-mcp.
//
// It bundles host.js (the official AppBridge and SDK client) with esbuild, serves it on
// loopback with /mcp proxied to agents-mcp (so the host page and the server share an
// origin, as a host's backend would), and drives Debian's Chromium with playwright-core
// through each state of the view, writing a screenshot of each to $OUT_DIR.
//
// stdout carries one JSON object per line for the Python side: {"gate": name} when the
// scripted model may take its next step, then {"done": report} or {"error": message}.
// Everything else goes to stderr.
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const target = new URL(process.env.AGENTS_MCP_BASE);  // e.g. http://127.0.0.1:8765
const outDir = process.env.OUT_DIR;
const [alice, bob] = [process.env.TOKEN_A, process.env.TOKEN_B];
const WAIT = 30000;

const say = (message) => process.stdout.write(JSON.stringify(message) + "\n");
const log = (...args) => console.error("[browser]", ...args);

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function hostServer() {
  const bundle = await build({
    entryPoints: [path.join(here, "host.js")], bundle: true, write: false,
    format: "iife", platform: "browser", target: "es2022", logLevel: "silent",
  });
  const script = bundle.outputFiles[0].text;
  const page = `<!doctype html><html><head><meta charset="utf-8"><title>test host</title>
<link rel="icon" href="data:,"><style>body{font:14px system-ui;margin:16px;background:#eef0f3;color:#111}
body[data-theme=dark]{background:#0e0f12;color:#eee} iframe{width:100%;border:0;display:block;min-height:40px}
#slot{max-width:760px;border-radius:10px;overflow:hidden;box-shadow:0 1px 4px #0003}</style></head>
<body><p>MCP Apps test host (AppBridge + SDK client)</p><div id="slot"></div><script src="/host.js"></script></body></html>`;
  const server = http.createServer((req, res) => {
    if (req.url === "/") return res.writeHead(200, { "content-type": "text/html" }).end(page);
    if (req.url === "/host.js") return res.writeHead(200, { "content-type": "text/javascript" }).end(script);
    // Everything else is agents-mcp's, as if served from the host's own origin.
    const headers = { ...req.headers, host: target.host };
    if (headers.origin) headers.origin = target.origin;
    const upstream = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers }, (up) => {
      res.writeHead(up.statusCode, up.headers);
      up.pipe(res);
    });
    upstream.on("error", (error) => { log("proxy error", error.message); res.destroy(); });
    req.pipe(upstream);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

async function main() {
  const server = await hostServer();
  const hostOrigin = `http://127.0.0.1:${server.address().port}`;
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--no-first-run", "--disable-sync"],
  });
  const report = { screenshots: [], requests: [], problems: [], failedRequests: [] };
  try {
    const context = await browser.newContext({ viewport: { width: 820, height: 900 } });
    const record = (ctx) => {
      ctx.on("request", (request) => report.requests.push(request.url()));
      ctx.on("response", (response) => {
        if (response.status() >= 400) report.failedRequests.push(`${response.status()} ${response.request().method()} ${new URL(response.url()).pathname}`);
      });
    };
    record(context);
    const watch = (page) => {
      page.on("console", (m) => {
        // A page opened without its token is answered 401 on purpose; anything else is a problem.
        if (m.type() === "error" && !/status of 401/.test(m.text())) report.problems.push(`console: ${m.text()}`);
      });
      page.on("pageerror", (error) => report.problems.push(`page error: ${error.message}`));
    };
    const page = await context.newPage();
    watch(page);
    await page.goto(hostOrigin + "/");
    const shot = async (p, name) => {
      const file = path.join(outDir, `${String(report.screenshots.length + 1).padStart(2, "0")}-${name}.png`);
      await p.screenshot({ path: file, fullPage: true });
      report.screenshots.push(file);
    };
    const host = (fn, ...args) => page.evaluate(fn, ...args);
    const view = () => page.frameLocator("#view");
    const status = (s) => view().locator(`body[data-status="${s}"]`).waitFor({ timeout: WAIT });

    // -- who sees what ------------------------------------------------------------
    const plain = await host(([t]) => window.host.connect(t, { apps: false }), [alice]);
    const apps = await host(([t]) => window.host.connect(t), [alice]);
    const modelTools = await host(() => window.host.modelTools());
    report.tools = { plain, apps, modelTools };

    // -- approve ----------------------------------------------------------------
    const approving = host(() => window.host.callAsModel("chat_with_agent", { agent: "helper", message: "approve: write milk" }));
    const card = view().locator(".approval");
    await card.waitFor({ timeout: WAIT });
    const asked = {
      text: await card.innerText(),
      argumentsText: await card.locator(".args").innerText(),
    };
    report.approval = asked;
    report.approveResult = await approving;
    await shot(page, "needs-approval");
    await card.getByRole("button", { name: "Approve", exact: true }).click();
    await status("completed");
    report.approvedReply = await view().locator("#reply").innerText();
    await shot(page, "approved-completed");
    report.modelContext = await host(() => window.host.modelContext);

    // -- deny with a reason -------------------------------------------------------
    await host(() => window.host.callAsModel("chat_with_agent", { agent: "helper", message: "deny: write cheese" }));
    // This call's card, not the last one while the view still shows it.
    const cheese = card.filter({ hasText: "cheese" });
    await cheese.waitFor({ timeout: WAIT });
    await cheese.getByLabel("Reason for denying").fill("we have enough cheese");
    await shot(page, "deny-with-reason");
    await cheese.getByRole("button", { name: "Deny", exact: true }).click();
    await status("completed");
    report.deniedReply = await view().locator("#reply").innerText();
    await shot(page, "denied-completed");

    // -- allow for this thread ------------------------------------------------------
    await host(() => window.host.callAsModel("chat_with_agent", { agent: "helper", message: "allow: two notes" }));
    const first = card.filter({ hasNotText: "cheese" });  // not the last call's card
    await first.waitFor({ timeout: WAIT });
    await first.getByRole("button", { name: "Allow for this thread" }).click();
    await status("completed");
    report.allowedReply = await view().locator("#reply").innerText();
    report.allowedCalls = await view().locator(".call").evaluateAll((els) => els.map((e) => e.dataset.state));
    await shot(page, "allowed-for-thread");

    // -- a delegated agent asks: the chain, the tree ------------------------------------
    await host(() => window.host.callAsModel("chat_with_agent", { agent: "helper", message: "team: ask the scribe" }));
    await card.waitFor({ timeout: WAIT });
    await view().locator(".child").first().waitFor({ timeout: WAIT });
    report.team = {
      card: await card.innerText(),
      tree: await view().locator(".child > .who").allInnerTexts(),
    };
    await shot(page, "delegated-needs-approval");
    await card.getByRole("button", { name: "Approve", exact: true }).click();
    await status("completed");
    report.team.reply = await view().locator("#reply").innerText();
    await shot(page, "delegated-completed");

    // -- follow a running thread live -------------------------------------------------
    const started = await host(() => window.host.callAsModel("chat_with_agent", { agent: "helper", message: "steps: follow me", wait_seconds: 0 }));
    report.followStarted = started.structuredContent.status;
    await view().locator('.call[data-state="done"]').first().waitFor({ timeout: WAIT });
    const viewFrame = page.frames().find((f) => f !== page.mainFrame());
    await viewFrame.evaluate(() => { window.__sameDocument = true; });
    const doneCount = () => view().locator('.call[data-state="done"]').count();
    const changes = [];
    const snapshot = async (label) => {
      changes.push({ label, status: await view().locator("body").getAttribute("data-status"), done: await doneCount() });
    };
    await snapshot("first step");
    await shot(page, "running-step-1");
    say({ gate: "step-2" });
    await view().locator('.call[data-state="done"]').nth(1).waitFor({ timeout: WAIT });
    await snapshot("second step");
    await shot(page, "running-step-2");
    say({ gate: "step-3" });
    await status("completed");
    await snapshot("completed");
    report.followChanges = changes;
    report.followSameDocument = await viewFrame.evaluate(() => window.__sameDocument === true);
    report.followReply = await view().locator("#reply").innerText();
    await shot(page, "followed-to-completed");

    // -- stop ----------------------------------------------------------------------
    await host(() => window.host.callAsModel("chat_with_agent", { agent: "helper", message: "stop: never ends", wait_seconds: 0 }));
    await status("running");
    await view().locator("#stop").waitFor({ timeout: WAIT });
    await shot(page, "running-before-stop");
    await view().locator("#stop").click();
    await status("cancelled");
    await shot(page, "stopped");

    // -- the host switches to dark ---------------------------------------------------
    await host(() => window.host.setTheme("dark"));
    await view().locator('html[data-theme="dark"]').waitFor({ timeout: WAIT });
    report.darkBackground = await view().locator("body").evaluate((b) => getComputedStyle(b).backgroundColor);
    await shot(page, "dark-theme");
    await host(() => window.host.setTheme("light"));

    // -- the same view at /threads/<id>, outside a chat ----------------------------------
    const paused = await host(() => window.host.callAsModel("chat_with_agent", { agent: "helper", message: "page: standalone" }));
    const tid = paused.structuredContent.thread_id;
    report.pageThread = tid;
    const pageUrl = `${target.origin}/threads/${tid}`;
    const anonymous = await fetch(pageUrl);
    const bobs = await fetch(pageUrl, { headers: { Authorization: `Bearer ${bob}` } });
    report.pageStatuses = { anonymous: anonymous.status, bob: bobs.status };
    const standalone = await context.newPage();
    watch(standalone);
    await standalone.goto(`${pageUrl}#token=${alice}`);
    const pageCard = standalone.locator(".approval");
    await pageCard.waitFor({ timeout: WAIT });
    report.pageUrlAfterLoad = standalone.url();
    await shot(standalone, "page-needs-approval");
    await pageCard.getByRole("button", { name: "Approve", exact: true }).click();
    await standalone.locator('body[data-status="completed"]').waitFor({ timeout: WAIT });
    report.pageReply = await standalone.locator("#reply").innerText();
    await shot(standalone, "page-completed");
    const stranger = await browser.newContext({ viewport: { width: 820, height: 500 } });
    record(stranger);
    const asking = await stranger.newPage();
    watch(asking);
    await asking.goto(pageUrl);
    await asking.locator("#token-form").waitFor({ timeout: WAIT });
    await shot(asking, "page-asks-for-token");
    await stranger.close();

    report.hostOrigin = hostOrigin;
    report.origins = [...new Set(report.requests.filter((u) => /^https?:/.test(u)).map((u) => new URL(u).origin))];
    say({ done: report });
  } finally {
    await browser.close();
    server.close();
  }
}

main().then(() => process.exit(0), (error) => {
  say({ error: String(error && error.stack || error) });
  process.exit(1);
});
