"""One typed settings object per job, each in its own module here (ingest, train, score, serve,
monitor; what several share in common). Each setting is declared once: its type, default, help
text, choices and limits, with the rules between settings beside them. The command-line flags
are generated from these declarations, and conf/<job>.yaml holds only what differs from them.

Order of precedence: these defaults, then the YAML file, then flags. Unknown keys and values
outside a setting's choices are errors, so a typo never passes silently. None always means
"not given": the model recipe's value for training settings, nothing for the others. The
resolved object is saved next to every dataset, model and scoring run.
"""
