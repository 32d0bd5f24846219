-- Argo CD health check for cvm.tencentcloud.io/CvmInstanceSet.
--
-- Install: see "Argo CD" in the README (resource.customizations.health.
-- cvm.tencentcloud.io_CvmInstanceSet in argocd-cm). Written for Argo CD's Lua
-- (gopher-lua, Lua 5.1) and tested with Lua 5.4 on objects from a real
-- apiserver (tests/e2e/gitops.rs), so it uses only what both have.
--
-- Rules, first match wins:
--   1. no status yet                          -> Progressing
--   2. status.observedGeneration < generation -> Progressing (the change is not seen yet)
--   3. Stalled=True (a person must act: credentials missing or refused, a
--      launch the API refuses whatever the retry) -> Degraded, with its reason and message
--   4. no Stalled condition (an older operator): Synced=False with a
--      credentials reason                     -> Degraded
--   5. replicas, readyReplicas and updatedReplicas all equal spec.replicas:
--      Healthy, unless Synced=False (a retried error: Progressing, saying why)
--   6. anything else (launching, scaling, rolling a template change, members
--      not ready yet)                         -> Progressing, with the counts and why

-- Synced reasons that wait for a person (rule 4; the operator's Stalled
-- condition says the same for objects it wrote itself).
local PERMANENT = {
  CredentialsNotFound = true,
  CredentialsRejected = true,
  CredentialsInvalid = true,
  CredentialsAccountChanged = true,
  NoAccount = true,
  AccountNotAllowed = true,
}

-- Argo CD runs each check on its own: these helpers repeat health.lua's.
local function condition(conditions, type_)
  for _, c in ipairs(conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function describe(c)
  if c == nil then
    return ""
  end
  local reason = c.reason or ""
  local message = c.message or ""
  if message == "" then
    return reason
  end
  return reason .. ": " .. message
end

local function health(o)
  local status = o.status
  if status == nil or status.conditions == nil or #status.conditions == 0 then
    return "Progressing", "waiting for the operator to report status"
  end
  local conditions = status.conditions
  local synced = condition(conditions, "Synced")
  local stalled = condition(conditions, "Stalled")

  local generation = o.metadata.generation
  local observed = status.observedGeneration
  if generation ~= nil and (observed == nil or observed < generation) then
    return "Progressing", "the operator has not yet seen generation " .. tostring(generation)
      .. " (last seen: " .. tostring(observed or "none") .. ")"
  end

  if stalled ~= nil then
    if stalled.status == "True" then
      return "Degraded", describe(stalled)
    end
  elseif synced ~= nil and synced.status == "False" and PERMANENT[synced.reason] then
    return "Degraded", describe(synced)
  end

  local want = (o.spec and o.spec.replicas) or 0
  local replicas = status.replicas or 0
  local ready = status.readyReplicas or 0
  local updated = status.updatedReplicas or 0
  local counts = tostring(ready) .. " of " .. tostring(want) .. " members ready, "
    .. tostring(updated) .. " up to date"
  if replicas == want and ready == want and updated == want then
    if synced ~= nil and synced.status == "False" then
      return "Progressing", counts .. "; " .. describe(synced)
    end
    return "Healthy", "all " .. tostring(want) .. " members are ready and up to date"
  end
  local progressing = condition(conditions, "Progressing")
  if progressing ~= nil and progressing.status == "True" then
    counts = counts .. "; " .. describe(progressing)
  end
  if synced ~= nil and synced.status == "False" then
    counts = counts .. "; " .. describe(synced)
  end
  return "Progressing", counts
end

local hs = {}
hs.status, hs.message = health(obj)
return hs
