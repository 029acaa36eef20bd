-- Argo CD health of a nixmox.io/v1alpha1 NixImage, read from the status the
-- operator writes (phase, observedGeneration, the Ready condition and its
-- reason; see src/api/reasons.h). Lua 5.1, as Argo CD's gopher-lua runs it.
--   Healthy      the image for the current spec is built and in Proxmox storage
--   Degraded     phase Failed (build, upload, timeout, bad spec; retried with
--                backoff, and VMs keep the previous image), or a missing cluster
--   Progressing  not observed yet, building, uploading, waiting for the cluster
local hs = {}

-- Ready False reasons that do not go away by waiting.
local needsAttention = {
  InvalidSpec = true, BuildFailed = true, BuildTimedOut = true, UploadFailed = true,
  ClusterNotFound = true, ProxmoxError = true,
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
  local reason = c.reason or ("Ready " .. tostring(c.status))
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
  return hs
end

if status.phase == "Failed" or needsAttention[ready.reason] then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = describe(ready)
if hs.status == "Progressing" and status.progress ~= nil and status.progress ~= "" then
  hs.message = hs.message .. " (" .. status.progress .. ")"
end
return hs
