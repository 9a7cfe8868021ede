"""What a run will do, decided before anything runs: the config and the hooks tree
(context), which files run (discovery), their settings, and the trust rules (safety).
"""
