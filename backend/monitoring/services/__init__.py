"""The monitoring app's services: drift (checks of production versions against their reference)."""
