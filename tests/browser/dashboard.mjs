// The dashboard in Debian's Chromium, driven by playwright-core (tests/server/test_dashboard.py).
//
// LINK is a link as a person gets it: a thread's link from a needs_approval result (or the
// dashboard's from `agents-mcp ui`), with the key in its fragment. The driver checks that
// a missing or wrong key is refused, opens the link, goes to the dashboard, checks the
// inbox (INBOX calls), approves APPROVE (a call id) with the keyboard, and waits for it to
// leave the inbox. Screenshots go to $OUT_DIR. stdout: one {"done": report} or {"error"}.
import { chromium } from "playwright-core";

const link = new URL(process.env.LINK);
const base = link.origin;
const outDir = process.env.OUT_DIR;
const inbox = Number(process.env.INBOX);
const approve = process.env.APPROVE;
const WAIT = 30000;
const say = (message) => process.stdout.write(JSON.stringify(message) + "\n");

async function main() {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM, args: ["--no-sandbox"] });
  const report = { refused: [], violations: [] };
  try {
    const context = await browser.newContext({ viewport: { width: 1000, height: 760 } });
    const page = await context.newPage();
    page.on("console", (m) => { if (/Content.Security.Policy/i.test(m.text())) report.violations.push(m.text()); });
    // No key, then a wrong key: the page asks for one and shows no data.
    for (const fragment of ["", "#token=wrong-key"]) {
      await page.goto(`${base}/${fragment}`);
      await page.locator("#token-form").waitFor({ state: "visible", timeout: WAIT });
      report.refused.push({ fragment, cards: await page.locator("#inbox li").count() });
    }
    // The link from the result: the thread's own view, then the dashboard in the same tab.
    await page.goto("about:blank");
    await page.goto(link.href);
    if (link.pathname.startsWith("/threads/")) {
      await page.locator(".approval").first().waitFor({ timeout: WAIT });
      await page.screenshot({ path: `${outDir}/dashboard-thread.png`, fullPage: true });
      await page.goto(`${base}/`);
    }
    const cards = page.locator("#inbox li.card");
    await page.waitForFunction((n) => document.querySelectorAll("#inbox li.card").length === n, inbox, { timeout: WAIT });
    report.inbox = await cards.evaluateAll((items) => items.map((li) => li.textContent.replace(/\s+/g, " ").trim()));
    await page.locator("#threads li").first().waitFor({ timeout: WAIT });
    report.threads = await page.locator("#threads li").count();
    report.rows = await page.locator("#threads li").evaluateAll((items) => items.map((li) => li.textContent.replace(/\s+/g, " ").trim()));
    await page.screenshot({ path: `${outDir}/${process.env.SHOT || "dashboard"}.png`, fullPage: true });
    await page.emulateMedia({ colorScheme: "dark" });
    await page.setViewportSize({ width: 390, height: 800 });
    await page.screenshot({ path: `${outDir}/dashboard-dark-phone.png`, fullPage: true });
    // Approve with the keyboard: focus the button, press Enter.
    const button = page.locator(`#inbox li[data-call="${approve}"] button.primary`);
    await button.focus();
    await page.keyboard.press("Enter");
    try {
      await page.waitForFunction((id) => !document.querySelector(`#inbox li[data-call="${id}"]`), approve, { timeout: WAIT });
    } catch (error) {
      await page.screenshot({ path: `${outDir}/dashboard-failed.png`, fullPage: true });
      throw new Error(`${error.message}; notice: ${await page.locator("#notice").textContent()}`);
    }
    report.left = await cards.count();
    say({ done: report });
  } finally {
    await browser.close();
  }
}

main().catch((error) => { say({ error: String(error && error.stack || error) }); process.exit(1); });
