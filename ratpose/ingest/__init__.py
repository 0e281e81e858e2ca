"""Readers that turn files (session folders, calibration folders, DLC outputs) into validated arrays."""
