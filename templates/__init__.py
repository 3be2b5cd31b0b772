"""Data folder shipped inside the bnn_mcu package (see pyproject.toml)."""
