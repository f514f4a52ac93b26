// The official TypeScript SDK client against a real agents-mcp, run by tests/test_results.py.
//
// The SDK checks every structuredContent against the tool's outputSchema (Ajv) and throws
// when it does not match; this script also checks every argument default against its own
// input schema with the same Ajv. It prints one JSON object: each call's isError and
// structuredContent, and the defaults that failed their schema (none, we hope).
import Ajv from "ajv";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const url = new URL(process.argv[2]);
const client = new Client({ name: "agents-mcp-test", version: "0" });
await client.connect(new StreamableHTTPClientTransport(url));

const ajv = new Ajv({ strict: false });
const { tools } = await client.listTools();
const badDefaults = [];
for (const tool of tools) {
  for (const [name, schema] of Object.entries(tool.inputSchema.properties ?? {})) {
    if ("default" in schema && !ajv.validate(schema, schema.default)) {
      badDefaults.push(`${tool.name}.${name}: ${ajv.errorsText()}`);
    }
  }
}

const calls = {};
async function call(label, name, args) {
  const result = await client.callTool({ name, arguments: args });  // validates
  calls[label] = { isError: result.isError ?? false, structured: result.structuredContent };
  return result.structuredContent;
}

const done = await call("completed", "chat_with_agent", { agent: "demo", message: "hello" });
await call("get_thread", "get_thread", { thread_id: done.thread_id, include_messages: true });
await call("unavailable", "chat_with_agent", { agent: "loose", message: "hello" });
await call("failed", "chat_with_agent", { agent: "strict", message: "hello" });
await call("list_threads", "list_threads", {});
await call("list_threads_null", "list_threads", { agent: null });
await call("cancel_run", "cancel_run", { thread_id: done.thread_id });

process.stdout.write(JSON.stringify({ badDefaults, calls }) + "\n");
await client.close();
