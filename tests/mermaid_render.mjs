// Mermaid's own renderer (the same version as its parser here) in headless Chromium: each
// chart drawn under each theme GitHub uses (default for light, dark), and what colour each
// line got and on what background. A JSON list of charts on stdin; run by tests/mermaid.py.
import { createRequire } from "node:module";
import path from "node:path";
const require = createRequire(path.join(process.env.BROWSER_MODULES, "package.json"));
const { chromium } = require("playwright-core");
const [script, executable, themesArg] = process.argv.slice(2);
const charts = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
const browser = await chromium.launch({ executablePath: executable, args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"] });
const out = [];
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.setContent("<!doctype html><html><body></body></html>");
  await page.addScriptTag({ path: script });
  for (const theme of themesArg.split(",")) {
    for (const [i, chart] of charts.entries()) {
      const found = await page.evaluate(async ({ chart, theme, id }) => {
        mermaid.initialize({ startOnLoad: false, theme });
        const { svg } = await mermaid.render(id, chart);
        const holder = document.createElement("div");
        holder.innerHTML = svg;
        document.body.appendChild(holder);
        const lines = [...holder.querySelectorAll('g[class*="line-plot"] path')].map((p) => ({ stroke: p.getAttribute("stroke"), width: p.getBBox().width }));
        const background = holder.querySelector("rect.background, g.main > rect")?.getAttribute("fill") || getComputedStyle(holder.querySelector("svg")).backgroundColor;
        holder.remove();
        return { lines, background };
      }, { chart, theme, id: `c${i}${theme}` });
      out.push({ theme, ...found });
    }
  }
  out.push({ errors });
} finally { await browser.close(); }
process.stdout.write(JSON.stringify(out));
