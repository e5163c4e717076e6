-- Why the service itself paused a campaign (an AMD module FreeSWITCH does not have, a gateway it
-- does not know): shown in estado so the operator knows what to fix; cleared when the campaign
-- changes state again. NULL when an operator changed the state.
ALTER TABLE bases ADD COLUMN motivo VARCHAR(255) NULL;
