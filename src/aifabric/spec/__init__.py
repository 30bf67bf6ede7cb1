"""What users describe: models, GPUs, parallel plans, jobs. Frozen, validated dataclasses."""
