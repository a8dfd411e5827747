// The research findings on the chat page, in headless Chromium.
// Usage: node research_page.mjs BASE_URL. Prints what a person sees as JSON;
// host/tests/research.rs checks it.
import { chromium } from "playwright-core";

const [base] = process.argv.slice(2);
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
  const items = page.locator('[data-testid="research-findings"] li');
  await items.first().waitFor({ timeout: 10000 });
  seen.heading = await page.locator("#findings-heading").textContent();
  seen.titles = await items.locator("a").allTextContents();
  seen.hrefs = await items.locator("a").evaluateAll((els) => els.map((a) => a.getAttribute("href")));
  seen.details = await items.locator(".muted").allTextContents();
  seen.consoleErrors = consoleErrors;
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
