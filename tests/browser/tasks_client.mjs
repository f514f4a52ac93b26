// The official MCP Tasks client (@modelcontextprotocol/ext-tasks, on the TypeScript SDK v2
// client) against a real agents-mcp, run by tests/server/test_tasks_node.py.
//
//   node tasks_client.mjs <mcp url> <command> <json options>
//
// Commands (one JSON line per event on stdout, then {"done": ...}):
//   call    callTool(options.tool, options.arguments), settle, answering every input
//           request with options.answer; "cancel_when": "working" cancels once the task
//           is seen working
//   create  callTool, print the task id and its serialized reference, detach (the task
//           goes on without us, as when a host persists it and stops)
//   result  resume options.reference (from create) and follow it to its end, answering
//           with options.answer
//   get     one tasks/get of options.taskId (its error, if refused)
//
// AGENTS_MCP_TOKEN, when set, is sent as a bearer token on every request.
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import {
  createTaskSessionFromClient,
  resultFromTaskOutcome,
} from "@modelcontextprotocol/ext-tasks/client";

const [url, command, rawOptions] = process.argv.slice(2);
const options = JSON.parse(rawOptions ?? "{}");
const PROTOCOL = "2026-07-28";
const clientInfo = { name: "ext-tasks-test", version: "0" };
const clientCapabilities = { elicitation: { form: {} } };
const token = process.env.AGENTS_MCP_TOKEN;
const auth = token ? { authorization: `Bearer ${token}` } : {};

const emit = (line) => process.stdout.write(JSON.stringify(line) + "\n");

// The host's own request path, as the V2 task session requires: one POST per request in
// the 2026-07-28 era, with the routing headers (Mcp-Name is the task id for tasks/*).
let nextId = 1;
async function rawDispatch(request, dispatch = {}) {
  const id = `raw-${nextId++}`;
  const headers = {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    "mcp-protocol-version": PROTOCOL,
    "mcp-method": request.method,
    ...auth,
  };
  const params = request.params ?? {};
  if (request.method.startsWith("tasks/")) headers["mcp-name"] = params.taskId;
  else if (request.method === "tools/call") headers["mcp-name"] = params.name;
  // The session's own routing headers (Mcp-Name, …) win; names are case-insensitive.
  for (const [name, value] of Object.entries(dispatch.context?.headers ?? {})) {
    headers[name.toLowerCase()] = value;
  }
  const response = await fetch(url, {
    method: "POST",
    headers,
    signal: dispatch.signal,
    body: JSON.stringify({ jsonrpc: "2.0", id, ...request }),
  });
  const text = await response.text();
  let message;
  if ((response.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
    message = text
      .split("\n")
      .filter((l) => l.startsWith("data:"))
      .map((l) => JSON.parse(l.slice(5)))
      .find((m) => m.id === id);
  } else {
    message = JSON.parse(text);
  }
  return message.error
    ? { kind: "error", error: message.error }
    : { kind: "result", result: message.result };
}

const client = new Client(clientInfo, {
  capabilities: clientCapabilities,
  versionNegotiation: { mode: { pin: PROTOCOL } },
});
await client.connect(
  new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: auth } }),
);

const asked = [];
const session = createTaskSessionFromClient(client, {
  endpointId: "agents-mcp-test",
  rawDispatch,
  v2RequestFraming: { protocolVersion: PROTOCOL, clientInfo, clientCapabilities },
  onInputRequest: async (request, context) => {
    asked.push({ kind: request.kind, inputId: context.inputId, params: request.params });
    emit({ event: "input", inputId: context.inputId });
    return options.answer ?? { action: "cancel" };
  },
});

function outcomeOf(outcome) {
  const line = { status: outcome.status };
  if (outcome.status === "completed") line.result = resultFromTaskOutcome(outcome);
  if (outcome.status === "failed") line.error = outcome.error;
  return line;
}

function onEvent(event) {
  const task = event.task;
  if (task) emit({ event: task.status, statusMessage: task.statusMessage ?? null });
}

try {
  if (command === "call") {
    const execution = await session.callTool(options.tool, options.arguments);
    emit({ kind: execution.kind, taskId: execution.handle?.taskId ?? null });
    const settled = execution.settle({
      onEvent: (event) => {
        onEvent(event);
        if (options.cancel_when && event.task?.status === options.cancel_when) {
          execution.cancel().catch((e) => emit({ cancelError: String(e) }));
        }
      },
    });
    const { outcome } = await settled;
    emit({ done: outcomeOf(outcome), asked, capabilities: session.capabilities });
  } else if (command === "create") {
    const execution = await session.callTool(options.tool, options.arguments);
    const taskId = execution.handle?.taskId ?? null;
    const reference = execution.kind === "task" ? execution.serializeReference() : null;
    await execution.detach();
    emit({ done: { kind: execution.kind, taskId, reference } });
  } else if (command === "result") {
    const execution = await session.resumeTask(options.reference);
    const { outcome } = await execution.settle({ onEvent });
    emit({ done: outcomeOf(outcome), asked });
  } else if (command === "get") {
    const reply = await rawDispatch({ method: "tasks/get", params: {
      taskId: options.taskId,
      _meta: {
        "io.modelcontextprotocol/protocolVersion": PROTOCOL,
        "io.modelcontextprotocol/clientInfo": clientInfo,
        "io.modelcontextprotocol/clientCapabilities": {
          ...clientCapabilities,
          extensions: { "io.modelcontextprotocol/tasks": {} },
        },
      },
    } });
    emit({ done: reply });
  } else {
    throw new Error(`unknown command ${command}`);
  }
} catch (error) {
  emit({ done: { thrown: error?.name ?? "Error", message: String(error?.message ?? error), code: error?.code ?? null } });
} finally {
  // Closing the session cancels its executions, detached ones too (ext-tasks 0.2.2): a
  // host that hands a task over (create) keeps it running by not closing the session.
  if (command !== "create") await session.close();
  await client.close();
}
