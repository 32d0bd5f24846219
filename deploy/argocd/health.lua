-- Argo CD health check for cvm.tencentcloud.io/CvmInstance.
--
-- Install: see "Argo CD" in the README (resource.customizations.health.
-- cvm.tencentcloud.io_CvmInstance in argocd-cm). Written for Argo CD's Lua
-- (gopher-lua, Lua 5.1) and tested with Lua 5.4 on objects from a real
-- apiserver (tests/e2e/gitops.rs), so it uses only what both have.
--
-- Rules, first match wins:
--   1. no status yet                          -> Progressing
--   2. cvm.tencentcloud.io/paused: "true"     -> Suspended (the operator does not act)
--   3. status.observedGeneration < generation -> Progressing (the change is not seen yet)
--   4. Stalled=True (kstatus' "a person must act": a permanent error, a
--      launch failure, the instance deleted outside Kubernetes, termination
--      protection on delete, ...)             -> Degraded, with its reason and message
--   5. no Stalled condition (an older operator): the same decision from the
--      Synced reason                          -> Degraded
--   6. Ready=True and Synced=True             -> Healthy
--      Ready=True, Synced=False/DriftDetected -> Healthy (managementPolicy ObserveOnly:
--                                                drift is reported, never corrected)
--   7. anything else (creating, starting, resizing, a retried error, Ready
--      Unknown while the cloud cannot be read) -> Progressing, saying why

local PAUSED = "cvm.tencentcloud.io/paused"

-- Synced reasons that wait for a person (rule 5; the operator's Stalled
-- condition says the same for objects it wrote itself).
local PERMANENT = {
  LaunchFailed = true,
  InstanceNotFound = true,
  RecycleBin = true,
  ResizeRequiresStop = true,
  StopRequired = true,
  RebootRequired = true,
  ReinstallRequired = true,
  InstanceTypeUnavailable = true,
  TerminationProtected = true,
  CredentialsRejected = true,
  CredentialsNotFound = true,
  CredentialsInvalid = true,
}

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
  local ready = condition(conditions, "Ready")
  local synced = condition(conditions, "Synced")
  local stalled = condition(conditions, "Stalled")

  local annotations = o.metadata.annotations
  local paused = annotations ~= nil and annotations[PAUSED] ~= nil
    and string.lower(annotations[PAUSED]) == "true"
  if paused then
    local detail = ""
    if synced ~= nil and synced.reason == "ReconcilePaused" then
      detail = ": " .. (synced.message or "")
    end
    return "Suspended", "paused by " .. PAUSED .. detail
  end

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
  elseif synced ~= nil and synced.status == "False" then
    local permanent = PERMANENT[synced.reason]
      or (synced.reason == "ReconcileError" and string.find(synced.message or "", "not retried", 1, true) ~= nil)
    if permanent then
      return "Degraded", describe(synced)
    end
  end

  if ready ~= nil and ready.status == "True" then
    if synced == nil or synced.status == "True" then
      return "Healthy", describe(ready)
    end
    if synced.reason == "DriftDetected" then
      return "Healthy", describe(ready) .. "; " .. describe(synced)
    end
    return "Progressing", describe(synced)
  end
  if ready == nil then
    return "Progressing", describe(synced)
  end
  if synced ~= nil and synced.status ~= "True" then
    return "Progressing", describe(ready) .. "; " .. describe(synced)
  end
  return "Progressing", describe(ready)
end

local hs = {}
hs.status, hs.message = health(obj)
return hs
