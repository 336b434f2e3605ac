-- Argo CD health of a VulcanBackup (vulcan-engine.com/v1alpha1): Succeeded is Healthy,
-- Failed is Degraded, Pending and Running are Progressing. Lua 5.1 (gopher-lua).
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
if phase == "Succeeded" then
  hs.status = "Healthy"
  local message = "Backup complete"
  if status.location ~= nil then
    message = message .. ": " .. status.location
  end
  hs.message = message
elseif phase == "Failed" then
  hs.status = "Degraded"
  hs.message = says(condition(status, "Degraded"), says(condition(status, "Ready"), "The backup failed"))
elseif phase == "Running" then
  hs.status = "Progressing"
  hs.message = says(condition(status, "Progressing"), "Backup running")
else
  hs.status = "Progressing"
  hs.message = says(condition(status, "Ready"), "Waiting for the backup to start")
end
return hs
