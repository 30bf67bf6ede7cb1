"""The training-step simulator (issue 11): pipeline schedules (:mod:`.schedule`) and memory
per GPU (:mod:`.memory`); compute timing and the step on the fabric are to come."""
