"""Flask adapters: parse HTTP, call an interaction, render the response. Nothing else."""
