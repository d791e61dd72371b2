"""The monitoring app's services: drift (checks of production versions against their reference),
performance (roll-ups of the prediction log), dashboard (what the pages show), and metrics."""
