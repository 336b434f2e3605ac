-- Argo CD health of a VulcanEngine (vulcan-engine.com/v1alpha1), from the operator's status.
-- Lua 5.1 (gopher-lua, as Argo CD runs it); `obj` is the live object.
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
if (obj.spec ~= nil and obj.spec.paused == true) or phase == "Paused" then
  hs.status = "Suspended"
  hs.message = "Paused: the operator changes nothing until spec.paused is false"
  return hs
end

local ready = condition(status, "Ready")
local progressing = condition(status, "Progressing")
local degraded = condition(status, "Degraded")
local backup = condition(status, "BackupHealthy")

if phase == "Failed" then
  hs.status = "Degraded"
  hs.message = says(ready, says(degraded, "The engine failed"))
  return hs
end
if (degraded ~= nil and degraded.status == "True") or phase == "Degraded" then
  hs.status = "Degraded"
  hs.message = says(degraded, says(ready, "The engine is degraded"))
  return hs
end
if phase == "Hibernated" then
  hs.status = "Suspended"
  hs.message = "Hibernated: no backend pods until spec.hibernate is false"
  return hs
end
if backup ~= nil and backup.status == "False" then
  hs.status = "Degraded"
  hs.message = "Backups unhealthy: " .. says(backup, "the last backup failed")
  return hs
end
local verified = condition(status, "RestoreVerified")
local drill = nil
if obj.spec ~= nil and obj.spec.backup ~= nil then
  drill = obj.spec.backup.drill
end
if verified ~= nil and verified.status == "False" and drill ~= nil and drill.degradeOnFailure == true then
  hs.status = "Degraded"
  hs.message = "Restore not verified: " .. says(verified, "the last restore drill failed")
  return hs
end
if phase == "Upgrading" or phase == "RollingBack" then
  hs.status = "Progressing"
  local verb = "Upgrading"
  if phase == "RollingBack" then
    verb = "Rolling back"
  end
  local target = ""
  if status.targetVersion ~= nil then
    target = " to " .. status.targetVersion
  end
  hs.message = verb .. target .. ": " .. says(progressing, "in progress")
  return hs
end
if progressing ~= nil and progressing.status == "True" then
  hs.status = "Progressing"
  hs.message = says(progressing, "Rolling out")
  return hs
end
if ready ~= nil and ready.status == "True" and (phase == nil or phase == "Ready") then
  hs.status = "Healthy"
  local message = "Ready"
  if status.currentVersion ~= nil then
    message = message .. ": version " .. status.currentVersion
  end
  if status.readyReplicas ~= nil and status.replicas ~= nil then
    message = message .. ", " .. int(status.readyReplicas) .. "/" .. int(status.replicas) .. " replicas ready"
  end
  hs.message = message
  return hs
end

hs.status = "Progressing"
hs.message = says(ready, "Waiting for the engine to become Ready")
return hs
