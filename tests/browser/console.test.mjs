// The web console in a real browser: Debian's Chromium driven by playwright-core, against the
// real `loft` binary on 127.0.0.1:0. The flow of issue 11's "Proof in a real browser", with an
// axe-core check of every page (serious and critical violations fail; all are printed) and a
// screenshot of each page in tests/browser/artifacts/.
//
//   LOFT_BIN       the loft binary (run.sh builds it)
//   LOFT_CHROMIUM  the browser (default: chromium on the PATH)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
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
const ADMIN = "browser-test-operator-key-0123456789";

let server, base, dataDir, browser;
const a11y = []; // every page's violations, printed at the end

async function rest(method, url, key, body) {
  const res = await fetch(base + url, {
    method,
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

function cli(args) {
  const out = execFileSync(loftBin, args, {
    env: { ...process.env, LOFT_URL: base, LOFT_ADMIN_KEY: ADMIN },
    encoding: "utf8",
  });
  return JSON.parse(out);
}

before(async () => {
  assert.ok(loftBin, "LOFT_BIN must name the loft binary (tests/browser/run.sh sets it)");
  mkdirSync(artifacts, { recursive: true });
  dataDir = mkdtempSync(path.join(tmpdir(), "loft-browser-"));
  server = spawn(
    loftBin,
    ["serve", "--http", "127.0.0.1:0", "--data-dir", dataDir, "--domain", "agents.test", "--egress-deny-public"],
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
    // Root in CI containers: Chromium's sandbox needs user namespaces it may not have.
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

/** A new page whose CSP violations and script errors fail the test. */
async function newPage(context) {
  const page = await context.newPage();
  page.errors = [];
  page.on("console", (m) => {
    // A failed load is judged by its response below (the browser's own favicon probe is not ours).
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

/** axe-core on the page (injected through the DevTools protocol: the CSP forbids inline script). */
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

test("a reviewer decides held mail in the console; the operator revokes and verifies", async () => {
  // Setup through the REST API and the CLI, as people would.
  const researcher = (await rest("POST", "/v0/identities", ADMIN, { name: "researcher" })).body;
  const writer = (await rest("POST", "/v0/identities", ADMIN, { name: "writer", oversight_mode: "autonomous" })).body;
  assert.equal(researcher.oversight_mode, "gated_send");
  const reviewer = cli(["reviewer", "create", "alice", "--json"]);
  const invitePath = reviewer.console_invite.path;
  assert.match(invitePath, /^\/invite\/lci_/);

  const send = async (subject, text) => {
    const r = await rest("POST", "/v0/messages/send", researcher.api_key, { to: writer.address, subject, text });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.status, "pending_approval");
    return r.body;
  };
  await send("Brief for the launch", "Hello writer,\nplease draft 300 words.\nThanks\n");
  const leak = await send("Customer list", "Here is every customer address we have.\n");

  // The reviewer sets a password through the one-time link, then signs in.
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await newPage(context);
  await page.goto(base + invitePath);
  await check(page, "01-invite");
  const password = "correct horse battery staple";
  await page.getByLabel(/New password/).fill(password);
  await page.getByLabel("The same again").fill(password);
  await page.getByRole("button", { name: "Set password" }).click();
  await page.waitForLoadState();
  await page.getByText("is set").waitFor();
  await page.goto(base + "/sign-in");
  await check(page, "02-sign-in");
  await page.getByLabel("Address").fill(reviewer.address);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.waitForURL(base + "/approvals");
  await page.getByRole("link", { name: "Brief for the launch" }).waitFor();
  await check(page, "03-approvals");

  // Live: a mail held now appears without a reload.
  await send("Late addition", "One more thing.\n");
  await page.getByRole("link", { name: "Late addition" }).waitFor({ timeout: 15_000 });

  // Edit one line, then approve.
  await page.getByRole("link", { name: "Brief for the launch" }).click();
  await page.getByRole("heading", { name: "Why it is held" }).waitFor();
  await check(page, "04-held-mail");
  const text = page.getByRole("textbox", { name: "Text", exact: true });
  const original = await text.inputValue();
  await text.fill(original.replace("please draft 300 words.", "please draft 250 words."));
  await page.getByRole("button", { name: "Save and approve" }).click();
  await page.getByText("approved").first().waitFor();
  await check(page, "05-approved");

  // The writer's inbox has the edited mail.
  const inbox = (await rest("GET", "/v0/messages", writer.api_key)).body.items;
  assert.equal(inbox.length, 1);
  const got = (await rest("GET", `/v0/messages/${inbox[0].id}`, writer.api_key)).body;
  assert.match(got.text, /please draft 250 words\./);
  assert.doesNotMatch(got.text, /300 words/);

  // Reject the other with a reason; the researcher reads it.
  await page.goto(base + "/approvals");
  await page.getByRole("link", { name: "Customer list" }).click();
  await page.getByLabel(/Reason/).fill("Customer data never leaves by mail.");
  await page.getByRole("button", { name: "Reject" }).click();
  await page.getByText("Customer data never leaves by mail.").first().waitFor();
  const sent = (await rest("GET", `/v0/messages/${leak.id}`, researcher.api_key)).body;
  assert.equal(sent.status, "rejected");
  assert.equal(sent.approval.reason, "Customer data never leaves by mail.");

  // Reviewers do not reach operator pages.
  const forbidden = await page.goto(base + "/identities");
  assert.equal(forbidden.status(), 403);
  await page.goto(base + "/approvals");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(base + "/sign-in");

  // The operator signs in with the operator key.
  await page.getByLabel("Operator key").fill(ADMIN);
  await page.getByRole("button", { name: "Sign in with the operator key" }).click();
  await page.waitForURL(base + "/approvals");
  await page.getByRole("link", { name: "Identities" }).click();
  await page.getByRole("heading", { name: "Delegation tree" }).waitFor();
  await check(page, "06-identities");

  // The kill switch: the banner shows on every page while on.
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: "Freeze all outgoing mail" }).click();
  await page.getByRole("alert").filter({ hasText: "Outgoing mail is frozen" }).waitFor();
  await check(page, "07-frozen");
  await page.getByRole("button", { name: "Unfreeze" }).click();
  await page.getByRole("button", { name: "Freeze all outgoing mail" }).waitFor();

  // Revoke the researcher; the confirmation names what goes with it; its key is refused at once.
  await page.getByRole("link", { name: "Revoke researcher" }).click();
  await page.getByText("refuses its keys at once").waitFor();
  await check(page, "08-revoke-confirm");
  await page.getByRole("button", { name: /^Revoke 1 identity$/ }).click();
  await page.getByText(researcher.id).waitFor();
  const refused = await rest("GET", "/v0/whoami", researcher.api_key);
  assert.equal(refused.status, 401);

  // The audit log verifies.
  await page.getByRole("link", { name: "Audit" }).click();
  await page.getByRole("button", { name: "Verify the chain" }).waitFor();
  await check(page, "09-audit");
  await page.getByRole("button", { name: "Verify the chain" }).click();
  await page.getByText("The chain verifies").waitFor();
  await check(page, "10-audit-verified");

  // Phone width: the queue is still usable.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
  const small = await newPage(phone);
  await phone.addCookies((await context.cookies()).map((c) => ({ ...c })));
  await small.goto(base + "/approvals?status=approved");
  await small.getByRole("link", { name: "Brief for the launch" }).waitFor();
  await check(small, "11-approvals-phone");
  await phone.close();
  await context.close();
});

test("a reviewer decides several held mails at once, follows a deep link through sign-in and asks for notices", async () => {
  const researcher = (await rest("POST", "/v0/identities", ADMIN, { name: "analyst" })).body;
  const writer = (await rest("POST", "/v0/identities", ADMIN, { name: "editor", oversight_mode: "autonomous" })).body;
  const reviewer = cli(["reviewer", "create", "bob", "--json"]);
  const send = async (subject) => {
    const r = await rest("POST", "/v0/messages/send", researcher.api_key, { to: writer.address, subject, text: "x\n" });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.approval.id;
  };
  await send("Batch one");
  await send("Batch two");
  const third = await send("Batch three");

  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await newPage(context);
  await page.goto(base + reviewer.console_invite.path);
  const password = "another horse battery staple";
  await page.getByLabel(/New password/).fill(password);
  await page.getByLabel("The same again").fill(password);
  await page.getByRole("button", { name: "Set password" }).click();
  await page.getByText("is set").waitFor();

  // A deep link opened signed out: sign-in first, then the approval itself.
  await page.goto(base + `/approvals/${third}`);
  await page.waitForURL(base + `/sign-in?next=%2Fapprovals%2F${third}`);
  await check(page, "12-sign-in-deep-link");
  await page.getByLabel("Address").fill(reviewer.address);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.waitForURL(base + `/approvals/${third}`);
  await page.getByRole("heading", { name: "Why it is held" }).waitFor();
  await page.getByRole("heading", { name: "Earlier in this thread" }).waitFor();

  // Tick two (one with the keyboard); a refresh of the queue keeps them ticked.
  await page.getByRole("link", { name: "Approvals" }).click();
  const one = page.getByRole("checkbox", { name: /Select “Batch one”/ });
  const two = page.getByRole("checkbox", { name: /Select “Batch two”/ });
  await one.check();
  await two.focus();
  await page.keyboard.press("Space");
  assert.ok(await two.isChecked());
  await page.waitForResponse((r) => r.url().includes("/approvals/queue"), { timeout: 15_000 });
  await page.waitForTimeout(300);
  assert.ok(await one.isChecked(), "a ticked box survives the queue's refresh");
  // "Select all" ticks every pending mail in the list, and clears them again.
  const all = page.getByRole("checkbox", { name: "Select every pending mail in this list" });
  const boxes = page.getByRole("checkbox", { name: /^Select “/ });
  await all.check();
  for (const b of await boxes.all()) assert.ok(await b.isChecked(), "select all ticks every box");
  await all.uncheck();
  for (const b of await boxes.all()) assert.ok(!(await b.isChecked()), "clearing it clears every box");
  await one.check();
  await two.check();
  await check(page, "13-approvals-selected");
  await page.getByRole("button", { name: "Approve selected" }).click();
  await page.getByText("2 of 2 approved").waitFor();
  await check(page, "14-batch-decided");
  const inbox = (await rest("GET", "/v0/messages", writer.api_key)).body.items.map((m) => m.subject).sort();
  assert.deepEqual(inbox, ["Batch one", "Batch two"]);

  // Notices by mail to the reviewer's own address.
  await page.getByRole("link", { name: "Notifications" }).click();
  await page.getByText("Notices by mail are off").waitFor();
  await page.getByLabel(/Address/).fill(reviewer.address);
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByText(`Notices go to ${reviewer.address}`).waitFor();
  await check(page, "15-notifications");
  await send("Batch four");
  let notice;
  for (let i = 0; i < 50 && !notice; i++) {
    const items = (await rest("GET", "/v0/messages", reviewer.api_key)).body.items;
    notice = items.find((m) => m.subject === "Held for review: Batch four");
    if (!notice) await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(notice, "the notice arrived");
  const full = (await rest("GET", `/v0/messages/${notice.id}`, reviewer.api_key)).body;
  assert.match(full.text, new RegExp(`${base}/approvals/apr_`));
  await context.close();
});
