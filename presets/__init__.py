"""Bundled dreamer presets (TOML files), installed as package data; see dreamer.presets."""
