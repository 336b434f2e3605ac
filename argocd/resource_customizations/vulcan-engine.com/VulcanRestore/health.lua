-- Argo CD health of a VulcanRestore (vulcan-engine.com/v1alpha1): Succeeded is Healthy,
-- Failed is Degraded (naming the step that failed), Pending and Running are Progressing
-- (naming the current step). Lua 5.1 (gopher-lua).
local hs = {}

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function says(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local function int(n)
  return string.format("%d", math.floor(n))
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. int(generation)
  return hs
end

local phase = status.phase
local step = ""
if status.step ~= nil and status.step ~= "" then
  step = " at step " .. status.step
end

if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = "Restore complete"
elseif phase == "Failed" then
  hs.status = "Degraded"
  hs.message = "Restore failed" .. step .. ": "
    .. says(condition(status, "Degraded"), says(condition(status, "Ready"), "see the resource's Events"))
elseif phase == "Running" then
  hs.status = "Progressing"
  hs.message = "Restoring" .. step
else
  hs.status = "Progressing"
  hs.message = says(condition(status, "Ready"), "Waiting for the restore to start")
end
return hs
