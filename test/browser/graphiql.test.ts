/**
 * The GraphiQL page in a real browser (Debian's chromium driven by
 * playwright-core), against a real server: the page loads with no request
 * leaving the machine, a query runs with the token typed into the headers
 * editor, and a subscription over graphql-ws receives a live notification.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { available, CHROMIUM_PATH } from "../support/deps.js";
import { csrFor } from "../certificates/helpers.js";
import { addOfficer } from "../support/officers.js";
import { createOrganization } from "../support/organizations.js";
import { startTestServer, type TestServer } from "../support/server.js";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const webSrc = path.join(repoRoot, "web");
const builtIndex = path.join(repoRoot, "dist", "web", "index.html");

// From docs/stack.md: headless, and nothing that would make the browser call home on its own.
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Newest modification time under a directory (the page's sources). */
function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : statSync(full).mtimeMs);
  }
  return newest;
}

/** A fresh clone has no dist/web; a stale one would test old page code. Build once, then reuse. */
function ensureWebBuilt(): void {
  if (existsSync(builtIndex) && statSync(builtIndex).mtimeMs >= newestMtime(webSrc)) return;
  execFileSync("npm", ["run", "build:web"], { cwd: repoRoot, stdio: "inherit", timeout: 180_000 });
}

/**
 * Replaces the whole text of a Monaco editor. insertText (not type) so that
 * Monaco's auto-closing of brackets and quotes does not add characters.
 */
async function setEditorText(page: Page, editor: Locator, text: string): Promise<void> {
  await editor.locator(".view-lines").click();
  await page.keyboard.press("ControlOrMeta+A");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(text);
}

/** The request headers editor: the visible one of the two editor tools (variables are hidden). */
function headersEditor(page: Page): Locator {
  return page.locator("section.graphiql-editor-tool .graphiql-editor:not(.hidden) .monaco-editor");
}

/** The text a Monaco editor shows; it renders spaces as non-breaking ones, normalised here. */
async function editorText(editor: Locator): Promise<string> {
  return (await editor.locator(".view-lines").innerText()).replace(/\u00a0/g, " ");
}

/** The result pane's text. */
function resultText(page: Page): Promise<string> {
  return editorText(page.locator("section.result-window .monaco-editor"));
}

/** Polls the result pane until it matches or the time is up; returns its last text either way. */
async function paneMatching(page: Page, pattern: RegExp, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let text = await resultText(page);
  while (!pattern.test(text) && Date.now() < deadline) {
    await page.waitForTimeout(100);
    text = await resultText(page);
  }
  return text;
}

/** Puts an operation in the editor and runs it the way a user does: wait for GraphiQL to take it in, then Ctrl+Enter. */
async function run(page: Page, operation: string): Promise<void> {
  const queryEditor = page.locator(".graphiql-query-editor .monaco-editor");
  await setEditorText(page, queryEditor, operation);
  // GraphiQL debounces editor changes (~500 ms) before it parses the operation it will run.
  await page.waitForTimeout(600);
  await queryEditor.locator(".view-lines").click();
  await page.keyboard.press("ControlOrMeta+Enter");
}

