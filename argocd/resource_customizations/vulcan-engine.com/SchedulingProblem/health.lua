-- Argo CD health of a SchedulingProblem (vulcan-engine.com/v1alpha1), from its phase:
-- Succeeded is Healthy (an INFEASIBLE result is a result too), Failed is Degraded, and
-- Pending, Queued and Running are Progressing. Lua 5.1 (gopher-lua); `obj` is the live object.
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

local function num(n)
  if n == math.floor(n) then
    return int(n)
  end
  return string.format("%.4g", n)
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
local result = status.result

if phase == "Succeeded" then
  hs.status = "Healthy"
  local message = "Solved"
  if result ~= nil and result.status ~= nil then
    message = message .. ": " .. result.status
    if result.objective ~= nil then
      message = message .. ", objective " .. num(result.objective)
    end
    if result.makespan ~= nil then
      message = message .. ", makespan " .. num(result.makespan)
    end
  end
  hs.message = message
  return hs
end

if phase == "Failed" then
  hs.status = "Degraded"
  local explanation = nil
  if result ~= nil and result.explanation ~= nil and result.explanation[1] ~= nil then
    explanation = result.explanation[1]
  end
  local why = says(condition(status, "Degraded"), nil)
  if why == nil then
    why = says(condition(status, "Ready"), nil)
  end
  if why == nil then
    why = explanation
  end
  if why == nil then
    why = "The solve failed"
  end
  hs.message = why
  return hs
end

hs.status = "Progressing"
if phase == "Running" then
  local message = "Solving"
  local progress = status.progress
  if progress ~= nil then
    if progress.objective ~= nil then
      message = message .. ": objective " .. num(progress.objective)
    end
    if progress.gap ~= nil then
      message = message .. ", gap " .. string.format("%.1f", progress.gap * 100) .. "%"
    end
    if progress.elapsedSeconds ~= nil then
      message = message .. ", " .. int(progress.elapsedSeconds) .. "s"
    end
  end
  hs.message = message
elseif phase == "Queued" then
  local message = "Queued: waiting for a solver slot"
  if status.queuePosition ~= nil then
    message = message .. " (position " .. int(status.queuePosition) .. ")"
  end
  hs.message = message
else
  hs.message = says(condition(status, "Ready"), "Waiting to be scheduled")
end
return hs
