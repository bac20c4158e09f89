-- Argo CD health of a tollgate.dev Canary or PromptRelease (both kinds share one status).
--
-- Tollgate writes kstatus conditions (Ready, Reconciling, Stalled, Promoted, RolledBack) with
-- status.observedGeneration; this reads them as kstatus does, and the phase where Argo CD has
-- words kstatus lacks (Suspended for a rollout waiting for a person or spec.suspend, Degraded
-- as soon as a rollback starts). Only Lua's base and table libraries are used: Argo CD opens
-- no other unless resource.customizations.useOpenLibs is set. docs/argocd.md has the table.
local hs = {}
local status = obj.status or {}
local conditions = status.conditions or {}

local function condition(kind)
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function is_true(kind)
  local c = condition(kind)
  return c ~= nil and c.status == "True"
end

local function message_of(kind, fallback)
  local c = condition(kind)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if status.message ~= nil and status.message ~= "" then
    return status.message
  end
  return fallback
end

local function verdict(health, message)
  hs.status = health
  hs.message = message
  return hs
end

local generation = obj.metadata.generation
local observed = status.observedGeneration
if observed == nil then
  return verdict("Progressing", "Waiting for Tollgate to observe the " .. obj.kind)
end
if generation ~= nil and observed ~= generation then
  return verdict("Progressing", "Waiting for Tollgate to observe generation " .. generation ..
    " (observed: " .. observed .. ")")
end
if is_true("Stalled") then
  return verdict("Degraded", message_of("Stalled", "the rollout is stalled"))
end
if status.phase == "RollingBack" then
  return verdict("Degraded", message_of("RolledBack", "rolling back"))
end
if obj.spec ~= nil and obj.spec.suspend == true then
  return verdict("Suspended", status.message or "spec.suspend is true")
end
if status.phase == "Paused" then
  return verdict("Suspended", message_of("Reconciling", "paused"))
end
if is_true("Ready") then
  return verdict("Healthy", message_of("Ready", "the stable version serves all traffic"))
end
if is_true("Reconciling") then
  return verdict("Progressing", message_of("Reconciling", "rolling out"))
end
-- Ready=False outside a rollout: a reconcile failed (ReconcileFailed) and is retried.
return verdict("Progressing", message_of("Ready", "waiting for Tollgate"))
