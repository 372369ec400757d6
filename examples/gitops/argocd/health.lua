-- Argo CD health of a CrmTenant (argocd-cm, key
-- resource.customizations.health.crm.tenancy.dev_CrmTenant), from the
-- conditions the operator writes.
local hs = { status = "Progressing", message = "waiting for the operator" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
if obj.status.observedGeneration ~= nil and obj.metadata.generation ~= nil
   and obj.status.observedGeneration < obj.metadata.generation then
  hs.message = "the operator has not seen this generation yet"
  return hs
end
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Stalled" and c.status == "True" then
    return { status = "Degraded", message = c.reason .. ": " .. (c.message or "") }
  end
end
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then
    if c.status == "True" then
      return { status = "Healthy", message = c.message or "" }
    end
    hs.message = c.reason .. ": " .. (c.message or "")
  end
end
if obj.status.phase == "Suspended" then
  return { status = "Suspended", message = "scaled to zero on request" }
end
return hs
