// The chat page's KPI panel, in headless Chromium (playwright-core).
// Usage: node kpi_page.mjs BASE_URL SCREENSHOT. Prints JSON of what a person
// sees; host/tests/kpi.rs checks it.
import { chromium } from "playwright-core";

const [base, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.AGENTKERNEL_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const seen = {};
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  await page.goto(base);
  const panel = page.locator("#kpis");
  await panel.waitFor({ state: "visible", timeout: 15000 });
  seen.heading = await page.locator("#kpi-heading").textContent();
  seen.sections = await panel.locator("h3").allTextContents();
  seen.text = await panel.textContent();
  seen.charts = await panel.locator("svg").count();
  seen.bars = await panel.locator("svg rect").count();
  await panel.scrollIntoViewIfNeeded();
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  seen.consoleErrors = consoleErrors;
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
