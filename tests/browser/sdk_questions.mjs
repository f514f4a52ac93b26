// The official TypeScript SDK client meets a downstream server's question, run by
// tests/server/test_questions_sdk.py. Arguments: agents-mcp's URL, then "inline" (the
// client declares elicitation and answers the form it is shown) or "tool" (it does not:
// the question comes back in the result and is answered with answer_question), then the
// answer as JSON ({"action": …, "content": {…}}). The SDK checks every structuredContent
// against the tool's outputSchema. Prints one JSON object: the questions the client was
// asked, and each call's structuredContent.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const [url, mode, answerJson] = process.argv.slice(2);
const answer = JSON.parse(answerJson);
const capabilities = mode === "inline" ? { elicitation: { form: {} } } : {};
const client = new Client({ name: "agents-mcp-test", version: "0" }, { capabilities });
const asked = [];
if (mode === "inline") {
  client.setRequestHandler(ElicitRequestSchema, async (request) => {
    asked.push({ message: request.params.message, schema: request.params.requestedSchema });
    return answer;
  });
}
await client.connect(new StreamableHTTPClientTransport(new URL(url)));

const calls = [];
async function call(name, args) {
  const result = await client.callTool({ name, arguments: args }); // validates
  calls.push({ name, isError: result.isError ?? false, structured: result.structuredContent });
  return result.structuredContent;
}

const first = await call("chat_with_agent", { agent: "helper", message: "go" });
if (mode === "tool") {
  const [question] = first.pending_questions;
  await call("answer_question", {
    thread_id: first.thread_id,
    question_id: question.question_id,
    ...answer,
  });
}
process.stdout.write(JSON.stringify({ asked, calls }) + "\n");
await client.close();
