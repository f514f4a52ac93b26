// The thread view's "Sign in to <server>" button in Debian's Chromium, run by
// tests/test_signin.py: opens the standalone view of a thread waiting for a sign-in,
// clicks the button, lets the sign-in page (which approves at once) come back to
// agents-mcp's /oauth/callback in its own tab, and waits for the view to show the run
// completed. Prints one JSON object: what each page showed; a screenshot of each state
// goes to $OUT_DIR.
import path from "node:path";
import { chromium } from "playwright-core";

const [viewUrl] = process.argv.slice(2);
const outDir = process.env.OUT_DIR;
const WAIT = 60000;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync"],
});
const report = { problems: [] };
try {
  const context = await browser.newContext({ viewport: { width: 820, height: 700 } });
  const page = await context.newPage();
  page.on("console", (m) => { if (m.type() === "error") report.problems.push(m.text()); });
  await page.goto(viewUrl);
  const button = page.getByRole("link", { name: /^Sign in to / });
  await button.waitFor({ timeout: WAIT });
  report.button = await button.textContent();
  report.before = await page.locator("body").getAttribute("data-status");
  if (outDir) await page.screenshot({ path: path.join(outDir, "signin-1-waiting.png") });
  const [popup] = await Promise.all([context.waitForEvent("page", { timeout: WAIT }), button.click()]);
  await popup.waitForLoadState("load", { timeout: WAIT });
  await popup.locator("#outcome").waitFor({ timeout: WAIT });
  report.callback = { url: popup.url().split("?")[0], text: await popup.locator("#outcome").textContent() };
  if (outDir) await popup.screenshot({ path: path.join(outDir, "signin-2-callback.png") });
  await page.waitForFunction(() => document.body.dataset.status === "completed", null, { timeout: WAIT });
  report.after = await page.locator("body").getAttribute("data-status");
  report.reply = await page.locator("#reply").textContent();
  report.cards = await page.locator("article.signin").count();
  if (outDir) await page.screenshot({ path: path.join(outDir, "signin-3-completed.png") });
} catch (error) {
  report.error = String(error);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(report) + "\n");
