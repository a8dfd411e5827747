// Drives the chat page in headless Chromium with playwright-core.
// Usage: node web_page.mjs BASE_URL SCREENSHOT_PATH. Prints a JSON object of
// what a person would see; host/tests/web_page.rs checks it.
import { chromium } from "playwright-core";

const [base, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.AGENTKERNEL_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const seen = {};
try {
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  await page.goto(base);
  seen.title = await page.title();

  // The agent list shows what is loaded, with grants.
  await page.locator('[data-agent="notes"]').waitFor({ timeout: 10000 });
  seen.agents = await page.locator("#agents li[data-agent]").evaluateAll((els) => els.map((e) => e.dataset.agent));
  seen.notesGrants = await page.locator('[data-agent="notes"] .badge').allTextContents();

  // Streaming (the default): send with Enter, watch the answer and trace.
  await page.fill("#message", "remember that the door code is 1234");
  await page.press("#message", "Enter");
  const first = page.locator('[data-testid="answer"]').first();
  await first.waitFor({ timeout: 15000 });
  seen.first = {
    text: await first.locator(".text").textContent(),
    who: await first.locator(".who").textContent(),
    spans: await first.locator(".span").allTextContents(),
    summary: await first.locator("details summary").textContent(),
  };
  seen.userTurns = await page.locator('.turn.user .text').allTextContents();

  // Without streaming, in the same session.
  await page.uncheck("#stream");
  await page.fill("#message", "recall my notes");
  await page.click("#send");
  const second = page.locator('[data-testid="answer"]').nth(1);
  await second.waitFor({ timeout: 15000 });
  seen.second = { text: await second.locator(".text").textContent(), spans: await second.locator(".span").count() };
  seen.session = await page.locator("#session-label").textContent();
  await page.screenshot({ path: screenshot, fullPage: true });

  // A reload brings the conversation back from the host, traces included.
  await page.reload();
  await page.locator('[data-testid="answer"]').nth(1).waitFor({ timeout: 10000 });
  seen.reloaded = {
    userTurns: await page.locator(".turn.user .text").allTextContents(),
    answers: await page.locator('[data-testid="answer"] .text').allTextContents(),
    firstSpans: await page.locator('[data-testid="answer"]').first().locator(".span").count(),
    session: await page.locator("#session-label").textContent(),
  };
  seen.consoleErrors = consoleErrors;
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
