-- Argo CD health of a nixmox.io/v1alpha1 ProxmoxCluster, read from the status
-- the operator writes (observedGeneration, the Ready condition and its reason;
-- see src/api/reasons.h). Lua 5.1, as Argo CD's gopher-lua runs it.
--   Healthy      connected and an allowed node online, for the current generation
--   Degraded     Ready False: bad spec, credentials, TLS, unreachable, no node online
--   Progressing  not observed yet, or being deleted while ProxmoxVMs still use it
local hs = {}

-- Ready False reasons that do not go away by waiting.
local needsAttention = {
  InvalidSpec = true, CredentialsNotFound = true, AuthenticationFailed = true,
  PermissionDenied = true, TLSError = true, Unreachable = true, NoOnlineNodes = true,
}

local function findCondition(status, conditionType)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local function describe(c)
  local reason = c.reason or (c.type .. " " .. tostring(c.status))
  if c.message ~= nil and c.message ~= "" then
    return reason .. ": " .. c.message
  end
  return reason
end

local generation = obj.metadata.generation or 0
local status = obj.status
if status == nil or status.observedGeneration == nil or status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local ready = findCondition(status, "Ready")
if ready == nil or (ready.observedGeneration ~= nil and ready.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition of generation " .. generation
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  if status.version ~= nil then
    hs.message = "Proxmox VE " .. status.version .. ", " .. hs.message
  end
  -- VMs from volumes work without it; NixImage uploads do not.
  local storage = findCondition(status, "ImageStorageReady")
  if storage ~= nil and storage.status == "False" then
    hs.message = hs.message .. "; NixImage uploads will fail: " .. describe(storage)
  end
  return hs
end

if needsAttention[ready.reason] then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = describe(ready)
return hs
