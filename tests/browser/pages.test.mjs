// The console's identity, mail, vault, domains and audit pages in a real browser (Debian's
// Chromium driven by playwright-core) against the real `loft` binary on 127.0.0.1:0, with an
// axe-core check of every page (serious and critical violations fail; all are printed) and a
// screenshot of each in tests/browser/artifacts/ (prefix `pages-`).
//
//   LOFT_BIN       the loft binary (run.sh builds it)
//   LOFT_CHROMIUM  the browser (default: chromium on the PATH)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const here = path.dirname(new URL(import.meta.url).pathname);
const artifacts = path.join(here, "artifacts");
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const loftBin = process.env.LOFT_BIN;
const chromiumBin = process.env.LOFT_CHROMIUM || "chromium";
const ADMIN = "browser-test-operator-key-pages-0123456789";
const DOMAIN = "agents.test";

let server, base, dataDir, browser;
const a11y = [];

async function rest(method, url, key, body) {
  const res = await fetch(base + url, {
    method,
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

before(async () => {
  assert.ok(loftBin, "LOFT_BIN must name the loft binary (tests/browser/run.sh sets it)");
  mkdirSync(artifacts, { recursive: true });
  dataDir = mkdtempSync(path.join(tmpdir(), "loft-browser-pages-"));
  // DNS answers given up front: the MX is published, the rest is not (no real resolver).
  const dns = path.join(dataDir, "dns.json");
  writeFileSync(dns, JSON.stringify({ mx: { [DOMAIN]: [[10, DOMAIN]] } }));
  server = spawn(
    loftBin,
    ["serve", "--http", "127.0.0.1:0", "--data-dir", dataDir, "--domain", DOMAIN, "--egress-deny-public", "--dns-answers", dns],
    { env: { ...process.env, LOFT_ADMIN_KEY: ADMIN, LOFT_LOG: "warn" }, stdio: ["ignore", "pipe", "inherit"] },
  );
  base = await new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`loft serve did not start: ${seen}`)), 60_000);
    server.stdout.on("data", (chunk) => {
      seen += chunk;
      const m = seen.match(/HTTP API listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    server.on("exit", (code) => reject(new Error(`loft serve exited with ${code}: ${seen}`)));
  });
  browser = await chromium.launch({
    executablePath: chromiumBin,
    headless: true,
    args: process.getuid && process.getuid() === 0 ? ["--no-sandbox"] : [],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.kill("SIGTERM");
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  console.log("\naccessibility (axe-core) violations per page:");
  for (const { name, violations } of a11y) {
    console.log(`  ${name}: ${violations.length === 0 ? "none" : ""}`);
    for (const v of violations) console.log(`    [${v.impact}] ${v.id}: ${v.help} (${v.nodes.length} node(s))`);
  }
});

async function newPage(context) {
  const page = await context.newPage();
  page.errors = [];
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) page.errors.push(m.text());
  });
  page.on("response", (r) => {
    const url = r.url();
    if (r.status() >= 400 && r.request().resourceType() !== "document" && !url.endsWith("/favicon.ico")) {
      page.errors.push(`${r.status()} for ${url}`);
    }
  });
  page.on("pageerror", (e) => page.errors.push(String(e)));
  return page;
}

async function check(page, name) {
  await page.evaluate(`${axeSource}\n;0`);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  a11y.push({ name, violations: result.violations });
  await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(
    bad.map((v) => `${v.id}: ${v.help}`),
    [],
    `serious accessibility violations on ${name}`,
  );
  assert.deepEqual(page.errors, [], `browser errors on ${name} (CSP violations show here)`);
}

