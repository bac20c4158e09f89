"""Tollgate's status as GitOps tools read it: Argo CD's health (the Lua checks shipped in
deploy/argocd, run in Lua 5.1 like Argo CD's gopher-lua) and kstatus, which Flux's health checks
use (cli-utils' own ``status.Compute``, built by ``make tools`` as .tools/bin/kstatus), on objects
from live runs of the operator on the real local cluster."""
