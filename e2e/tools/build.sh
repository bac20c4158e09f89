#!/usr/bin/env bash
# Builds the pinned Kubernetes tools into .tools/bin (see docs/cluster.md).
#
# Why a script and not make rules: a tool is up to date when its binary exists and its stamp
# holds the hash of what pins it (its module's go.mod and go.sum, the build flags, and for a
# tool whose source lives here, that source), which make's timestamps cannot express. Tools
# that need building are built in one `go build` per module and flag set, so shared packages
# compile once.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
bin=.tools/bin
stamps=.tools/stamps
kube_mod=e2e/tools
helm_mod=e2e/tools/helm
tags=providerless

say() { printf 'tools: %s\n' "$*"; }
fail() { printf 'tools: error: %s\n' "$*" >&2; exit 1; }

module_version() { # module dir, module path -> pinned version
  (cd "$1" && go list -m -f '{{.Version}}' "$2")
}

stamp_key() { # module dir, recipe, source files -> hash of what pins the build
  local mod=$1 recipe=$2
  shift 2
  cat "$mod/go.mod" "$mod/go.sum" "$@" <(printf '%s\n' "$recipe") | sha256sum | cut -d' ' -f1
}

sources() { # source dirs of a group -> their files, in a stable order
  local dir
  for dir in "$@"; do
    find "$dir" -type f -name '*.go' | LC_ALL=C sort
  done
}

up_to_date() { # tool, key
  [[ -x "$bin/$1" && -f "$stamps/$1" && "$(cat "$stamps/$1")" == "$2" ]]
}

# Groups: name|module dir|binaries|packages|ldflags kind|what to expect (measured on 2 cores)
# |source dirs of our own (relative to the root; their files join the stamp).
# Binaries and packages align.
groups=(
  "kube|$kube_mod|kube-apiserver kube-controller-manager kube-scheduler kubectl|k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl|kube|about 9 minutes with an empty build cache, 30 s to relink from a warm one"
  "etcd|$kube_mod|etcd|go.etcd.io/etcd/server/v3|none|most packages are shared with the kube group"
  "kwok|$kube_mod|kwok kwokctl|sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl|none|most packages are shared with the kube group"
  "helm|$helm_mod|helm|helm.sh/helm/v3/cmd/helm|helm|about 3 minutes with an empty build cache"
  "kstatus|$kube_mod|kstatus|tollgate.dev/e2e/tools/kstatus|none|seconds: its packages are shared with the kube group|$kube_mod/kstatus"
)

recipe() { # module dir, ldflags kind -> the flags, in a stable text form
  printf 'go build -tags %s ldflags=%s' "$tags" "$2"
}

pending=()
for group in "${groups[@]}"; do
  IFS='|' read -r name mod tools _pkgs kind _hint own <<<"$group"
  read -ra own_dirs <<<"$own"
  mapfile -t own_files < <(sources "${own_dirs[@]}")
  key=$(stamp_key "$mod" "$(recipe "$mod" "$kind")" "${own_files[@]}")
  for tool in $tools; do
    if ! up_to_date "$tool" "$key"; then
      pending+=("$group")
      break
    fi
  done
done

if ((${#pending[@]} == 0)); then
  say "all tools up to date in $bin"
  exit 0
fi

command -v go >/dev/null || fail "'go' is not on PATH: install Go 1.26 or newer (https://go.dev/dl/) and retry"

ldflags_for() { # module dir, ldflags kind
  case "$2" in
    kube)
      local v major minor
      v=$(module_version "$1" k8s.io/kubernetes)
      major=${v#v}; major=${major%%.*}
      minor=${v#v*.}; minor=${minor%%.*}
      # What hack/lib/version.sh stamps; unset, /version says v0.0.0-master and clients
      # (kubectl's version dispatcher, helm) misjudge the server.
      local x=""
      for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        x+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
        x+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
      done
      printf '%s' "$x"
      ;;
    helm)
      # Helm's default capabilities follow the Kubernetes libraries it links (client-go v0.N
      # is Kubernetes 1.N), as helm's own Makefile stamps them.
      local v k major=1 minor
      v=$(module_version "$1" helm.sh/helm/v3)
      k=$(module_version "$1" k8s.io/client-go)
      minor=${k#v0.}; minor=${minor%%.*}
      printf '%s' "-X helm.sh/helm/v3/internal/version.version=$v \
-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$major \
-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor \
-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$major \
-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
      ;;
    none) ;;
  esac
}

mkdir -p "$bin" "$stamps"
for group in "${pending[@]}"; do
  IFS='|' read -r name mod tools pkgs kind hint own <<<"$group"
  read -ra own_dirs <<<"$own"
  mapfile -t own_files < <(sources "${own_dirs[@]}")
  say "$name: fetching modules for $mod (GOPROXY=$(go env GOPROXY))"
  if ! out=$(cd "$mod" && go mod download 2>&1); then
    printf '%s\n' "$out" | tail -5 >&2
    fail "cannot download the Go modules of $mod: is the module proxy reachable? \
(the first build needs it; later builds use the module cache)"
  fi
  read -ra tool_list <<<"$tools"
  read -ra pkg_list <<<"$pkgs"
  ldflags=$(ldflags_for "$mod" "$kind")
  start=$SECONDS
  if ((${#tool_list[@]} == 1)); then
    # One package: -o names the binary (etcd's main package would be called `server`).
    out_path="$root/$bin/${tool_list[0]}"
  else
    out_path="$root/$bin/"
  fi
  say "$name: building ${tools} ($hint)"
  (cd "$mod" && go build -tags "$tags" -ldflags "$ldflags" -o "$out_path" "${pkg_list[@]}") ||
    fail "$name: go build failed (see above)"
  key=$(stamp_key "$mod" "$(recipe "$mod" "$kind")" "${own_files[@]}")
  for tool in "${tool_list[@]}"; do
    printf '%s\n' "$key" >"$stamps/$tool"
  done
  say "$name: built in $((SECONDS - start)) s"
done
say "built: ${pending[*]%%|*}"
