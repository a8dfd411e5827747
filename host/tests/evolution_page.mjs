// The chat page's list of evolutions, in headless Chromium (playwright-core).
// Usage: node evolution_page.mjs BASE_URL. Prints JSON of what a person sees;
// host/tests/evolution.rs checks it.
import { chromium } from "playwright-core";

const [base] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.AGENTKERNEL_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const seen = {};
try {
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  await page.goto(base);
  const link = page.locator("#evolutions li a").first();
  await link.waitFor({ timeout: 15000 });
  seen.text = await link.textContent();
  seen.href = await link.getAttribute("href");
  await link.click();
  await page.waitForURL("**/report.html", { timeout: 10000 });
  seen.reportTitle = await page.title();
  seen.reportDecision = await page.locator(".decision").textContent();
  seen.charts = await page.locator("svg").count();
  seen.consoleErrors = consoleErrors;
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
