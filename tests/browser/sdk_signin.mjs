// The official TypeScript SDK client asking an agent that needs a sign-in, run by
// tests/test_signin.py: with MODE=url it declares URL-mode elicitation and, asked to open
// a sign-in page, plays the browser (the person signs in as USER at the authorization
// server, which redirects to agents-mcp's /oauth/callback); with MODE=form it declares
// form-mode elicitation only; with MODE=none it declares no elicitation. Prints one JSON
// object: the modes of the elicitation requests that came over the wire (before the SDK
// checks them against what was declared), the elicitations its handler got, the
// completions it was told of, and the chat_with_agent result.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema, ElicitationCompleteNotificationSchema } from "@modelcontextprotocol/sdk/types.js";

const [url, token, mode, loginBase, user] = process.argv.slice(2);
const declared = { url: { elicitation: { url: {} } }, form: { elicitation: { form: {} } } };
const capabilities = declared[mode] ?? {};
const client = new Client({ name: "agents-mcp-signin-test", version: "0" }, { capabilities });
const report = { requested: [], elicitations: [], completed: [], pages: [] };
let browsing = Promise.resolve();
let completion;
const completed = new Promise((resolve) => { completion = resolve; });

async function browse(link) {
  await fetch(`${loginBase}/test/login?user=${encodeURIComponent(user)}`);
  const authorize = await fetch(link, { redirect: "manual" });
  const back = await fetch(authorize.headers.get("location"));
  report.pages.push({ status: back.status, text: await back.text() });
}

if (mode !== "none") {
  client.setRequestHandler(ElicitRequestSchema, async (request) => {
    const p = request.params;
    report.elicitations.push({ mode: p.mode, message: p.message, url: p.url, id: p.elicitationId });
    browsing = browse(p.url);  // the person goes to the page after saying yes
    return { action: "accept" };
  });
  client.setNotificationHandler(ElicitationCompleteNotificationSchema, (n) => {
    report.completed.push(n.params.elicitationId);
    completion();
  });
}

const headers = { Authorization: `Bearer ${token}` };
const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
await client.connect(transport);
const deliver = transport.onmessage;
transport.onmessage = (message, extra) => {
  if (message.method === "elicitation/create") report.requested.push(message.params?.mode ?? "form");
  deliver(message, extra);
};
const result = await client.callTool(
  { name: "chat_with_agent", arguments: { agent: "messenger", message: `hi from ${user}`, wait_seconds: 60 } },
  undefined,
  { timeout: 120000 },
);
report.result = result.structuredContent;
await browsing;
if (report.elicitations.length) {
  await Promise.race([completed, new Promise((resolve) => setTimeout(resolve, 10000))]);
}
process.stdout.write(JSON.stringify(report) + "\n");
await client.close();
