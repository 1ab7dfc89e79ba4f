#!/usr/bin/env node
// OAuth interop: the official TypeScript SDK client against mcp-bridge in OAuth
// resource-server mode, with a test authorization server that issues JWTs for
// the client_credentials grant.
//
// Usage: node ts_oauth.mjs URL ISSUER CLIENT_ID CLIENT_SECRET SCOPE
//   URL is the bridge's Streamable HTTP endpoint (server-everything behind it),
//   which is also its --public-url.
//
// Checks:
//   1. The SDK's own discovery finds the Protected Resource Metadata: resource
//      equals URL and authorization_servers names ISSUER.
//   2. A request without a token gets 401 and the SDK's header parser finds the
//      resource_metadata URL in WWW-Authenticate.
//   3. A client with ClientCredentialsProvider connects: the SDK follows the
//      401 through metadata discovery, gets a token from ISSUER for the
//      resource, and retries with Authorization: Bearer. Then it calls `echo`.
//
// Output contract: one JSON line {"ok":true,...} on stdout, exit 0; or a
// message on stderr, exit 1.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  discoverOAuthProtectedResourceMetadata,
  extractResourceMetadataUrl,
} from "@modelcontextprotocol/sdk/client/auth.js";
import { ClientCredentialsProvider } from "@modelcontextprotocol/sdk/client/auth-extensions.js";
import { check, checkEcho, runMain } from "./common.mjs";

async function main(url, issuer, clientId, clientSecret, scope) {
  const prm = await discoverOAuthProtectedResourceMetadata(url);
  check(prm.resource === url, `metadata resource ${prm.resource} is not ${url}`);
  check(
    (prm.authorization_servers || []).includes(issuer),
    `metadata authorization_servers ${JSON.stringify(prm.authorization_servers)} lacks ${issuer}`,
  );

  const bare = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
  });
  check(bare.status === 401, `a request without a token got ${bare.status}, not 401`);
  const metadataUrl = extractResourceMetadataUrl(bare);
  check(metadataUrl !== undefined, "no resource_metadata in WWW-Authenticate");
  const viaHeader = await (await fetch(metadataUrl)).json();
  check(viaHeader.resource === url, `metadata behind resource_metadata names ${viaHeader.resource}`);

  const provider = new ClientCredentialsProvider({
    clientId,
    clientSecret,
    scope,
    expectedIssuer: issuer,
  });
  const client = new Client({ name: "mcp-bridge-oauth-interop", version: "0.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  await client.connect(transport);
  await checkEcho(client, "hello with a token");
  const tokens = provider.tokens();
  check(tokens?.access_token, "the provider holds no access token after connecting");
  await transport.terminateSession();
  await client.close();
  return { metadataUrl: metadataUrl.href, tokenType: tokens.token_type };
}

const [url, issuer, clientId, clientSecret, scope] = process.argv.slice(2);
runMain("ts_oauth", () => main(url, issuer, clientId, clientSecret, scope));
