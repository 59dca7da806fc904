# Provides Node.js 24 when this machine's `node` is older than 22.12 (Herald's floor).
# Source it:  . scripts/node24.sh   — it then exports PATH and npm_config_nodedir for this shell.
# Node 24 comes from the npm registry package node-linux-<arch>@24 (an official build with its
# include/node headers, which native modules compile against). It is installed once into a cache
# directory; later runs reuse it. Nothing here reads stdin, so it works under CI=true.

herald_node_is_recent() {
  command -v node >/dev/null 2>&1 &&
    node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 22 || (a === 22 && b >= 12) ? 0 : 1)' 2>/dev/null
}

herald_provide_node24() {
  local arch
  case "$(uname -m)" in
    x86_64 | amd64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) echo "node24: no Node 24 package for $(uname -m); install Node.js >= 22.12 yourself" >&2; return 1 ;;
  esac
  local cache="${HERALD_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/herald-node24}"
  local home="$cache/node_modules/node-linux-$arch"
  if ! "$home/bin/node" -e 'process.exit(process.versions.node.startsWith("24.") ? 0 : 1)' 2>/dev/null; then
    echo "node24: $(node -v 2>/dev/null || echo 'no node') is older than 22.12; installing node-linux-$arch@24 into $cache"
    mkdir -p "$cache"
    # A throwaway package.json keeps npm from looking for a project above the cache directory.
    [ -f "$cache/package.json" ] || echo '{"private":true}' >"$cache/package.json"
    npm install --prefix "$cache" --no-audit --no-fund --no-save "node-linux-$arch@24" </dev/null || return 1
  fi
  export PATH="$home/bin:$PATH"
  # Native modules (node-gyp) build against these headers, not a system Node's.
  export npm_config_nodedir="$home"
  hash -r
  echo "node24: using $(node -v) from $home"
}

if ! herald_node_is_recent; then
  herald_provide_node24 || { echo "node24: could not provide Node 24" >&2; return 1 2>/dev/null || exit 1; }
fi