test("the operator looks at an identity, its mail and vault, changes it, checks domains and exports audit", async () => {
  const scout = (await rest("POST", "/v0/identities", ADMIN, { name: "scout", oversight_mode: "autonomous" })).body;
  const editor = (await rest("POST", "/v0/identities", ADMIN, { name: "editor", oversight_mode: "autonomous" })).body;
  const sent = await rest("POST", "/v0/messages/send", scout.api_key, {
    to: editor.address,
    subject: "Findings for review",
    text: "Three sources agree.\n",
    html: '<p>Three <b>sources</b> agree. <img src="https://tracker.example/p.gif"> <a href="https://source.example/a">source</a></p>',
  });
  assert.equal(sent.status, 201, JSON.stringify(sent.body));
  const secret = "hunter2-never-on-a-page";
  const stored = await rest("POST", "/v0/vault", scout.api_key, {
    name: "crm", type: "login", username: "scout@crm", password: secret, url: "https://crm.example/login",
  });
  assert.equal(stored.status, 201, JSON.stringify(stored.body));

  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await newPage(context);
  await page.goto(base + "/sign-in");
  await page.getByLabel("Operator key").fill(ADMIN);
  await page.getByRole("button", { name: "Sign in with the operator key" }).click();
  await page.waitForURL(base + "/approvals");

  // The tree: last activity and mailbox size; then the identity's page.
  await page.goto(base + "/identities");
  await page.getByText("1 message").first().waitFor();
  await check(page, "pages-01-identities");
  await page.getByRole("link", { name: "scout", exact: true }).click();
  await page.waitForURL(`${base}/identities/${scout.id}`);
  assert.ok(!(await page.content()).includes(scout.api_key), "the key is never shown");
  await check(page, "pages-02-identity");

  // Change the mode and pause: the key is refused at /v0, then resumed.
  await page.getByLabel("Oversight mode").selectOption("gated_send");
  await page.getByRole("button", { name: "Change mode" }).click();
  await page.waitForURL(`${base}/identities/${scout.id}`);
  assert.equal((await rest("GET", `/v0/identities/${scout.id}`, ADMIN)).body.oversight_mode, "gated_send");
  await page.getByRole("button", { name: "Pause" }).click();
  await page.getByRole("button", { name: "Resume" }).waitFor();
  assert.notEqual((await rest("GET", "/v0/whoami", scout.api_key)).status, 200);
  await page.getByRole("button", { name: "Resume" }).click();
  await page.getByRole("button", { name: "Pause" }).waitFor();
  assert.equal((await rest("GET", "/v0/whoami", scout.api_key)).status, 200);

  // The vault: names, never the value.
  await page.getByRole("link", { name: "Vault (names only)" }).click();
  await page.getByText("crm.example").waitFor();
  assert.ok(!(await page.content()).includes(secret), "a vault value is on the page");
  await check(page, "pages-03-vault");

  // The editor's mailbox; opening the mail is audited.
  await page.goto(`${base}/identities/${editor.id}/mail`);
  await check(page, "pages-04-mailbox");
  await page.getByRole("link", { name: "Findings for review" }).click();
  await page.getByText("Where its links go").waitFor();
  await check(page, "pages-05-mail");
  const rows = (await rest("GET", "/v0/audit?action=mail.inspect", ADMIN)).body.items;
  assert.equal(rows.length, 1);
  assert.equal(rows[0].details.identity, editor.id);

  // Domains: the records and the live check against the given DNS answers.
  await page.getByRole("link", { name: "Domains" }).click();
  await page.getByText("v=spf1").first().waitFor();
  await check(page, "pages-06-domains");
  await page.getByRole("button", { name: `Check DNS now for ${DOMAIN}` }).click();
  await page.getByText("missing or differ").waitFor();
  await check(page, "pages-07-domain-check");

  // Audit: filter by time and action, export.
  await page.goto(base + "/audit");
  await page.getByLabel("Action (or prefix ending in .)").fill("identity.");
  await page.getByLabel("From (UTC)").fill("2000-01-01T00:00:00");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.waitForURL(/\/audit\?/);
  await page.locator("code", { hasText: "identity.pause" }).first().waitFor();
  await check(page, "pages-08-audit");
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "CSV" }).click()]);
  const csv = readFileSync(await download.path(), "utf8");
  assert.match(csv, /^seq,at,actor_kind/);
  assert.ok(csv.includes("identity.pause") && !csv.includes("mail.inspect"), csv);

  // At phone width the identity page still reads.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, storageState: await context.storageState() });
  const p2 = await newPage(phone);
  await p2.goto(`${base}/identities/${scout.id}`);
  await check(p2, "pages-09-identity-phone");
  await phone.close();
  await context.close();
});