describe.skipIf(!(await available("chromium")))("GraphiQL page in chromium", () => {
  let server: TestServer;
  let profileDir: string;
  let context: BrowserContext | undefined;
  let page: Page;
  const requested: string[] = [];
  const sockets: string[] = [];

  beforeAll(async () => {
    ensureWebBuilt();
    server = await startTestServer();
    profileDir = mkdtempSync(path.join(os.tmpdir(), "keyportal-chromium-"));
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 800 },
      timeout: 30_000,
    });
    // Every request of every page and worker in this profile, and every WebSocket.
    context.on("request", (request) => requested.push(request.url()));
    page = context.pages()[0] ?? (await context.newPage());
    page.on("websocket", (ws) => sockets.push(ws.url()));
    page.setDefaultTimeout(15_000);
  }, 240_000);

  afterAll(async () => {
    const shot = process.env.KEYPORTAL_GRAPHIQL_SCREENSHOT;
    if (shot && page) await page.screenshot({ path: shot }).catch(() => undefined);
    await context?.close().catch(() => undefined);
    await server?.close();
    if (profileDir) rmSync(profileDir, { recursive: true, force: true });
  }, 60_000);

  it("serves the built GraphiQL page at /graphql to a browser", async () => {
    const response = await page.goto(`${server.url}/graphql`, { waitUntil: "load", timeout: 30_000 });
    expect(response?.status()).toBe(200);
    expect(await page.title()).toBe("KeyPortal GraphiQL");
    await page.locator(".graphiql-query-editor .monaco-editor").waitFor({ state: "visible", timeout: 30_000 });
    // The headers editor is shown by default with a placeholder for the token.
    await expect.poll(() => editorText(headersEditor(page))).toContain("Bearer <paste your token>");
  });

  it("runs a query with the operator token typed into the headers editor", async () => {
    await setEditorText(page, headersEditor(page), JSON.stringify({ Authorization: `Bearer ${server.operatorToken}` }));
    await run(page, "{ me { role organization { name } } }");
    await expect.poll(() => resultText(page), { timeout: 15_000 }).toContain("KMS_OPERATOR");
  });

  it("sends the headers editor's Authorization as the subscription's connectionParams", async () => {
    // A token the server does not know: the socket is refused (4403) and the page says so at once.
    await setEditorText(page, headersEditor(page), JSON.stringify({ Authorization: "Bearer kp_not_a_real_token" }));
    await run(page, "subscription { notifications { id type message } }");
    await expect.poll(() => resultText(page), { timeout: 15_000 }).toContain("4403 Forbidden");
  });

  it("receives a live notification over a graphql-ws subscription", async () => {
    await setEditorText(page, headersEditor(page), JSON.stringify({ Authorization: `Bearer ${server.operatorToken}` }));
    const subscribed = page.waitForEvent("websocket", { timeout: 15_000 }).then(
      (ws) => new Promise<void>((resolve) => ws.on("framesent", (frame) => String(frame.payload).includes('"subscribe"') && resolve())),
    );
    await run(page, "subscription { notifications { id type message } }");
    await subscribed;
    // The server may still be wiring the subscription when its subscribe frame has gone out,
    // and an event published before that is (rightly) not replayed: cause one until it shows.
    const org = await createOrganization(server, { officerCount: 0 });
    let pane = "";
    for (let attempt = 1; attempt <= 5; attempt++) {
      await addOfficer(server, org.id, `graphiql-${attempt}@example.com`);
      pane = await paneMatching(page, /OFFICER_REGISTERED|"errors"/, 3_000);
      if (/OFFICER_REGISTERED|"errors"/.test(pane)) break;
    }
    expect(pane).toContain("OFFICER_REGISTERED");
    expect(pane).toContain("notifications");
  });

  it("walks the README: the operator creates an organization and signs in one window, an officer's subscription in a second window sees CSR_SIGNED", async () => {
    // Window 1, as the operator (README step 3): create the participant in GraphiQL.
    // A fresh load: Ctrl+Enter would only stop the previous test's running subscription.
    await page.goto(`${server.url}/graphql`, { waitUntil: "load", timeout: 30_000 });
    await page.locator(".graphiql-query-editor .monaco-editor").waitFor({ state: "visible", timeout: 30_000 });
    await setEditorText(page, headersEditor(page), JSON.stringify({ Authorization: `Bearer ${server.operatorToken}` }));
    const name = `Walkthrough Bank ${Date.now()}`;
    await run(
      page,
      `mutation { createOrganization(input: { name: "${name}", kind: PARTICIPANT, contactEmail: "pki@walkthrough.example", country: "GB" }) { id name } }`,
    );
    const created = await paneMatching(page, /"id": "[0-9a-f-]{36}"/, 15_000);
    const orgId = /"id": "([0-9a-f-]{36})"/.exec(created)?.[1];
    expect(orgId, created).toBeDefined();
    const ada = await addOfficer(server, orgId!, "ada@walkthrough.example");
    await addOfficer(server, orgId!, "bob@walkthrough.example");

    // Window 2 (README step 4: a second browser window, not a GraphiQL tab), as Ada: subscribe.
    const second = await context!.newPage();
    second.setDefaultTimeout(15_000);
    try {
      await second.goto(`${server.url}/graphql`, { waitUntil: "load", timeout: 30_000 });
      await second.locator(".graphiql-query-editor .monaco-editor").waitFor({ state: "visible", timeout: 30_000 });
      await setEditorText(second, headersEditor(second), JSON.stringify({ Authorization: `Bearer ${ada.token}` }));
      const subscribed = second.waitForEvent("websocket", { timeout: 15_000 }).then(
        (ws) => new Promise<void>((resolve) => ws.on("framesent", (frame) => String(frame.payload).includes('"subscribe"') && resolve())),
      );
      await run(second, "subscription { notifications(types: [CSR_SIGNED]) { id type message certificate { id serialNumber } } }");
      await subscribed;
      await second.waitForTimeout(500);

      // README step 5, as Ada (the CLI's part is tested in test/cli): a CSR for the organization.
      const tmp = mkdtempSync(path.join(os.tmpdir(), "keyportal-walkthrough-"));
      let csrId: string;
      try {
        const { pem } = csrFor(tmp, { name, country: "GB" }, "Walkthrough Client");
        const { submitCsr } = await server.ok<{ submitCsr: { id: string } }>(
          `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`,
          { input: { organizationId: orgId, kind: "MTLS_CLIENT", environment: "MTF", pem } },
          ada.token,
        );
        csrId = submitCsr.id;
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }

      // README step 6, back in window 1 as the operator: sign it in GraphiQL.
      await page.bringToFront();
      await run(page, `mutation { signCsr(input: { csrId: "${csrId}" }) { id serialNumber notAfter } }`);
      const signed = await paneMatching(page, /"serialNumber": "[0-9a-f]+"/, 15_000);
      const certificateId = /"id": "([0-9a-f-]{36})"/.exec(signed)?.[1];
      expect(certificateId, signed).toBeDefined();

      // Window 2 saw it, with the certificate id that `keyportal download --certificate` takes.
      const seen = await paneMatching(second, /CSR_SIGNED/, 15_000);
      expect(seen).toContain("CSR_SIGNED");
      expect(seen).toContain(certificateId!);
    } finally {
      await second.close();
    }
  });

  it("follows the walkthrough: the operator registers an officer, who enrolls with the code from the mail in data/mail", async () => {
    await page.reload({ waitUntil: "load" });
    await page.locator(".graphiql-query-editor .monaco-editor").waitFor({ state: "visible", timeout: 30_000 });
    const org = await createOrganization(server, { officerCount: 0 });
    const email = `ada-${Date.now()}@acme.example`;
    await setEditorText(page, headersEditor(page), JSON.stringify({ Authorization: `Bearer ${server.operatorToken}` }));
    await run(page, `mutation { registerOfficer(input: { organizationId: "${org.id}", name: "Ada", email: "${email}" }) { id enrolled } }`);
    expect(await paneMatching(page, /"enrolled": false/, 15_000)).toContain('"enrolled": false');
    // As the README says: the code is on the line "Enrollment code: ..." of the .eml file under data/mail/.
    const mailDir = path.join(server.dataDir, "mail");
    let code: string | undefined;
    for (let i = 0; i < 100 && !code; i++) {
      for (const file of existsSync(mailDir) ? readdirSync(mailDir).filter((f) => f.endsWith(".eml")) : []) {
        const text = readFileSync(path.join(mailDir, file), "utf8");
        if (text.includes(`To: ${email}`)) code ??= /^Enrollment code: (\S+)$/m.exec(text)?.[1];
      }
      if (!code) await page.waitForTimeout(50);
    }
    expect(code).toBeDefined();
    // enrollOfficer needs no token.
    await setEditorText(page, headersEditor(page), "{}");
    await run(page, `mutation { enrollOfficer(code: "${code}", label: "laptop") { token officer { email enrolled } } }`);
    // The pane wraps long lines: the token may start on a line of its own.
    const pane = await paneMatching(page, /"token":\s*"kp_[A-Za-z0-9_-]+"|"errors"/, 15_000);
    const token = /"token":\s*"(kp_[A-Za-z0-9_-]+)"/.exec(pane)?.[1];
    expect(token, pane).toBeDefined();
    expect(pane).toContain('"enrolled": true');
    await setEditorText(page, headersEditor(page), JSON.stringify({ Authorization: `Bearer ${token}` }));
    await run(page, "{ me { role officer { email } } }");
    expect(await paneMatching(page, /SECURITY_OFFICER/, 15_000)).toContain(email);
  });

  it("made no request to anywhere but the server under test", () => {
    const origin = new URL(server.url);
    const allowed = [`http://${origin.host}/`, `ws://${origin.host}/`];
    const outside = [...requested, ...sockets].filter((url) => !allowed.some((a) => url.startsWith(a)) && !/^(data|blob):/.test(url));
    expect(outside).toEqual([]);
    expect(requested.some((url) => url.includes("/graphiql/assets/"))).toBe(true);
    expect(sockets).toContain(`ws://${origin.host}/graphql`);
  });
});
