// Open a page in headless Chromium (Debian's, driven by playwright-core) with the network
// closed, and say what it did: console errors, page errors, requests beyond the page
// itself, and each SVG chart's lines and drawn size. Run by tests/browser.py.
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.BROWSER_MODULES, "package.json"));
const { chromium } = require("playwright-core");
const [url, executable] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: executable,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const result = { console: [], errors: [], requests: [], charts: [] };
try {
  const page = await browser.newPage();
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") result.console.push(`${m.type()}: ${m.text()}`); });
  page.on("pageerror", (e) => result.errors.push(String(e)));
  await page.route("**/*", (route) => {
    const asked = route.request().url();
    if (asked === url) return route.continue();
    result.requests.push(asked);
    return route.abort();
  });
  await page.goto(url, { waitUntil: "load" });
  result.title = await page.title();
  result.charts = await page.$$eval("svg.chart", (svgs) => svgs.map((svg) => {
    const box = svg.getBoundingClientRect();
    const lines = [...svg.querySelectorAll("polyline")].map((l) => {
      const b = l.getBBox();
      return { series: l.dataset.series, points: l.points.numberOfItems, width: b.width, height: b.height };
    });
    return { title: svg.querySelector("title")?.textContent, width: box.width, height: box.height, lines };
  }));
  result.text = await page.evaluate(() => document.body.innerText);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result));
