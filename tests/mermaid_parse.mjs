// Mermaid's own parser over charts: a JSON list of diagram texts on stdin, a JSON list
// on stdout (null for a chart that parses, else the parser's message). Run by
// tests/mermaid.py with NODE_PATH at the Mermaid the tests install (python -m tests.tools).
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import path from "node:path";

const modules = process.env.MERMAID_MODULES;
const require = createRequire(path.join(modules, "package.json"));
const { JSDOM } = require("jsdom");
const dom = new JSDOM("<!doctype html><html><body></body></html>", { pretendToBeVisual: true });
globalThis.window = dom.window;
globalThis.document = dom.window.document;
for (const name of ["DOMParser", "Element", "HTMLElement", "Node", "SVGElement", "MutationObserver"]) {
  if (!(name in globalThis)) globalThis[name] = dom.window[name];
}
const { default: mermaid } = await import(pathToFileURL(require.resolve("mermaid")).href);
mermaid.initialize({ startOnLoad: false });
const charts = JSON.parse(readFileSync(0, "utf8"));
const out = [];
for (const chart of charts) {
  try {
    const found = await mermaid.parse(chart);
    out.push(found && found.diagramType === "xychart" ? null : `parsed as ${found && found.diagramType}`);
  } catch (error) {
    out.push(String(error && error.message ? error.message : error));
  }
}
process.stdout.write(JSON.stringify(out));
