// The official TypeScript SDK client refused by an agents-mcp with static tokens, run by
// tests/server/test_auth.py. Prints one JSON object: the message of the error each way of
// connecting ends with: no token, a wrong token, and an OAuth auth provider (as hosts use)
// that has no tokens and so goes looking for a way to log in.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const url = new URL(process.argv[2]);
const redirect = "http://127.0.0.1:9/callback";
const provider = {
  get redirectUrl() { return redirect; },
  get clientMetadata() { return { redirect_uris: [redirect], client_name: "agents-mcp-test" }; },
  clientInformation() { return undefined; },
  saveClientInformation() {},
  tokens() { return undefined; },
  saveTokens() {},
  redirectToAuthorization(where) { throw new Error(`the SDK would open ${where}`); },
  saveCodeVerifier() {},
  codeVerifier() { return "verifier"; },
};

async function refusal(options) {
  const client = new Client({ name: "agents-mcp-test", version: "0" });
  try {
    await client.connect(new StreamableHTTPClientTransport(url, options));
    await client.close();
    return null;
  } catch (error) {
    return String(error);
  }
}

const report = {
  none: await refusal({}),
  wrong: await refusal({ requestInit: { headers: { Authorization: "Bearer not-a-token" } } }),
  provider: await refusal({ authProvider: provider }),
};
process.stdout.write(JSON.stringify(report) + "\n");
