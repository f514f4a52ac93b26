// The official TypeScript SDK's stdio client (Node's child_process, as Claude Code and
// the Inspector start servers) against `agents-mcp serve`, run by tests/test_stdio.py.
// Arguments: the server's command and its arguments. Prints one JSON object: the tool
// names and list_threads's structuredContent.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [command, ...args] = process.argv.slice(2);
const transport = new StdioClientTransport({ command, args, env: process.env, stderr: "inherit" });
const client = new Client({ name: "agents-mcp-test", version: "0" });
await client.connect(transport);
const { tools } = await client.listTools();
const listed = await client.callTool({ name: "list_threads", arguments: {} });
process.stdout.write(
  JSON.stringify({ tools: tools.map((t) => t.name).sort(), listed: listed.structuredContent }) + "\n",
);
await client.close();
