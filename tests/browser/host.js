// A minimal MCP Apps host, as a chat client would be: the official TypeScript SDK client
// talks to agents-mcp over streamable HTTP, and the official AppBridge shows a tool's
// ui:// view in a sandboxed iframe. The driver (run.mjs) plays the model through
// window.host: it lists the tools the model may see and calls tools as the model would.
import { AppBridge, PostMessageTransport } from "@modelcontextprotocol/ext-apps/app-bridge";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const UI = "io.modelcontextprotocol/ui";
const MIME = "text/html;profile=mcp-app";
// The restrictive default the MCP Apps spec asks hosts to apply when a resource declares no CSP.
const CSP = "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline';"
  + " img-src 'self' data:; media-src 'self' data:; connect-src 'none'; frame-src 'none';"
  + " object-src 'none'; base-uri 'self'";

const visibility = (tool) => tool._meta?.ui?.visibility ?? ["model", "app"];

class Host {
  constructor() {
    this.client = null;
    this.tools = [];
    this.bridge = null;
    this.appCalls = [];      // every tools/call the view made through the host
    this.modelContext = [];  // ui/update-model-context requests from the view
    this.theme = "light";
  }

  async connect(token, { apps = true } = {}) {
    const client = new Client(
      { name: "agents-mcp browser test host", version: "1.0.0" },
      { capabilities: apps ? { extensions: { [UI]: { mimeTypes: [MIME] } } } : {} },
    );
    const transport = new StreamableHTTPClientTransport(new URL("/mcp", location.origin), {
      requestInit: { headers: { Authorization: `Bearer ${token}` } },
    });
    await client.connect(transport);
    const { tools } = await client.listTools();
    if (apps) {
      this.client = client;
      this.tools = tools;
    } else {
      await client.close();
    }
    return tools.map((t) => ({ name: t.name, ui: t._meta?.ui ?? null }));
  }

  // What a host offers its model: tools whose visibility includes "model".
  modelTools() {
    return this.tools.filter((t) => visibility(t).includes("model")).map((t) => t.name);
  }

  // The model calls a tool; a tool with a view gets it rendered next to the result.
  async callAsModel(name, args) {
    const tool = this.tools.find((t) => t.name === name);
    if (!tool || !visibility(tool).includes("model")) throw new Error(`${name} is not offered to the model`);
    const call = this.client.callTool({ name, arguments: args }, undefined, { timeout: 120000 });
    const uri = tool._meta?.ui?.resourceUri;
    if (uri) await this.show(uri, args, call);
    return await call;
  }

  async show(uri, args, call) {
    if (this.bridge) await this.bridge.close();
    const { contents } = await this.client.readResource({ uri });
    const page = contents.find((c) => c.mimeType === MIME);
    if (!page) throw new Error(`${uri} has no ${MIME} content`);
    const html = page.text.replace("<head>", `<head><meta http-equiv="Content-Security-Policy" content="${CSP}">`);

    const frame = document.createElement("iframe");
    frame.id = "view";
    frame.setAttribute("sandbox", "allow-scripts");  // an opaque origin, as hosts do
    frame.title = "agents-mcp view";
    const slot = document.getElementById("slot");
    slot.replaceChildren(frame);

    const bridge = new AppBridge(
      this.client,
      { name: "agents-mcp browser test host", version: "1.0.0" },
      { serverTools: {}, serverResources: {}, logging: {}, updateModelContext: { text: {} } },
      { hostContext: { theme: this.theme, displayMode: "inline", platform: "web" } },
    );
    this.bridge = bridge;
    bridge.onsizechange = ({ height }) => { if (height) frame.style.height = `${height}px`; };
    bridge.onupdatemodelcontext = async (params) => { this.modelContext.push(params); return {}; };
    const ready = new Promise((resolve) => { bridge.oninitialized = resolve; });
    // Listen before the view loads: its first message is ui/initialize.
    await bridge.connect(new PostMessageTransport(frame.contentWindow, frame.contentWindow));
    // Calls from the view: only tools whose visibility includes "app", as the spec requires.
    bridge.oncalltool = async (params) => {
      const tool = this.tools.find((t) => t.name === params.name);
      if (!tool || !visibility(tool).includes("app")) throw new Error(`${params.name} is not callable by apps`);
      this.appCalls.push(params);
      return await this.client.callTool(params, undefined, { timeout: 120000 });
    };
    frame.srcdoc = html;
    await ready;
    await bridge.sendToolInput({ arguments: args });
    call.then((result) => bridge.sendToolResult(result), (error) => bridge.sendToolCancelled({ reason: String(error) }));
  }

  setTheme(theme) {
    this.theme = theme;
    document.body.dataset.theme = theme;
    this.bridge?.setHostContext({ theme, displayMode: "inline", platform: "web" });
  }
}

window.host = new Host();
