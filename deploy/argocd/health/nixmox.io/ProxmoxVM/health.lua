-- Argo CD health of a nixmox.io/v1alpha1 ProxmoxVM, read from the status the
-- operator writes (phase, observedGeneration, the Ready condition and its
-- reason; see src/api/reasons.h). Lua 5.1, as Argo CD's gopher-lua runs it.
--   Suspended    paused by the nixmox.io/reconcile annotation, or stopped as
--                spec.powerState asks
--   Healthy      Ready for the current generation
--   Degraded     phase Failed, or Ready False for a reason that needs a person
--   Progressing  anything on its way: not observed yet, creating, starting,
--                waiting for the guest agent, being deleted...
local hs = {}

-- Ready False reasons that do not go away by waiting.
local needsAttention = {
  InvalidSpec = true, TaskFailed = true, VMIDInUse = true, VMNotFound = true,
  PlacementFailed = true, NodeNotAllowed = true, ImageNotFound = true,
  ClusterNotFound = true, ProxmoxError = true, Protected = true,
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

local annotations = obj.metadata.annotations or {}
if annotations["nixmox.io/reconcile"] == "Paused" then
  hs.status = "Suspended"
  hs.message = "Paused by the annotation nixmox.io/reconcile: nothing is reconciled"
  return hs
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

local wanted = "Running"
if obj.spec ~= nil and obj.spec.powerState ~= nil then
  wanted = obj.spec.powerState
end

if ready.status == "True" then
  if status.phase == "Stopped" and wanted == "Stopped" then
    hs.status = "Suspended"
    hs.message = ready.message or "Stopped, as spec.powerState asks"
  elseif status.phase == "Running" and wanted == "Stopped" then
    hs.status = "Progressing"
    hs.message = "Stopping: spec.powerState is Stopped"
  else
    hs.status = "Healthy"
    hs.message = ready.message or "Ready"
  end
  return hs
end

if status.phase == "Failed" or needsAttention[ready.reason] then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = describe(ready)
return hs
