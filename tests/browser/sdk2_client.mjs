// The official TypeScript SDK v2 client (@modelcontextprotocol/client) in the 2026-07-28
// era against a real agents-mcp, run by tests/server/test_mrtr.py.
//
//   node sdk2_client.mjs <mcp url> <json options>
//
// options.tool / options.arguments: the one tool call to make. options.elicit: when set,
// the client declares elicitation and answers every question with it (the SDK fulfils
// input-required results with this handler and calls again, inside one callTool).
// Prints one JSON line: the call's result (or the error it threw) and the questions.
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";

const [url, rawOptions] = process.argv.slice(2);
const options = JSON.parse(rawOptions ?? "{}");
const capabilities = options.elicit ? { elicitation: { form: {} } } : {};
const client = new Client(
  { name: "sdk2-test", version: "0" },
  { capabilities, versionNegotiation: { mode: { pin: "2026-07-28" } } },
);
const asked = [];
if (options.elicit) {
  client.setRequestHandler("elicitation/create", async (request) => {
    asked.push(request.params);
    return options.elicit;
  });
}
await client.connect(new StreamableHTTPClientTransport(new URL(url)));
let line;
try {
  const result = await client.callTool({ name: options.tool, arguments: options.arguments });
  line = { era: client.getProtocolEra(), result, asked };
} catch (error) {
  line = { era: client.getProtocolEra(), thrown: String(error?.message ?? error), asked };
}
process.stdout.write(JSON.stringify(line) + "\n");
await client.close();
